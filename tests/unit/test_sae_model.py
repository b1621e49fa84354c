"""TopKSAE: the sparse encoder/decoder paths equal a plain dense implementation, values and
gradients; the decoder invariants hold; the config round-trips."""

from __future__ import annotations

import pytest
import torch

from protsae.sae.model import (
    SAEConfig,
    TopKSAE,
    _topk_groups,
    sparse_decode,
    sum_over_latents,
    topk_rows,
)
from protsae.sae.step import make_optimizer, train_step

torch.set_num_threads(1)


def _random_sae(normalize: str = "none", width: int = 96, d: int = 24, k: int = 6) -> TopKSAE:
    sae = TopKSAE(SAEConfig(d_model=d, width=width, k=k, normalize=normalize, auxk=10), seed=3)
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.5)
        sae.b_dec.normal_(0, 0.5)
    return sae


def _dense_reference(sae: TopKSAE, x: torch.Tensor, dead: torch.Tensor | None):
    """A straightforward dense TopK SAE with plain autograd, the same math written out."""
    if sae.cfg.normalize == "token_standardize":
        mu = x.mean(dim=-1, keepdim=True)
        std = (x - mu).std(dim=-1, keepdim=True)
        x_n = (x - mu) / (std + 1e-5)
    else:
        x_n = x
    pre = (x_n - sae.b_dec) @ sae.W_enc + sae.b_enc
    top = pre.topk(sae.cfg.k, dim=1)
    z = torch.zeros_like(pre).scatter(1, top.indices, top.values.relu())
    x_hat = z @ sae.W_dec + sae.b_dec
    if sae.cfg.normalize == "token_standardize":
        x_hat = x_hat * std + mu
    sse = (x_hat - x).pow(2).sum()
    fvu = sse / (x - x.mean(0)).pow(2).sum()
    aux = torch.zeros(())
    if dead is not None:
        k_aux = min(sae.cfg.k_aux, int(dead.sum()))
        aux_top = pre.masked_fill(~dead, -torch.inf).topk(k_aux, dim=1)
        z_aux = torch.zeros_like(pre).scatter(1, aux_top.indices, aux_top.values.relu())
        residual = (x - x_hat).detach()
        residual_hat = z_aux @ sae.W_dec
        if sae.cfg.normalize == "token_standardize":
            residual_hat = residual_hat * std
        aux = (residual_hat - residual).pow(2).sum() / (residual - residual.mean(0)).pow(2).sum()
    return x_hat, z, fvu, aux


