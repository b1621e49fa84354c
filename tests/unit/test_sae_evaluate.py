"""evaluate_sae on a tiny random ESM-2: a lossless SAE recovers all of the loss, an SAE that
outputs zeros recovers none; the streamed statistics equal a one-shot computation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from protsae.sae.model import SAEConfig, TopKSAE

esm_mod = pytest.importorskip("protsae.esm", reason="protsae.esm (another module) is not there yet")
evaluate = pytest.importorskip("protsae.sae.evaluate")

torch.set_num_threads(1)
D = 32
LAYER = 1


def _lossless_sae(d: int = D) -> TopKSAE:
    """Latents relu(x) and relu(-x): with k = d exactly the non-zero half is kept, x_hat = x."""
    sae = TopKSAE(SAEConfig(d_model=d, width=2 * d, k=d))
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


@pytest.fixture(scope="module")
def tiny_esm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("esm") / "esm2_tiny.pt"
    esm_mod.save_random_init(path, num_layers=2, embed_dim=D, attention_heads=4, seed=0)
    return path


RECORDS = [
    ("p1", "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"),
    ("p2", "MSDNGPQNQRNAPRITFGGPSDSTGSNQNGERSGARSKQRRPQGLPNNTASWFTALTQHGK"),
    ("p3", "GSHMLEDPVDAFQGKKIVVTGASSGIGLATAKALAAAGAKVVLNYRS"),
    ("p4", "MAHHHHHHVDDDDK"),
]


def test_lossless_sae_recovers_all_of_the_loss(tiny_esm: Path) -> None:
    result = evaluate.evaluate_sae(
        _lossless_sae(), tiny_esm, RECORDS, LAYER, max_tokens_per_batch=64, device="cpu"
    )
    assert list(result) == list(evaluate.EVAL_KEYS)
    assert result["n_tokens"] == sum(len(s) for _, s in RECORDS)
    assert result["fve"] == pytest.approx(1.0, abs=1e-6)
    assert result["mse"] == pytest.approx(0.0, abs=1e-9)
    assert result["l0"] <= D and result["dead_fraction"] == 0.0
    assert abs(result["ce_zero"] - result["ce_clean"]) > 1e-3
    assert result["ce_sae"] == pytest.approx(result["ce_clean"], abs=1e-4)
    assert result["loss_recovered"] == pytest.approx(1.0, abs=1e-2)


def test_zero_output_sae_recovers_none_and_dead_latents_count(tiny_esm: Path) -> None:
    sae = _lossless_sae()
    with torch.no_grad():
        sae.W_dec.zero_()  # reconstruction = b_dec = 0, i.e. the zero ablation
        sae.b_enc[D:] = -1e6  # the relu(-x) half can never fire
    result = evaluate.evaluate_sae(
        sae, tiny_esm, RECORDS, LAYER, max_tokens_per_batch=64, device="cpu"
    )
    assert result["ce_sae"] == pytest.approx(result["ce_zero"], abs=1e-4)
    assert result["loss_recovered"] == pytest.approx(0.0, abs=1e-2)
    assert result["fve"] < 0.01
    assert result["dead_fraction"] == pytest.approx(0.5)


def test_streamed_statistics_equal_one_shot() -> None:
    torch.manual_seed(0)
    sae = TopKSAE(SAEConfig(d_model=8, width=40, k=3), seed=1)
    with torch.no_grad():
        sae.b_dec.normal_()
    x = torch.randn(300, 8) * 2 + 1
    stats = evaluate.ReconstructionStats(8, 40)
    for part in torch.split(x, 70):
        stats.add(sae, part)
    result = stats.result()
    with torch.no_grad():
        out = sae(x)
    fired = torch.zeros(40, dtype=torch.bool)
    fired[out.indices[out.values > 0]] = True
    assert result["fve"] == pytest.approx(1 - float(out.fvu), rel=1e-5)
    assert result["mse"] == pytest.approx(float(out.mse), rel=1e-5)
    assert result["l0"] == pytest.approx(float((out.values > 0).sum(1).float().mean()))
    assert result["dead_fraction"] == pytest.approx(1 - float(fired.float().mean()))
    assert result["n_tokens"] == 300


def test_sae_edit_keeps_shape_and_dtype() -> None:
    edit = evaluate.sae_edit(_lossless_sae(8))
    h = torch.randn(2, 5, 8).to(torch.bfloat16)
    out = edit(h)
    assert out.shape == h.shape and out.dtype == torch.bfloat16
    torch.testing.assert_close(out, h)
    assert evaluate.loss_recovered(2.0, 2.5, 3.0) == pytest.approx(0.5)
