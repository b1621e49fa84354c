"""SAE files: our own (``sae.safetensors`` + ``sae.json``), SAELens' directory layout, and
importers for published InterProt SAEs.

Our tensors carry SAELens' names and shapes (``W_enc`` [d_model, width], ``b_enc`` [width],
``W_dec`` [width, d_model], ``b_dec`` [d_model]); the JSON beside them is
:class:`~protsae.sae.model.SAEConfig`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from protsae.conventions import FAIR_ESM, INTERPROT, check_convention
from protsae.io import atomic_path, write_json
from protsae.sae.model import SAEConfig, TopKSAE
from protsae.version import __version__

TENSOR_NAMES = ("W_enc", "b_enc", "W_dec", "b_dec")
SAELENS_CFG = "cfg.json"
SAELENS_WEIGHTS = "sae_weights.safetensors"
# Our normalizations and SAELens' names for the same computation: its "layer_norm" is
# x - mean, divided by (unbiased std + 1e-5), undone after decoding, like InterProt's.
_TO_SAELENS_NORM = {"none": "none", "token_standardize": "layer_norm"}
_FROM_SAELENS_NORM = {v: k for k, v in _TO_SAELENS_NORM.items()}
_UNIT_NORM_TOLERANCE = 1e-4
# The layer count in a model name: fair-esm's ``esm2_t33_650M_UR50D``, our ``random-t6-d320-s0``.
_NAME_LAYERS = re.compile(r"(?:^|[_-])t(\d+)(?=[_-]|$)")


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: SAE weights not found")
    try:
        return load_file(path)
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from err


def _check_shapes(path: Path, tensors: dict[str, torch.Tensor], d_model: int, width: int) -> None:
    expected = {
        "W_enc": (d_model, width),
        "b_enc": (width,),
        "W_dec": (width, d_model),
        "b_dec": (d_model,),
    }
    for name, shape in expected.items():
        if name not in tensors:
            raise ValueError(f"{path}: tensor {name!r} missing (has {sorted(tensors)})")
        if tuple(tensors[name].shape) != shape:
            raise ValueError(
                f"{path}: tensor {name!r} has shape {tuple(tensors[name].shape)}, "
                f"expected {shape} for d_model={d_model}, width={width}"
            )


def _decoder_is_unit_norm(W_dec: torch.Tensor) -> bool:
    norms = W_dec.float().norm(dim=1)
    return bool(((norms - 1).abs() <= _UNIT_NORM_TOLERANCE).all())


def _build(cfg: SAEConfig, tensors: dict[str, torch.Tensor], device: str | torch.device) -> TopKSAE:
    sae = TopKSAE(cfg)
    with torch.no_grad():
        for name in TENSOR_NAMES:
            getattr(sae, name).copy_(tensors[name].float())
    return sae.to(device)


def _state(sae: TopKSAE) -> dict[str, torch.Tensor]:
    return {name: getattr(sae, name).detach().float().cpu().contiguous() for name in TENSOR_NAMES}


# -- our format ---------------------------------------------------------------------------------


def sibling_json(safetensors_path: str | os.PathLike[str]) -> Path:
    """The config file that belongs to a weights file: ``sae.safetensors`` -> ``sae.json``."""
    return Path(safetensors_path).with_suffix(".json")


def save_sae(
    sae: TopKSAE, safetensors_path: str | os.PathLike[str], json_path: str | os.PathLike[str]
) -> None:
    """Write the weights and the config, each atomically."""
    with atomic_path(safetensors_path) as tmp:
        save_file(_state(sae), tmp, metadata={"format": "pt", "protsae_version": __version__})
    write_json(sae.cfg.to_dict(), json_path)


def record_esm_model(json_path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Set ``sae.json``'s ``esm`` record (the ESM-2 the SAE was trained on) in place,
    atomically; every other key stays as it is."""
    path = Path(json_path)
    data = json.loads(path.read_text())
    data["esm"] = record
    write_json(data, path)


def load_sae(
    safetensors_path: str | os.PathLike[str],
    json_path: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
) -> TopKSAE:
    """Load an SAE written by :func:`save_sae` (config from the sibling ``.json`` by default)."""
    path = Path(safetensors_path)
    json_path = Path(json_path) if json_path is not None else sibling_json(path)
    if not json_path.is_file():
        raise FileNotFoundError(f"{json_path}: SAE config not found (expected beside {path})")
    try:
        cfg = SAEConfig.from_dict(json.loads(json_path.read_text()))
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        raise ValueError(f"{json_path}: not a valid SAE config ({err})") from err
    tensors = _read_safetensors(path)
    _check_shapes(path, tensors, cfg.d_model, cfg.width)
    return _build(cfg, tensors, device).eval()