@pytest.mark.parametrize("normalize", ["none", "token_standardize"])
@pytest.mark.parametrize("with_dead", [False, True])
def test_sparse_paths_match_dense_values_and_gradients(normalize: str, with_dead: bool) -> None:
    torch.manual_seed(0)
    sae = _random_sae(normalize)
    x = (torch.randn(200, sae.cfg.d_model) * 2 + 0.5).requires_grad_()
    dead = None
    if with_dead:
        dead = torch.zeros(sae.cfg.width, dtype=torch.bool)
        dead[::4] = True

    out = sae(x, dead_mask=dead)
    loss = out.fvu + out.auxk_loss / 32 + 0.01 * out.values.sum()
    loss.backward()
    sparse_grads = {name: p.grad.clone() for name, p in sae.named_parameters()}
    sparse_grads["input"], x.grad = x.grad.clone(), None
    sae.zero_grad()

    x_hat, z, fvu, aux = _dense_reference(sae, x, dead)
    (fvu + aux / 32 + 0.01 * z.sum()).backward()

    torch.testing.assert_close(out.x_hat, x_hat, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.fvu, fvu)
    torch.testing.assert_close(out.auxk_loss, aux)
    if with_dead:
        assert out.auxk_loss > 0
    dense_from_sparse = torch.zeros_like(z).scatter(1, out.indices, out.values)
    torch.testing.assert_close(dense_from_sparse, z.detach())
    for name, param in sae.named_parameters():
        assert param.grad.abs().max() > 0, name
        torch.testing.assert_close(sparse_grads[name], param.grad, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(sparse_grads["input"], x.grad, atol=1e-6, rtol=1e-4)


def test_encoder_gradient_touches_only_selected_latents() -> None:
    sae = _random_sae()
    x = torch.randn(3, sae.cfg.d_model)
    out = sae(x)
    out.mse.backward()
    selected = torch.zeros(sae.cfg.width, dtype=torch.bool)
    selected[out.indices[out.values > 0]] = True
    touched = sae.W_enc.grad.abs().sum(dim=0) > 0
    assert touched.any()
    assert not (touched & ~selected).any()
    assert not (sae.W_dec.grad.abs().sum(dim=1)[~selected] > 0).any()


def test_encode_keeps_k_nonnegative_values_and_zero_when_nothing_is_positive() -> None:
    sae = _random_sae()
    with torch.no_grad():
        sae.b_enc.fill_(-100.0)  # every pre-activation negative
    top = sae.encode(torch.randn(5, sae.cfg.d_model))
    assert top.values.shape == (5, sae.cfg.k) and top.indices.shape == (5, sae.cfg.k)
    assert (top.values == 0).all()
    with torch.no_grad():
        sae.b_enc.fill_(0.0)
    top = sae.encode(torch.randn(50, sae.cfg.d_model))
    assert (top.values >= 0).all() and (top.values > 0).any()
    assert all(len(set(row.tolist())) == sae.cfg.k for row in top.indices)


def test_decode_of_encode_equals_forward_reconstruction() -> None:
    for normalize in ("none", "token_standardize"):
        sae = _random_sae(normalize)
        x = torch.randn(40, sae.cfg.d_model) * 3
        top = sae.encode(x)
        torch.testing.assert_close(sae.decode(top.values, top.indices, x), sae(x).x_hat)
    with pytest.raises(ValueError, match="needs the encoded inputs"):
        sae.decode(top.values, top.indices)


def test_sparse_decode_equals_dense_product() -> None:
    torch.manual_seed(1)
    W = torch.randn(50, 7)
    values = torch.rand(9, 4)
    indices = torch.randint(0, 50, (9, 4))
    dense = torch.zeros(9, 50).index_put_(
        (torch.arange(9).repeat_interleave(4), indices.reshape(-1)),
        values.reshape(-1),
        accumulate=True,
    )
    torch.testing.assert_close(sparse_decode(values, indices, W), dense @ W)


def test_sparse_decode_gradients_equal_dense_product_gradients() -> None:
    """Both gradients of the gather-sum (values, and W only on the rows that were selected,
    repeated indices within a token included) equal autograd's through the dense product."""
    torch.manual_seed(2)
    W = torch.randn(50, 7, requires_grad=True)
    values = torch.rand(9, 4, requires_grad=True)
    indices = torch.randint(0, 30, (9, 4))  # rows 30..49 are never selected
    indices[0, 1] = indices[0, 0]
    upstream = torch.randn(9, 7)
    sparse_decode(values, indices, W).backward(upstream)
    got = values.grad.clone(), W.grad.clone()
    values.grad = W.grad = None
    rows = torch.arange(9).repeat_interleave(4)
    dense = torch.zeros(9, 50).index_put((rows, indices.reshape(-1)), values.reshape(-1), True)
    (dense @ W).backward(upstream)
    torch.testing.assert_close(got[0], values.grad)
    torch.testing.assert_close(got[1], W.grad)
    assert torch.equal(got[1][30:], torch.zeros(20, 7))


def test_sum_over_latents_equals_embedding_bag_weight_gradient() -> None:
    """The transposed-bag sum is the weight gradient torch's own embedding_bag backward gives,
    exactly (the same additions per row), including latents that no token selected."""
    torch.manual_seed(3)
    n, k, width, d = 300, 8, 1000, 16
    indices = torch.randint(0, width, (n, k))
    weights, rows = torch.randn(n, k), torch.randn(n, d)
    table = torch.zeros(width, d, requires_grad=True)
    gathered = torch.nn.functional.embedding_bag(
        indices, table, per_sample_weights=weights, mode="sum"
    )
    (expected,) = torch.autograd.grad(gathered, table, rows)
    got = sum_over_latents(indices, weights, rows, width)
    assert got.shape == (width, d)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    unselected = torch.ones(width, dtype=torch.bool)
    unselected[indices.reshape(-1)] = False
    assert unselected.any() and torch.equal(got[unselected], torch.zeros(int(unselected.sum()), d))


def test_decoder_rows_unit_norm_and_gradient_projection() -> None:
    sae = _random_sae()
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(sae.cfg.width), atol=1e-6)
    with torch.no_grad():
        sae.W_dec.mul_(torch.rand(sae.cfg.width, 1) * 3 + 0.1)
    sae.set_decoder_norm_to_unit()
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(sae.cfg.width), atol=1e-6)

    out = sae(torch.randn(64, sae.cfg.d_model))
    out.mse.backward()
    before = sae.W_dec.grad.clone()
    sae.remove_gradient_parallel_to_decoder()
    parallel = (sae.W_dec.grad * sae.W_dec).sum(dim=1)
    assert parallel.abs().max() < 1e-7
    # Only the parallel component went: what is left is the orthogonal part of the original.
    removed = before - sae.W_dec.grad
    assert torch.allclose(removed, (before * sae.W_dec).sum(1, keepdim=True) * sae.W_dec, atol=1e-7)
    assert sae.W_dec.grad.abs().max() > 0


