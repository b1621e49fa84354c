"""ESM-2 checkpoints in fair-esm's format: the seeded random init, saving it, loading any of them.

Every model, published or random, comes from a checkpoint in fair-esm's own format and goes
through fair-esm's own loader, so the published 650M weights and the offline demo's random
init exercise the same code.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import warnings
from pathlib import Path

import esm
import torch
from esm.model.esm2 import ESM2

from protsae.config import regression_path
from protsae.device import resolve_device
from protsae.huggingface import esm_shape, load_hf_files, load_hf_folder, read_config
from protsae.io import atomic_path


def build_random_init(num_layers: int, embed_dim: int, attention_heads: int, seed: int) -> ESM2:
    """fair-esm's ESM2 with its default (random) initialisation, reproducible from ``seed``.

    The global RNG is left as it was, so building a model never changes a caller's random stream.
    """
    if num_layers < 1 or embed_dim < 1 or attention_heads < 1:
        raise ValueError(
            f"random ESM-2 needs positive sizes, got layers={num_layers}, "
            f"embed_dim={embed_dim}, heads={attention_heads}"
        )
    if embed_dim % attention_heads or (embed_dim // attention_heads) % 2:
        raise ValueError(
            f"embed_dim {embed_dim} must split into {attention_heads} heads of even size "
            "(rotary embeddings rotate pairs of dimensions)"
        )
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ESM2(
            num_layers=num_layers,
            embed_dim=embed_dim,
            attention_heads=attention_heads,
            alphabet=alphabet,
            token_dropout=True,
        )
    return model.eval()


def save_esm2_checkpoint(model: ESM2, path: str | os.PathLike[str]) -> None:
    """Write ``model`` in fair-esm's layout: ``{model: encoder.* state, cfg: {model: Namespace}}``
    plus ``<stem>-contact-regression.pt``, so it loads through exactly the path the published
    weights take. The regression file is written first: the ``.pt`` is the declared output, so it
    must be the last to appear.
    """
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    regression = {k: v for k, v in state.items() if k.startswith("contact_head.regression.")}
    encoder = {f"encoder.{k}": v for k, v in state.items() if k not in regression}
    cfg = argparse.Namespace(
        encoder_layers=model.num_layers,
        encoder_embed_dim=model.embed_dim,
        encoder_attention_heads=model.attention_heads,
        token_dropout=model.token_dropout,
    )
    _save_reproducibly({"model": regression}, regression_path(path))
    _save_reproducibly({"model": encoder, "cfg": {"model": cfg}}, path)


def _save_reproducibly(obj: object, path: Path) -> None:
    """``torch.save`` to ``path`` atomically, the same bytes for the same tensors: saved to a file,
    torch names the archive's inner folder after it (here a random temporary name)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def save_random_init(
    path: str | os.PathLike[str], num_layers: int, embed_dim: int, attention_heads: int, seed: int
) -> None:
    """Save a seeded random ESM-2 in fair-esm's checkpoint layout (plus its contact-regression file).

    Random weights make an offline pipeline possible; writing them in the published layout means
    they load through exactly the path the real weights take.
    """
    save_esm2_checkpoint(build_random_init(num_layers, embed_dim, attention_heads, seed), path)


def _load_torch_file(path: Path) -> object:
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch errors all mean "not a usable checkpoint"
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: not a readable torch checkpoint ({first_line})") from err


def _check_esm2_layout(path: Path, data: object) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise ValueError(
            f"{path}: not an ESM-2 checkpoint (expected a dict with a 'model' state dict)"
        )
    cfg = data.get("cfg")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model"), argparse.Namespace):
        hint = " (it has 'args': an ESM-1/ESM-1b checkpoint?)" if "args" in data else ""
        raise ValueError(
            f"{path}: not an ESM-2 checkpoint in fair-esm's format: no cfg['model'] namespace{hint}"
        )
    required = ("encoder_layers", "encoder_embed_dim", "encoder_attention_heads", "token_dropout")
    missing = [key for key in required if not hasattr(cfg["model"], key)]
    if missing:
        raise ValueError(
            f"{path}: not an ESM-2 checkpoint: cfg['model'] lacks {', '.join(missing)}"
        )


