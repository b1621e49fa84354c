"""SAE files: our format and SAELens' round-trip; SAELens itself (when installed) reads our
export; an InterProt file imports to a model that reproduces InterProt's own forward."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from protsae.sae import export_saelens, import_interprot, load_sae, load_saelens, save_sae
from protsae.sae.formats import model_layer_count, saelens_hook_name
from protsae.sae.model import SAEConfig, TopKSAE

torch.set_num_threads(1)


def _trained_looking_sae(normalize: str = "none") -> TopKSAE:
    cfg = SAEConfig(
        d_model=16,
        width=64,
        k=5,
        normalize=normalize,
        model="esm2_t6_8M_UR50D",
        layer=4,
        training={"lr": 1e-3, "steps": 10},
    )
    sae = TopKSAE(cfg, seed=7)
    with torch.no_grad():
        sae.W_enc.add_(0.3 * torch.randn_like(sae.W_enc))
        sae.b_enc.normal_(0, 0.3)
        sae.b_dec.normal_(0, 1.0)
    return sae


def _assert_same_model(a: TopKSAE, b: TopKSAE, x: torch.Tensor, dense) -> None:
    with torch.no_grad():
        torch.testing.assert_close(dense(a, x), dense(b, x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a(x).x_hat, b(x).x_hat, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("normalize", ["none", "token_standardize"])
def test_own_format_round_trip(tmp_path: Path, normalize: str, dense_latents) -> None:
    sae = _trained_looking_sae(normalize)
    save_sae(sae, tmp_path / "sae.safetensors", tmp_path / "sae.json")
    loaded = load_sae(tmp_path / "sae.safetensors")
    assert loaded.cfg == sae.cfg
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(loaded, name), getattr(sae, name))
    assert set(load_file(tmp_path / "sae.safetensors")) == {"W_enc", "b_enc", "W_dec", "b_dec"}
    saved = json.loads((tmp_path / "sae.json").read_text())
    assert saved["normalize"] == normalize and saved["activation_convention"] == "fair-esm"
    _assert_same_model(sae, loaded, torch.randn(30, 16) * 2, dense_latents)


def test_own_format_errors_name_the_file(tmp_path: Path) -> None:
    sae = _trained_looking_sae()
    save_sae(sae, tmp_path / "sae.safetensors", tmp_path / "sae.json")
    tensors = load_file(tmp_path / "sae.safetensors")
    tensors["W_dec"] = tensors["W_dec"][:, :8].contiguous()
    save_file(tensors, tmp_path / "bad.safetensors")
    (tmp_path / "bad.json").write_text((tmp_path / "sae.json").read_text())
    with pytest.raises(ValueError, match=r"bad\.safetensors.*'W_dec'.*\(64, 8\)"):
        load_sae(tmp_path / "bad.safetensors")
    with pytest.raises(FileNotFoundError, match=r"other\.json"):
        load_sae(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    (tmp_path / "junk.json").write_text((tmp_path / "sae.json").read_text())
    with pytest.raises(ValueError, match=r"junk\.safetensors"):
        load_sae(tmp_path / "junk.safetensors")


@pytest.mark.parametrize("normalize", ["none", "token_standardize"])
def test_saelens_layout_round_trip(tmp_path: Path, normalize: str, dense_latents) -> None:
    sae = _trained_looking_sae(normalize)
    export_saelens(sae, tmp_path / "saelens")
    cfg = json.loads((tmp_path / "saelens" / "cfg.json").read_text())
    assert cfg["architecture"] == "topk" and (cfg["d_in"], cfg["d_sae"], cfg["k"]) == (16, 64, 5)
    assert (
        cfg["normalize_activations"]
        == {"none": "none", "token_standardize": "layer_norm"}[normalize]
    )
    assert cfg["metadata"]["hook_name"] == "blocks.3.hook_resid_post"
    loaded = load_saelens(tmp_path / "saelens")
    assert (loaded.cfg.model, loaded.cfg.layer, loaded.cfg.normalize) == (
        "esm2_t6_8M_UR50D",
        4,
        normalize,
    )
    _assert_same_model(sae, loaded, torch.randn(30, 16) * 2, dense_latents)


def test_hook_names_say_what_the_vector_is() -> None:
    assert saelens_hook_name(3, 33) == "blocks.2.hook_resid_post"
    assert saelens_hook_name(3, 33, "interprot") == "blocks.2.hook_resid_post"
    # fair-esm's last representation is after the final layer norm; InterProt's is not.
    assert saelens_hook_name(33, 33) == "ln_final.hook_normalized"
    assert saelens_hook_name(33, 33, "interprot") == "blocks.32.hook_resid_post"
    # fair-esm's layer 0 carries the token-dropout factor; InterProt's is the raw embedding.
    assert saelens_hook_name(0, 33) == "hook_embed_token_dropout_scaled"
    assert saelens_hook_name(0, 33, "interprot") == "hook_embed"
    with pytest.raises(ValueError, match="out of range"):
        saelens_hook_name(34, 33)
    assert model_layer_count("esm2_t33_650M_UR50D") == 33
    assert model_layer_count("random-t4-d64-s0") == 4
    assert model_layer_count("my_model") is None


def test_saelens_export_of_last_layer_and_convention(tmp_path: Path) -> None:
    sae = _trained_looking_sae()
    sae.cfg.layer = 6  # the last layer of esm2_t6_8M_UR50D
    sae.cfg.activation_convention = "interprot"
    export_saelens(sae, tmp_path / "a")
    cfg = json.loads((tmp_path / "a" / "cfg.json").read_text())
    assert cfg["metadata"]["hook_name"] == "blocks.5.hook_resid_post"
    assert load_saelens(tmp_path / "a").cfg.activation_convention == "interprot"
    sae.cfg.model = "demo_model"  # no layer count in the name
    with pytest.raises(ValueError, match="num_layers"):
        export_saelens(sae, tmp_path / "b")
    export_saelens(sae, tmp_path / "b", num_layers=8)
    assert json.loads((tmp_path / "b" / "cfg.json").read_text())["metadata"]["hook_name"] == (
        "blocks.5.hook_resid_post"
    )


def test_saelens_options_are_folded_exactly(tmp_path: Path, dense_latents) -> None:
    """A SAELens-written TopK SAE without b_dec subtraction and with decoder-norm rescaling."""
    torch.manual_seed(0)
    d, width, k = 12, 40, 4
    W_enc, b_enc = torch.randn(d, width), torch.randn(width) * 0.2
    W_dec, b_dec = torch.randn(width, d) * 2, torch.randn(d)
    save_file(
        {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec},
        tmp_path / "sae_weights.safetensors",
    )
    cfg = {
        "architecture": "topk",
        "d_in": d,
        "d_sae": width,
        "k": k,
        "dtype": "float32",
        "apply_b_dec_to_input": False,
        "rescale_acts_by_decoder_norm": True,
        "normalize_activations": "none",
        "metadata": {"sae_lens_version": "6.5.0", "model_name": "m", "hook_name": "h"},
    }
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    x = torch.randn(25, d)
    # SAELens' TopK math written out densely.
    norms = W_dec.norm(dim=1)
    pre = (x @ W_enc + b_enc) * norms
    top = pre.topk(k, dim=1)
    z = torch.zeros_like(pre).scatter(1, top.indices, top.values.relu())
    x_hat = (z / norms) @ W_dec + b_dec
    sae = load_saelens(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(dense_latents(sae, x), z, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(sae(x).x_hat, x_hat, atol=1e-4, rtol=1e-4)
    cfg["normalize_activations"] = "expected_average_only_in"
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="expected_average_only_in"):
        load_saelens(tmp_path)


@pytest.mark.parametrize("normalize", ["none", "token_standardize"])
def test_sae_lens_package_loads_our_export(
    tmp_path: Path, normalize: str, optional_module: Callable[[str], Any], dense_latents
) -> None:
    sae_lens = optional_module("sae_lens")
    sae = _trained_looking_sae(normalize)
    export_saelens(sae, tmp_path)
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path), device="cpu")
    x = torch.randn(30, 16) * 2
    with torch.no_grad():
        their_latents = theirs.encode(x)
        their_x_hat = theirs.decode(their_latents)
        torch.testing.assert_close(their_latents, dense_latents(sae, x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(their_x_hat, sae(x).x_hat, atol=1e-5, rtol=1e-5)


def _interprot_forward(x, w_enc, w_dec, b_enc, b_pre, k):
    """InterProt's published inference math, dense and independent of our model."""
    mu = x.mean(dim=-1, keepdim=True)
    centred = x - mu
    std = centred.std(dim=-1, keepdim=True)
    x_n = centred / (std + 1e-5) - b_pre
    pre = x_n @ w_enc + b_enc
    top = torch.topk(pre, k=k, dim=-1)
    latents = torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))
    recons = (latents @ w_dec + b_pre) * std + mu
    return latents, recons