def test_config_round_trip_and_validation() -> None:
    cfg = SAEConfig(
        d_model=8,
        width=32,
        k=4,
        normalize="token_standardize",
        auxk=3,
        model="esm2_t6",
        layer=4,
        training={"lr": 1e-3, "shards": ["a.parquet"]},
    )
    data = cfg.to_dict()
    assert SAEConfig.from_dict(data) == cfg
    assert SAEConfig.from_dict({**data, "future_key": 1}) == cfg
    assert SAEConfig(d_model=320, width=64, k=4).k_aux == 160
    with pytest.raises(ValueError, match="normalize"):
        SAEConfig(d_model=8, width=32, k=4, normalize="layernorm")
    with pytest.raises(ValueError, match="k must be"):
        SAEConfig(d_model=8, width=32, k=33)
    with pytest.raises(ValueError, match="required keys"):
        SAEConfig.from_dict({"d_model": 8, "k": 4})
    # sae.json files written before conventions existed were all fair-esm's.
    legacy = {key: value for key, value in data.items() if key != "activation_convention"}
    assert SAEConfig.from_dict(legacy).activation_convention == "fair-esm"
    assert SAEConfig.from_dict({**data, "activation_convention": "interprot"}) != cfg
    with pytest.raises(ValueError, match="activation convention"):
        SAEConfig(d_model=8, width=32, k=4, activation_convention="huggingface")


def test_bf16_autocast_step_tracks_float32() -> None:
    """The mixed-precision path (used on GPUs) runs and trains like float32."""
    torch.manual_seed(0)
    x = torch.randn(256, 24) * 2
    dead = torch.zeros(96, dtype=torch.bool)
    dead[::3] = True
    losses = {}
    for dtype in (None, torch.bfloat16):
        sae = _random_sae()
        optimizer = make_optimizer(sae, 1e-2)
        first = train_step(sae, optimizer, x, dead, 1e-2, dtype)
        for _ in range(20):
            last = train_step(sae, optimizer, x, dead, 1e-2, dtype)
        assert last.x_hat.dtype == torch.float32
        assert float(last.fvu) < 0.8 * float(first.fvu)
        losses[dtype] = float(last.fvu)
    assert losses[torch.bfloat16] == pytest.approx(losses[None], rel=0.05)


