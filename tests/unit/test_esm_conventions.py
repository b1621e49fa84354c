"""Activation conventions of protsae.esm: ``interprot`` against a literal application of
InterProt's convention on fair-esm's own modules; restricted edits and the unmasked loss."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from protsae import esm as pesm

LAYERS, DIM, HEADS = 3, 48, 4
TOL = 1e-4
AMINO = "ACDEFGHIKLMNPQRSTVWY"


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def _records(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(f"s{i}", "".join(rng.choices(AMINO, k=rng.randint(3, 60)))) for i in range(n)]


RECORDS = [("rare", "MXBZUOACDEFGHIK"), ("one", "W"), *_records(6, seed=2)]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "random-t3-d48-s5.pt"
    pesm.save_random_init(path, LAYERS, DIM, HEADS, seed=5)
    return pesm.load_model(path)


def interprot_reference(model, alphabet, sequence: str, layer: int) -> torch.Tensor:
    """InterProt's convention applied literally, one sequence (so no padding): the embedding
    unscaled, then the first ``layer`` of fair-esm's own TransformerLayer modules, no final
    norm. Returns [len + 2, d]: BOS, residues, EOS."""
    _, _, tokens = alphabet.get_batch_converter()([("x", sequence)])
    with torch.no_grad():
        x = model.embed_scale * model.embed_tokens(tokens)
        x = x.transpose(0, 1)
        for module in model.layers[:layer]:
            x, _ = module(x, self_attn_padding_mask=None, need_head_weights=False)
    return x.transpose(0, 1)[0]


@pytest.mark.parametrize("layer", [0, 2, LAYERS], ids=["embedding", "middle", "last"])
def test_interprot_convention_equals_the_literal_reference(loaded, layer):
    model, alphabet = loaded
    # A small budget puts several sequences of different lengths (so padding) in each batch.
    with_ends = dict(
        pesm.layer_representations(
            model,
            alphabet,
            RECORDS,
            layer,
            pesm.ForwardOptions(150),
            convention="interprot",
            bos_eos=True,
        )
    )
    residues = dict(
        pesm.layer_representations(
            model, alphabet, RECORDS, layer, pesm.ForwardOptions(150), convention="interprot"
        )
    )
    fair = dict(
        pesm.layer_representations(model, alphabet, RECORDS, layer, pesm.ForwardOptions(150))
    )
    for seq_id, seq in RECORDS:
        reference = interprot_reference(model, alphabet, seq, layer)
        assert with_ends[seq_id].shape == (len(seq) + 2, DIM)
        torch.testing.assert_close(with_ends[seq_id], reference, atol=TOL, rtol=0)
        torch.testing.assert_close(residues[seq_id], reference[1:-1], atol=TOL, rtol=0)
        # fair-esm's vectors are another quantity: rescaled embedding, final norm at the end.
        assert (fair[seq_id] - residues[seq_id]).abs().max() > 1e-2
    if layer == 0:  # with nothing masked, fair-esm's token-dropout factor is 1 - 0.15 * 0.8
        for seq_id, _ in RECORDS:
            torch.testing.assert_close(fair[seq_id], 0.88 * residues[seq_id])


def test_interprot_forward_and_last_layer_edit(loaded):
    model, alphabet = loaded
    records = RECORDS[:4]
    _, _, tokens = alphabet.get_batch_converter()(records)
    seen = []

    def capture(h):
        seen.append(h.clone())
        return h

    with torch.no_grad():
        logits = pesm.forward_with_layer_edit(model, tokens, LAYERS, capture, "interprot")
        constant = torch.zeros(tokens.shape[0], tokens.shape[1], DIM)
        constant[..., 0] = 1.0
        from_constant = pesm.forward_with_layer_edit(
            model, tokens, LAYERS, lambda h: constant, convention="interprot"
        )
        expected_constant = model.lm_head(model.emb_layer_norm_after(constant))
    for i, (_, seq) in enumerate(records):
        reference = interprot_reference(model, alphabet, seq, LAYERS)
        # The last layer's edit sees the raw stream (no final norm) ...
        torch.testing.assert_close(seen[0][i, : len(seq) + 2], reference, atol=TOL, rtol=0)
        # ... and the LM head still gets the norm, as in InterProt's get_sequence.
        with torch.no_grad():
            expected = model.lm_head(model.emb_layer_norm_after(reference))
        torch.testing.assert_close(logits[i, : len(seq) + 2], expected, atol=TOL, rtol=0)
    torch.testing.assert_close(from_constant, expected_constant, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="activation convention"):
        pesm.forward_with_layer_edit(model, tokens, 1, None, convention="esm")


def test_sae_positions_are_unmasked_residues_plus_ends_for_interprot(loaded):
    _, alphabet = loaded
    _, _, tokens = alphabet.get_batch_converter()([("a", "MKVW"), ("b", "MK")])
    tokens[0, 2] = alphabet.mask_idx
    fair = pesm.sae_positions(alphabet, "fair-esm")(tokens)
    interprot = pesm.sae_positions(alphabet, "interprot")(tokens)
    # BOS M K V W EOS / BOS M K EOS pad pad; position 2 of row 0 masked.
    assert fair.tolist() == [
        [False, True, False, True, True, False],
        [False, True, True, False, False, False],
    ]
    assert interprot.tolist() == [
        [True, True, False, True, True, True],
        [True, True, True, True, False, False],
    ]


def test_unmasked_cross_entropy_scores_every_residue(loaded):
    model, alphabet = loaded
    ce, n = pesm.masked_lm_cross_entropy(model, alphabet, RECORDS, 2, None, pesm.Masking(0.0))
    assert n == sum(len(s) for _, s in RECORDS)
    total = 0.0
    convert = alphabet.get_batch_converter()
    for seq_id, seq in RECORDS:  # fair-esm's own forward, nothing masked
        _, _, tokens = convert([(seq_id, seq)])
        with torch.no_grad():
            logits = model(tokens)["logits"][0, 1 : len(seq) + 1]
        total += F.cross_entropy(logits, tokens[0, 1 : len(seq) + 1], reduction="sum").item()
    assert ce == pytest.approx(total / n, abs=1e-4)
    with pytest.raises(ValueError, match="mask_fraction"):
        pesm.masked_lm_cross_entropy(model, alphabet, RECORDS, 2, None, pesm.Masking(-0.1))


def test_edit_positions_keep_the_clean_output_elsewhere(loaded):
    model, alphabet = loaded
    args = (model, alphabet, RECORDS, 2)
    clean = pesm.masked_lm_cross_entropy(*args, None, pesm.Masking(seed=1))
    nowhere = pesm.masked_lm_cross_entropy(
        *args,
        pesm.LayerEdit(torch.zeros_like, lambda t: torch.zeros_like(t, dtype=bool)),
        pesm.Masking(seed=1),
    )
    assert nowhere == clean
    everywhere = pesm.masked_lm_cross_entropy(*args, torch.zeros_like, pesm.Masking(seed=1))
    residues = pesm.masked_lm_cross_entropy(
        *args,
        pesm.LayerEdit(torch.zeros_like, pesm.sae_positions(alphabet, "fair-esm")),
        pesm.Masking(seed=1),
    )
    # Zeroing only unmasked residues is a different (and here milder) ablation than zeroing all.
    assert residues[1] == everywhere[1] == clean[1]
    assert abs(residues[0] - everywhere[0]) > 1e-3 and abs(residues[0] - clean[0]) > 1e-3
