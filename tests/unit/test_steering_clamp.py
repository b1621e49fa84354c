"""The steering splice on a tiny ESM-2 built with fair-esm's own classes and a random TopK SAE."""

from __future__ import annotations

import esm
import pytest
import torch
from esm.model.esm2 import ESM2

from protsae.esm import forward_with_layer_edit
from protsae.sae import SAEConfig, TopKSAE
from protsae.sae.at_layer import EsmSae
from protsae.steering.clamp import (
    STANDARD_RESIDUES,
    clamp_latent,
    plain_logits,
    residue_mask,
    splice_edit,
    spliced_logits,
    steered_sequences,
)

LAYER, D = 2, 32
RECORDS = [
    ("a", "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"),
    ("b", "GSHMLEDPVDAFQGKKIVVTGASSGIGLATAKALAAAGAKVVLNYRS"),
    ("c", "MAHHHHHHVDDDDK"),
]
CONVENTIONS = ["fair-esm", "interprot"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    net = ESM2(num_layers=3, embed_dim=D, attention_heads=4, alphabet=alphabet, token_dropout=True)
    return net.eval(), alphabet


@pytest.fixture(scope="module")
def tokens(model):
    return model[1].get_batch_converter()(RECORDS)[2]  # padded: three lengths


def make_sae(normalize: str = "none", convention: str = "fair-esm") -> TopKSAE:
    cfg = SAEConfig(D, 96, 6, normalize=normalize, layer=LAYER, activation_convention=convention)
    sae = TopKSAE(cfg, seed=1)
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1, generator=torch.Generator().manual_seed(2))
        sae.b_dec.normal_(0, 0.1, generator=torch.Generator().manual_seed(3))
    return sae.eval()


def layer_vectors(model, sae, tokens) -> torch.Tensor:
    """The residue vectors at LAYER, [N, D], as the splice sees them."""
    seen = []

    def record(h):
        seen.append(h[residue_mask(tokens, model[1])].clone())
        return h

    with torch.inference_mode():
        forward_with_layer_edit(
            model[0], tokens, LAYER, record, convention=sae.cfg.activation_convention
        )
    return seen[0]


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("normalize", ["none", "token_standardize"])
def test_the_splice_without_a_clamp_reproduces_the_logits(model, tokens, normalize, convention):
    sae = make_sae(normalize, convention)
    plain = plain_logits(model[0], sae, tokens, LAYER)
    spliced = spliced_logits(model[0], model[1], sae, tokens, LAYER, latent=None)
    torch.testing.assert_close(spliced, plain, rtol=1e-5, atol=1e-5)
    # Without the error term the SAE's reconstruction alone moves the logits: the test can fail.
    mask = residue_mask(tokens, model[1])

    def decode_only(h):
        out = h.clone()
        x = h[mask]
        top = sae.encode(x)
        out[mask] = sae.decode(top.values, top.indices, x)
        return out

    with torch.inference_mode():
        lossy = forward_with_layer_edit(model[0], tokens, LAYER, decode_only, convention=convention)
    assert (lossy - plain).abs().max() > 1e-2


@pytest.mark.parametrize("normalize", ["none", "token_standardize"])
def test_clamping_to_the_current_values_changes_nothing(model, tokens, normalize, dense_latents):
    sae = make_sae(normalize)
    x = layer_vectors(model, sae, tokens)
    dense = dense_latents(sae, x)
    latent = int(dense.gt(0).sum(0).argmax())  # the most often active latent
    assert 0 < int(dense[:, latent].gt(0).sum()) < len(x)
    same = clamp_latent(sae, x, latent, dense[:, latent])
    torch.testing.assert_close(same, x, rtol=1e-5, atol=1e-5)
    # and a latent that is never active, clamped to 0, or anywhere with only_where_active
    never = int(dense.gt(0).sum(0).argmin())
    assert int(dense[:, never].gt(0).sum()) == 0
    torch.testing.assert_close(clamp_latent(sae, x, never, 0.0), x, rtol=1e-5, atol=1e-5)
    kept = spliced_logits(
        model[0], model[1], sae, tokens, LAYER, never, 50.0, only_where_active=True
    )
    torch.testing.assert_close(
        kept, plain_logits(model[0], sae, tokens, LAYER), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("normalize", ["none", "token_standardize"])
def test_a_clamp_moves_the_layer_vector_only_along_the_latents_decoder_row(
    model, tokens, normalize, dense_latents
):
    sae = make_sae(normalize)
    x = layer_vectors(model, sae, tokens)
    dense = dense_latents(sae, x)
    latent, value = int(dense.gt(0).sum(0).argmax()), 3.0
    moved = clamp_latent(sae, x, latent, value)
    scale = (value - dense[:, latent])[:, None]
    if normalize == "token_standardize":
        _, _, std = sae.standardize(x)
        scale = scale * std  # the standardization is undone: the row is scaled by the std
    expected = x + scale * sae.W_dec[latent]
    torch.testing.assert_close(moved, expected, rtol=1e-4, atol=1e-4)
    assert (moved - x).norm(dim=1).min() > 0  # every token moved (value differs from all)

    active = dense[:, latent] > 0
    only = clamp_latent(sae, x, latent, value, only_where_active=True)
    torch.testing.assert_close(only[~active], x[~active], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(only[active], expected[active], rtol=1e-4, atol=1e-4)


def test_only_residue_positions_are_edited(model, tokens):
    sae = make_sae()
    mask = residue_mask(tokens, model[1])
    assert mask.sum() == sum(len(s) for _, s in RECORDS)
    h = torch.randn(*tokens.shape, D)
    out = splice_edit(sae, mask, latent=5, value=10.0)(h)
    assert torch.equal(out[~mask], h[~mask])
    assert (out[mask] - h[mask]).abs().max() > 1.0


def test_steered_sequences_are_argmaxes_over_the_standard_residues(model, tokens, dense_latents):
    sae = make_sae()
    x = layer_vectors(model, sae, tokens)
    latent = int(dense_latents(sae, x).gt(0).sum(0).argmax())
    esm_sae = EsmSae(model[0], model[1], sae, LAYER, torch.device("cpu"))
    out = steered_sequences(esm_sae, RECORDS, latent, [None, 200.0], max_tokens_per_batch=40)
    assert set(out) == {"a", "b", "c"}
    plain = plain_logits(model[0], sae, tokens, LAYER)
    standard = [model[1].get_idx(r) for r in STANDARD_RESIDUES]
    for row, (seq_id, seq) in enumerate(RECORDS):
        baseline, steered = out[seq_id]
        assert len(baseline) == len(steered) == len(seq)
        assert set(baseline + steered) <= set(STANDARD_RESIDUES)
        picks = plain[row, 1 : len(seq) + 1][:, standard].argmax(-1)
        assert baseline == "".join(STANDARD_RESIDUES[i] for i in picks)
    assert any(out[s][0] != out[s][1] for s, _ in RECORDS)  # a huge clamp changes predictions