def test_interprot_import_reproduces_their_forward(tmp_path: Path, dense_latents) -> None:
    torch.manual_seed(0)
    d, width, k = 20, 80, 6
    w_enc = torch.randn(d, width) / d**0.5
    w_dec = torch.randn(width, d) * 0.3  # rows deliberately not unit-norm, as published
    b_enc, b_pre = torch.randn(width) * 0.1, torch.randn(d) * 0.2
    path = tmp_path / "esm2_plm1280_l24_sae4096.safetensors"
    save_file({"w_enc": w_enc, "w_dec": w_dec, "b_enc": b_enc, "b_pre": b_pre}, path)

    sae = import_interprot(path, k=k, model="esm2_t33_650M_UR50D", layer=24)
    assert sae.cfg.normalize == "token_standardize" and not sae.cfg.decoder_unit_norm
    assert sae.cfg.activation_convention == "interprot"
    assert sae.cfg.source["format"] == "interprot" and sae.cfg.layer == 24
    assert torch.equal(sae.W_dec, w_dec)  # kept as published, not renormalized

    x = torch.randn(50, d) * 4 + 1.5
    latents, recons = _interprot_forward(x, w_enc, w_dec, b_enc, b_pre, k)
    with torch.no_grad():
        torch.testing.assert_close(dense_latents(sae, x), latents, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(sae(x).x_hat, recons, atol=1e-4, rtol=1e-5)

    save_sae(sae, tmp_path / "sae.safetensors", tmp_path / "sae.json")
    reloaded = load_sae(tmp_path / "sae.safetensors")
    assert not reloaded.cfg.decoder_unit_norm
    assert json.loads((tmp_path / "sae.json").read_text())["activation_convention"] == "interprot"
    assert reloaded.cfg.activation_convention == "interprot"
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x).x_hat, recons, atol=1e-4, rtol=1e-5)


def test_interprot_import_errors(tmp_path: Path) -> None:
    path = tmp_path / "partial.safetensors"
    save_file({"w_enc": torch.zeros(4, 8), "b_enc": torch.zeros(8)}, path)
    with pytest.raises(ValueError, match=r"partial\.safetensors.*\['b_pre', 'w_dec'\]"):
        import_interprot(path, k=2)
    save_file(
        {
            "w_enc": torch.zeros(4, 8),
            "w_dec": torch.zeros(8, 5),
            "b_enc": torch.zeros(8),
            "b_pre": torch.zeros(4),
        },
        path,
    )
    with pytest.raises(ValueError, match=r"partial\.safetensors.*'W_dec'"):
        import_interprot(path, k=2)