def load_model(
    checkpoint: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[ESM2, esm.data.Alphabet]:
    """Load an ESM-2 checkpoint in fair-esm's format (published, local or our random init), or
    a Hugging Face ``save_pretrained`` folder (converted in memory, :mod:`protsae.huggingface`).

    ``torch.load(weights_only=True)`` with only ``argparse.Namespace`` allowed, so a checkpoint
    cannot run arbitrary code; then fair-esm's own ``load_model_and_alphabet_core``. The
    ``<stem>-contact-regression.pt`` beside it is used when present (contacts are not needed here).
    """
    path = Path(checkpoint)
    if path.is_dir():
        model = load_hf_folder(path)
        return model.to(resolve_device(device)), esm.data.Alphabet.from_architecture("ESM-1b")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ESM-2 checkpoint not found")
    model_data = _load_torch_file(path)
    _check_esm2_layout(path, model_data)
    regression_file = regression_path(path)
    regression_data = _load_torch_file(regression_file) if regression_file.is_file() else None
    # fair-esm chooses its ESM-2 branch by name prefix alone; the stem may be anything.
    name = path.stem if path.stem.startswith("esm2") else f"esm2_{path.stem}"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Regression weights not found")
            model, alphabet = esm.pretrained.load_model_and_alphabet_core(
                name, model_data, regression_data
            )
    except (RuntimeError, KeyError, AttributeError, TypeError) as err:
        raise ValueError(f"{path}: state dict does not fit its ESM-2 config: {err}") from err
    return model.eval().to(resolve_device(device)), alphabet


def save_hf_as_fairesm(
    config_path: str | os.PathLike[str],
    weights_path: str | os.PathLike[str],
    vocab_path: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    where: str = "esm.model",
) -> None:
    """Write a Hugging Face ESM-2 as a fair-esm checkpoint (``out`` and its contact-regression
    file beside it), the file every ESM job then loads."""
    save_esm2_checkpoint(load_hf_files(config_path, weights_path, vocab_path, where), out)


# ---- which ESM-2 an SAE was trained on (sae.json "esm") ---------------------------------

#: Weight files of a Hugging Face ``save_pretrained`` folder.
WEIGHT_SUFFIXES = (".safetensors", ".bin")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(weights: str | os.PathLike[str]) -> str:
    """The sha256 of an ESM-2's weights: of the checkpoint file's bytes, or for a
    ``save_pretrained`` folder, of its weight files' ``<name> <sha256>`` lines in name order."""
    path = Path(weights)
    if not path.is_dir():
        return _file_sha256(path)
    files = sorted(f for f in path.iterdir() if f.suffix in WEIGHT_SUFFIXES and f.is_file())
    if not files:
        raise FileNotFoundError(f"{path}: no weight files ({', '.join(WEIGHT_SUFFIXES)})")
    lines = "".join(f"{f.name} {_file_sha256(f)}\n" for f in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def model_shape(weights: str | os.PathLike[str]) -> tuple[int, int]:
    """(layers, d_model) of an ESM-2 checkpoint in fair-esm's format (its ``cfg``, read
    memory-mapped) or of a ``save_pretrained`` folder (its ``config.json``)."""
    path = Path(weights)
    if path.is_dir():
        shape = esm_shape(read_config(path / "config.json", str(path)), str(path))
        return shape.layers, shape.embed_dim
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, OSError, ValueError):  # not a zip checkpoint: mmap needs one
        data = _load_torch_file(path)
    _check_esm2_layout(path, data)
    cfg = data["cfg"]["model"]
    return int(cfg.encoder_layers), int(cfg.encoder_embed_dim)


def model_record(weights: str | os.PathLike[str], as_given: str, name: str) -> dict[str, object]:
    """What ``sae.json`` keeps of the ESM-2 an SAE was trained on: ``model_name`` (the
    ``{model}`` of the paths), ``model`` (``esm.model`` as the user wrote it, or where the
    workflow made the weights), ``model_sha256`` (:func:`weights_sha256`), ``n_layers`` and
    ``d_model``."""
    n_layers, d_model = model_shape(weights)
    return {
        "model_name": name,
        "model": as_given,
        "model_sha256": weights_sha256(weights),
        "n_layers": n_layers,
        "d_model": d_model,
    }