@pytest.mark.parametrize(("n", "width", "k"), [(64, 2048, 16), (33, 10240, 64), (5, 96, 6)])
def test_topk_rows_has_exactly_torch_topk_values(n: int, width: int, k: int) -> None:
    """The grouped selection returns the values torch.topk returns, with indices that point at
    them, also with ties across groups, a row of equal values and masked (-inf) columns."""
    torch.manual_seed(0)
    pre = torch.randn(n, width)
    pre[0] = 1.5  # every entry tied
    pre[1, ::5] = pre[1, 0]  # ties spread over many groups
    pre[2, : width // 2] = -torch.inf  # AuxK masks live latents this way
    if n > 3:
        pre[3, torch.randperm(width)[:k]] += 100.0  # planted: exactly these k columns win
    values, indices = topk_rows(pre, k)
    reference = pre.topk(k, dim=1).values
    assert torch.equal(values.sort(dim=1).values, reference.sort(dim=1).values)
    assert torch.equal(pre.gather(1, indices), values)
    assert all(len(set(row.tolist())) == k for row in indices)
    if n > 3:
        assert set(indices[3].tolist()) == set((pre[3] > 50).nonzero().flatten().tolist())


def test_topk_groups_engage_at_training_widths_only() -> None:
    assert _topk_groups(16384, 64) == 1024 and _topk_groups(10240, 64) is not None
    assert _topk_groups(96, 6) is None  # too narrow to gain: plain torch.topk
    assert _topk_groups(2053, 16) is None  # prime width: no equal groups


def _reference_step(sae: TopKSAE, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> float:
    """The step as first written: dense top-k latents, dense decoder, plain autograd, the
    six-pass parallel-gradient removal, then Adam and renormalisation."""
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    top = pre.topk(sae.cfg.k, dim=1)
    z = torch.zeros_like(pre).scatter(1, top.indices, top.values.relu())
    x_hat = z @ sae.W_dec + sae.b_dec
    loss = (x_hat - x).pow(2).sum() / (x - x.mean(dim=0)).pow(2).sum()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    with torch.no_grad():
        rows, grad = sae.W_dec.data, sae.W_dec.grad
        grad.sub_((grad * rows).sum(1, keepdim=True) * rows / rows.pow(2).sum(1, keepdim=True))
    optimizer.step()
    with torch.no_grad():
        sae.W_dec.div_(sae.W_dec.norm(dim=1, keepdim=True))
    return float(loss.detach())


def test_optimised_step_equals_reference_step() -> None:
    """train_step (grouped top-k, strided W_enc, sparse backward, fused Adam, three-pass
    projection) follows the plain reference step: the same loss to 1e-6 relative at every
    step and the same weights after them, on a shape where the grouped top-k is used."""
    d, width, k = 32, 2048, 16
    assert _topk_groups(width, k) is not None
    torch.manual_seed(0)
    batches = [torch.randn(512, d) * 2 + 0.3 for _ in range(4)]
    ours = TopKSAE(SAEConfig(d_model=d, width=width, k=k), seed=5)
    reference = TopKSAE(SAEConfig(d_model=d, width=width, k=k), seed=5)
    with torch.no_grad():
        reference.W_enc.data = reference.W_enc.data.contiguous()  # the old, row-major layout
    assert not ours.W_enc.is_contiguous() and ours.W_enc.t().is_contiguous()
    optimizer = make_optimizer(ours, 1e-3)
    reference_optimizer = torch.optim.Adam(reference.parameters(), lr=1e-3, foreach=False)
    for x in batches:
        expected = _reference_step(reference, reference_optimizer, x)
        got = float(train_step(ours, optimizer, x, None, 1e-3).fvu)
        assert got == pytest.approx(expected, rel=1e-6)
    assert expected < 0.99 * _reference_loss_at_init(d, width, k, batches[-1])
    for name, param in ours.named_parameters():
        torch.testing.assert_close(param, getattr(reference, name), atol=2e-6, rtol=1e-5)


def test_adam_updates_the_transposed_encoder_in_storage_order(monkeypatch) -> None:
    """make_optimizer's Adam hands W_enc (the transpose of a contiguous tensor), its gradient
    and its moments to the fused kernel as contiguous tensors, so the kernel never copies them,
    and the update equals plain Adam's on a contiguous copy, bit for bit."""
    seen: list[bool] = []
    fused = torch._fused_adam_

    def recording(params, grads, exp_avgs, exp_avg_sqs, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen.extend(t.is_contiguous() for t in (*params, *grads, *exp_avgs, *exp_avg_sqs))
        return fused(params, grads, exp_avgs, exp_avg_sqs, *args, **kwargs)

    monkeypatch.setattr(torch, "_fused_adam_", recording)
    torch.manual_seed(4)
    sae = _random_sae()
    reference = [param.detach().contiguous().requires_grad_() for param in sae.parameters()]
    optimizer = make_optimizer(sae, 1e-2)
    reference_optimizer = torch.optim.Adam(reference, lr=1e-2, foreach=False)
    assert not sae.W_enc.is_contiguous()
    for _ in range(3):
        for param, copy in zip(sae.parameters(), reference, strict=True):
            param.grad = torch.randn_like(param)
            copy.grad = param.grad.contiguous()
        optimizer.step()
        reference_optimizer.step()
    assert seen and all(seen)
    assert not sae.W_enc.is_contiguous()  # still the transposed layout the backward relies on
    for param, copy in zip(sae.parameters(), reference, strict=True):
        torch.testing.assert_close(param.detach(), copy.detach(), rtol=0, atol=1e-7)


def _reference_loss_at_init(d: int, width: int, k: int, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float(TopKSAE(SAEConfig(d_model=d, width=width, k=k), seed=5)(x).fvu)
