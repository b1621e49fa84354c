"""evaluate_sae on a tiny random ESM-2: a lossless SAE recovers all of the loss, an SAE that
outputs zeros recovers none (both variants); an SAE exact on residues but wrong on BOS/EOS
recovers all of it, because the splice covers only trained positions; an interprot SAE is
evaluated on InterProt's activations; the streamed statistics equal a one-shot computation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from protsae.esm import ForwardOptions
from protsae.sae.model import SAEConfig, TopKSAE

esm_mod = pytest.importorskip("protsae.esm", reason="protsae.esm (another module) is not there yet")
evaluate = pytest.importorskip("protsae.sae.evaluate")

torch.set_num_threads(1)
D = 32
LAYER = 1


def _lossless_sae(d: int = D, convention: str = "fair-esm") -> TopKSAE:
    """Latents relu(x) and relu(-x): with k = d exactly the non-zero half is kept, x_hat = x."""
    sae = TopKSAE(SAEConfig(d_model=d, width=2 * d, k=d, activation_convention=convention))
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


@pytest.mark.parametrize("convention", ["fair-esm", "interprot"])
def test_lossless_sae_recovers_all_of_the_loss(tiny_esm: Path, convention: str) -> None:
    result = evaluate.evaluate_sae(
        _lossless_sae(convention=convention),
        tiny_esm,
        RECORDS,
        LAYER,
        forward=ForwardOptions(64, "cpu"),
    )
    assert list(result) == list(evaluate.EVAL_KEYS)
    ends = 2 * len(RECORDS) if convention == "interprot" else 0  # BOS/EOS are trained positions
    assert result["n_tokens"] == sum(len(s) for _, s in RECORDS) + ends
    per_draw = sum(max(1, round(0.15 * len(s))) for _, s in RECORDS)
    assert result["mask_draws"] == 5 and result["n_masked"] == 5 * per_draw
    assert result["activation_convention"] == convention
    assert result["fve"] == pytest.approx(1.0, abs=1e-6)
    assert result["mse"] == pytest.approx(0.0, abs=1e-9)
    assert result["l0"] <= D and result["dead_fraction_eval"] == 0.0
    assert result["dead_fraction_train"] is None  # never trained
    for suffix in ("", "_unmasked"):
        assert abs(result[f"ce_zero{suffix}"] - result[f"ce_clean{suffix}"]) > 1e-3
        assert result[f"delta_ce{suffix}"] == pytest.approx(0.0, abs=1e-4)
        assert result[f"loss_recovered{suffix}"] == pytest.approx(1.0, abs=1e-3)


def test_zero_output_sae_recovers_none_and_dead_latents_count(tiny_esm: Path) -> None:
    sae = _lossless_sae()
    with torch.no_grad():
        sae.W_dec.zero_()  # reconstruction = b_dec = 0, i.e. the zero ablation
        sae.b_enc[D:] = -1e6  # the relu(-x) half can never fire
    sae.cfg.training = {"dead_fraction_train": 0.25}
    result = evaluate.evaluate_sae(sae, tiny_esm, RECORDS, LAYER, forward=ForwardOptions(64, "cpu"))
    for suffix in ("", "_unmasked"):
        assert result[f"ce_sae{suffix}"] == pytest.approx(result[f"ce_zero{suffix}"], abs=1e-4)
        assert result[f"loss_recovered{suffix}"] == pytest.approx(0.0, abs=1e-3)
    assert result["fve"] < 0.01
    assert result["dead_fraction_eval"] == pytest.approx(0.5)
    assert result["dead_fraction_train"] == 0.25  # read from the training record


def _token_dictionary_sae(model, alphabet) -> TopKSAE:
    """At layer 0 every position is its token's embedding times a scale (<mask> and padding:
    zero). With one latent per residue token along its embedding and k = 1, the top latent of
    c * e_r is r itself, so residues are reconstructed exactly; BOS and EOS, whose embeddings
    are in no latent, are reconstructed wrongly (projected on some residue's direction)."""
    token_ids = [alphabet.get_idx(letter) for letter in sorted(esm_mod.RESIDUE_LETTERS)]
    sae = TopKSAE(SAEConfig(d_model=D, width=len(token_ids), k=1))
    with torch.no_grad():
        directions = model.embed_tokens.weight[token_ids]
        directions = directions / directions.norm(dim=1, keepdim=True)
        sae.W_dec.copy_(directions)
        sae.W_enc.copy_(directions.t())
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def test_sae_exact_on_residues_wrong_on_bos_eos_recovers_all_under_the_new_rule(
    tiny_esm: Path,
) -> None:
    model, alphabet = esm_mod.load_model(tiny_esm)
    sae = _token_dictionary_sae(model, alphabet)
    result = evaluate.evaluate_sae(sae, tiny_esm, RECORDS, 0, forward=ForwardOptions(64, "cpu"))
    assert result["fve"] == pytest.approx(1.0, abs=1e-5)  # exact on every residue
    assert abs(result["ce_zero"] - result["ce_clean"]) > 1e-3
    assert result["loss_recovered"] == pytest.approx(1.0, abs=1e-3)
    assert result["loss_recovered_unmasked"] == pytest.approx(1.0, abs=1e-3)
    # The old rule (splice at every position, BOS/EOS included) blames the SAE for inputs
    # it never trained on.
    old = {
        name: esm_mod.masked_lm_cross_entropy(model, alphabet, RECORDS, 0, edit)[0]
        for name, edit in (
            ("clean", None),
            ("sae", evaluate.sae_edit(sae)),
            ("zero", evaluate.zero_edit),
        )
    }
    assert abs(old["sae"] - old["clean"]) > 1e-2
    assert abs(evaluate.loss_recovered(old["clean"], old["sae"], old["zero"]) - 1) > 0.1


def test_interprot_sae_is_evaluated_on_interprot_activations(tiny_esm: Path) -> None:
    model, alphabet = esm_mod.load_model(tiny_esm)
    sae = TopKSAE(SAEConfig(d_model=D, width=96, k=4, activation_convention="interprot"), seed=3)
    result = evaluate.evaluate_sae(sae, tiny_esm, RECORDS, 2, forward=ForwardOptions(64, "cpu"))
    expected = {}
    for convention, ends in (("interprot", True), ("fair-esm", False)):
        stats = evaluate.ReconstructionStats(D, 96)
        for _, h in esm_mod.layer_representations(
            model,
            alphabet,
            RECORDS,
            2,
            esm_mod.ForwardOptions(64),
            convention=convention,
            bos_eos=ends,
        ):
            stats.add(sae, h)
        expected[convention] = stats.result()
    assert result["mse"] == pytest.approx(expected["interprot"]["mse"], rel=1e-5)
    assert result["n_tokens"] == expected["interprot"]["n_tokens"]
    assert result["mse"] != pytest.approx(expected["fair-esm"]["mse"], rel=1e-2)


def test_masked_keys_are_means_over_seeded_draws_with_their_spread(tiny_esm: Path) -> None:
    sae = TopKSAE(SAEConfig(d_model=D, width=96, k=4), seed=3)  # untrained: a lossy SAE
    run = dict(forward=ForwardOptions(64, "cpu"))
    single = [
        evaluate.evaluate_sae(sae, tiny_esm, RECORDS, LAYER, seed=seed, mask_draws=1, **run)
        for seed in (7, 8, 9)
    ]
    pooled = evaluate.evaluate_sae(sae, tiny_esm, RECORDS, LAYER, seed=7, mask_draws=3, **run)
    assert pooled["mask_draws"] == 3
    assert pooled["n_masked"] == sum(r["n_masked"] for r in single)
    for key in evaluate.MASKED_KEYS:
        values = np.array([r[key] for r in single])
        assert single[0][f"{key}_std"] is None  # one draw has no spread
        assert pooled[key] == pytest.approx(values.mean(), rel=1e-9)
        assert pooled[f"{key}_std"] == pytest.approx(values.std(ddof=1), rel=1e-6)
    assert pooled["loss_recovered_std"] > 0  # draws differ: one draw is not the number
    assert pooled["fve"] == single[0]["fve"]  # reconstruction statistics need no mask
    with pytest.raises(ValueError, match="mask_draws must be >= 1"):
        evaluate.evaluate_sae(sae, tiny_esm, RECORDS, LAYER, mask_draws=0, **run)


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
    assert result["dead_fraction_eval"] == pytest.approx(1 - float(fired.float().mean()))
    assert result["n_tokens"] == 300


def test_sae_edit_keeps_shape_and_dtype() -> None:
    edit = evaluate.sae_edit(_lossless_sae(8))
    h = torch.randn(2, 5, 8).to(torch.bfloat16)
    out = edit(h)
    assert out.shape == h.shape and out.dtype == torch.bfloat16
    torch.testing.assert_close(out, h)
    assert evaluate.loss_recovered(2.0, 2.5, 3.0) == pytest.approx(0.5)


def test_every_eval_key_is_documented_in_design_md() -> None:
    design = (Path(__file__).resolve().parents[2] / "docs" / "design.md").read_text()
    section = design.split("## eval.json metrics", 1)[1].split("\n## ", 1)[0]
    documented = [line.split("`")[1] for line in section.splitlines() if line.startswith("| `")]
    assert documented == list(evaluate.EVAL_KEYS)


def test_at_the_last_layer_only_the_unmasked_variant_is_defined(tiny_esm: Path) -> None:
    """At the last layer the LM head reads each position's own vector, and the masked
    positions are never spliced: the masked variant cannot see the SAE (null, not NaN)."""
    sae = _lossless_sae()
    with torch.no_grad():
        sae.W_dec.mul_(0.5)  # a poor reconstruction, visible wherever it is spliced
    result = evaluate.evaluate_sae(sae, tiny_esm, RECORDS, 2, forward=ForwardOptions(64, "cpu"))
    assert result["ce_sae"] == result["ce_zero"] == result["ce_clean"]
    assert result["loss_recovered"] is None and result["delta_ce"] == 0.0
    assert abs(result["delta_ce_unmasked"]) > 1e-3
    assert result["loss_recovered_unmasked"] is not None