# -- SAELens ------------------------------------------------------------------------------------


def saelens_hook_name(layer: int, num_layers: int, convention: str = FAIR_ESM) -> str:
    """A TransformerLens-style name that says which vector ESM representation ``layer`` is.

    fair-esm's representation L (1-based) is the output of block L, i.e. block L-1 in 0-based
    TransformerLens naming. The two ends depend on the convention (:mod:`protsae.conventions`):
    layer 0 is the raw token embedding (``hook_embed``) under ``interprot`` but the embedding
    times fair-esm's token-dropout factor (``hook_embed_token_dropout_scaled``) under
    ``fair-esm``; the last layer is the raw residual stream (``blocks.{L-1}.hook_resid_post``)
    under ``interprot`` but the output of the final layer norm (``ln_final.hook_normalized``)
    under ``fair-esm``.
    """
    check_convention(convention)
    if not 0 <= layer <= num_layers:
        raise ValueError(f"layer {layer} out of range for a model with {num_layers} layers")
    if layer == 0:
        return "hook_embed" if convention == INTERPROT else "hook_embed_token_dropout_scaled"
    if layer == num_layers and convention == FAIR_ESM:
        return "ln_final.hook_normalized"
    return f"blocks.{layer - 1}.hook_resid_post"


def model_layer_count(model: str) -> int | None:
    """The number of layers a model name states (``esm2_t33_...``, ``random-t6-...``), or None."""
    match = _NAME_LAYERS.search(Path(model).stem if model else "")
    return int(match.group(1)) if match else None


def export_saelens(
    sae: TopKSAE, out_dir: str | os.PathLike[str], num_layers: int | None = None
) -> Path:
    """Write ``cfg.json`` + ``sae_weights.safetensors`` in SAELens 6's directory layout.

    ``SAE.load_from_disk(out_dir)`` in SAELens then gives the same latents and reconstruction.
    The hook name (:func:`saelens_hook_name`) needs the model's layer count: ``num_layers``, or
    read from the model name (``esm2_t33_...``). For a ``token_standardize`` SAE, SAELens'
    ``layer_norm`` keeps each ``encode`` call's mean and std for the next ``decode``, so latents
    can only be decoded together with the activations they were encoded from.
    """
    cfg = sae.cfg
    out = Path(out_dir)
    if num_layers is None:
        num_layers = model_layer_count(cfg.model)
    if num_layers is None or cfg.layer < 0:
        raise ValueError(
            f"SAELens export of an SAE on model {cfg.model!r}, layer {cfg.layer}: the hook name "
            "needs the layer and the model's layer count; pass num_layers"
        )
    saelens_cfg: dict[str, Any] = {
        "architecture": "topk",
        "d_in": cfg.d_model,
        "d_sae": cfg.width,
        "k": cfg.k,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": _TO_SAELENS_NORM[cfg.normalize],
        "reshape_activations": "none",
        "rescale_acts_by_decoder_norm": False,
        "metadata": {
            "sae_lens_version": "6.0.0",  # the cfg layout this file follows
            "sae_lens_training_version": f"protsae-{__version__}",
            "model_name": cfg.model,
            "hook_name": saelens_hook_name(cfg.layer, num_layers, cfg.activation_convention),
            "hook_head_index": None,
            "prepend_bos": True,
            "protsae_layer": cfg.layer,
            "protsae_activation_convention": cfg.activation_convention,
            "protsae_config": cfg.to_dict(),
        },
    }
    with atomic_path(out / SAELENS_WEIGHTS) as tmp:
        save_file(_state(sae), tmp, metadata={"format": "pt"})
    write_json(saelens_cfg, out / SAELENS_CFG)
    return out


def load_saelens(directory: str | os.PathLike[str], device: str | torch.device = "cpu") -> TopKSAE:
    """Load a TopK SAE in SAELens' layout (ours or SAELens' own, cfg layouts 5 and 6).

    Options our model lacks are folded into the weights exactly: ``apply_b_dec_to_input =
    False`` moves ``W_enc^T b_dec`` into ``b_enc``; ``rescale_acts_by_decoder_norm`` moves the
    decoder row norms into the encoder.
    """
    root = Path(directory)
    cfg_path = root / SAELENS_CFG
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: SAELens config not found")
    raw = json.loads(cfg_path.read_text())
    meta = raw.get("metadata") or {}
    architecture = raw.get("architecture")
    k = raw.get("k", (raw.get("activation_fn_kwargs") or {}).get("k"))
    if architecture != "topk" and raw.get("activation_fn", raw.get("activation_fn_str")) != "topk":
        raise ValueError(f"{cfg_path}: architecture {architecture!r} is not a TopK SAE")
    if k is None:
        raise ValueError(f"{cfg_path}: TopK SAE without k")
    norm = raw.get("normalize_activations") or "none"
    if norm not in _FROM_SAELENS_NORM:
        raise ValueError(
            f"{cfg_path}: normalize_activations {norm!r} has no protsae equivalent "
            f"(supported: {sorted(_FROM_SAELENS_NORM)})"
        )
    weights_path = root / SAELENS_WEIGHTS
    tensors = {name: t.float() for name, t in _read_safetensors(weights_path).items()}
    d_model, width = int(raw["d_in"]), int(raw["d_sae"])
    _check_shapes(weights_path, tensors, d_model, width)

    if raw.get("rescale_acts_by_decoder_norm"):
        norms = tensors["W_dec"].norm(dim=1).clamp_min(1e-8)
        tensors["W_enc"] = tensors["W_enc"] * norms
        tensors["b_enc"] = tensors["b_enc"] * norms
        tensors["W_dec"] = tensors["W_dec"] / norms[:, None]
    if not raw.get("apply_b_dec_to_input", True):
        tensors["b_enc"] = tensors["b_enc"] + tensors["b_dec"] @ tensors["W_enc"]

    stored = meta.get("protsae_config") or {}
    layer = meta.get("protsae_layer", raw.get("hook_layer", stored.get("layer", -1)))
    cfg = SAEConfig(
        d_model=d_model,
        width=width,
        k=int(k),
        normalize=_FROM_SAELENS_NORM[norm],
        auxk=stored.get("auxk"),
        dead_tokens=stored.get("dead_tokens", SAEConfig.dead_tokens),
        decoder_unit_norm=_decoder_is_unit_norm(tensors["W_dec"]),
        activation_convention=meta.get(
            "protsae_activation_convention", stored.get("activation_convention", FAIR_ESM)
        ),
        model=meta.get("model_name", raw.get("model_name")) or "",
        layer=int(layer if layer is not None else -1),
        training=stored.get("training", {}),
        source=stored.get("source") or {"format": "saelens", "path": root.name},
    )
    return _build(cfg, tensors, device).eval()


# -- InterProt ----------------------------------------------------------------------------------

_INTERPROT_NAMES = {"w_enc": "W_enc", "w_dec": "W_dec", "b_enc": "b_enc", "b_pre": "b_dec"}


def import_interprot(
    path: str | os.PathLike[str], k: int, model: str = "", layer: int = -1
) -> TopKSAE:
    """Turn a published InterProt SAE (``w_enc``, ``w_dec``, ``b_enc``, ``b_pre``) into ours.

    InterProt standardizes each token before encoding and undoes it after decoding, so the
    result uses ``normalize="token_standardize"``; it was trained on InterProt's activations, so
    ``activation_convention="interprot"`` (:mod:`protsae.conventions`). Weights are kept exactly as published:
    InterProt's decoder rows are not unit-norm (its training normalized the other axis), and
    renormalizing them would change the reconstructions; ``decoder_unit_norm`` records this.
    """
    path = Path(path)
    raw = _read_safetensors(path)
    tensors: dict[str, torch.Tensor] = {}
    for key, tensor in raw.items():
        short = key.rsplit(".", 1)[-1]  # tolerate a module prefix such as "sae.w_enc"
        if short in _INTERPROT_NAMES:
            if _INTERPROT_NAMES[short] in tensors:
                raise ValueError(f"{path}: more than one tensor named like {short!r}")
            tensors[_INTERPROT_NAMES[short]] = tensor.float()
    missing = sorted(short for short, ours in _INTERPROT_NAMES.items() if ours not in tensors)
    if missing:
        raise ValueError(
            f"{path}: not an InterProt SAE: tensors {missing} missing (has {sorted(raw)})"
        )
    if tensors["W_enc"].ndim != 2:
        raise ValueError(
            f"{path}: w_enc must be 2-d [d_model, width], got {tuple(tensors['W_enc'].shape)}"
        )
    d_model, width = tensors["W_enc"].shape
    _check_shapes(path, tensors, d_model, width)
    norms = tensors["W_dec"].norm(dim=1)
    cfg = SAEConfig(
        d_model=d_model,
        width=width,
        k=k,
        normalize="token_standardize",
        decoder_unit_norm=_decoder_is_unit_norm(tensors["W_dec"]),
        activation_convention=INTERPROT,
        model=model,
        layer=layer,
        source={
            "format": "interprot",
            "file": path.name,
            "note": "weights as published; decoder rows not renormalized",
            "decoder_row_norm_min": float(norms.min()),
            "decoder_row_norm_max": float(norms.max()),
        },
    )
    return _build(cfg, tensors, "cpu").eval()
