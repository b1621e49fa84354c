"""ESM-2 from Hugging Face: a hub id (``hf:facebook/esm2_t6_8M_UR50D``) or a ``save_pretrained``
folder, checked and converted once into fair-esm's checkpoint layout.

After conversion every stage loads the model through :func:`protsae.esm.load_model` like any
fair-esm checkpoint, so extraction, masked-LM loss, steering, probes and encoding run the same
forward on it. The conversion needs no ``transformers``: it reads ``config.json``, the
``model.safetensors`` tensors and ``vocab.txt`` and maps ``EsmForMaskedLM``'s names onto
fair-esm's ``ESM2``. What fair-esm's ESM-2 cannot express (absolute position embeddings, an
embedding layer norm, untied output weights, another vocabulary or layer-norm epsilon) is
refused with the config key and file named, so a converted model computes what the original does.
"""

from __future__ import annotations

import json
import os
import re
import struct
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HF_PREFIX = "hf:"
#: Files fetched from the hub: the config, the weights and the tokenizer's vocabulary.
HUB_FILES = ("config.json", "model.safetensors", "vocab.txt")
DEFAULT_ENDPOINT = "https://huggingface.co"
#: fair-esm's ESM-2 alphabet in token order (``Alphabet.from_architecture("ESM-1b")``).
ESM2_VOCAB = [
    "<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K", "Q", "N", "F", "Y", "M", "H", "W", "C", "X", "B", "U", "Z", "O", ".", "-", "<null_1>", "<mask>",
]  # fmt: skip
_HEADER_LIMIT = 100 << 20  # safetensors caps its JSON header at 100 MB
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_LAYER_KEY = re.compile(r"^esm\.encoder\.layer\.(\d+)\.(.+)$")

# EsmForMaskedLM parameter names (after .gamma/.beta -> .weight/.bias) -> fair-esm ESM2 names.
_LAYER_NAMES = {
    "attention.self.query": "self_attn.q_proj",
    "attention.self.key": "self_attn.k_proj",
    "attention.self.value": "self_attn.v_proj",
    "attention.output.dense": "self_attn.out_proj",
    "attention.LayerNorm": "self_attn_layer_norm",
    "intermediate.dense": "fc1",
    "output.dense": "fc2",
    "LayerNorm": "final_layer_norm",
}
_TOP_NAMES = {
    "esm.embeddings.word_embeddings": "embed_tokens",
    "esm.encoder.emb_layer_norm_after": "emb_layer_norm_after",
    "esm.contact_head.regression": "contact_head.regression",
    "lm_head.dense": "lm_head.dense",
    "lm_head.layer_norm": "lm_head.layer_norm",
}
# Buffers recomputed by fair-esm's modules, never read from the file.
_IGNORED = re.compile(r"(rotary_embeddings\.inv_freq|position_ids)$")


class HfModelError(ValueError):
    """A Hugging Face ESM-2 that cannot be used; the message names the config key and file."""


@dataclass(frozen=True)
class HfModel:
    """Where a Hugging Face ESM-2 comes from: a hub repository (at a revision) or a folder."""

    written: str  # the esm.model value as the user wrote it
    repo: str | None = None
    revision: str = "main"
    folder: Path | None = None

    @property
    def name(self) -> str:
        """The ``{model}`` wildcard: ``hf-{owner}--{name}`` (plus ``-{revision}`` off main) for a
        hub id, ``hf-{folder name}`` for a folder; never a fair-esm name, so converted weights
        are never mistaken for fair-esm's own download."""
        if self.repo is not None:
            name = "hf-" + self.repo.replace("/", "--")
            if self.revision != "main":
                name += "-" + _UNSAFE.sub("_", self.revision)
            return name
        assert self.folder is not None
        return "hf-" + _UNSAFE.sub("_", self.folder.resolve().name)

    def files(self) -> tuple[str, ...]:
        """The files this model needs; a folder's ``vocab.txt`` only when it has one."""
        if self.folder is not None and not (self.folder / "vocab.txt").is_file():
            return HUB_FILES[:2]
        return HUB_FILES

    def location(self, file: str, endpoint: str | None = None) -> str:
        """The URL (hub) or path (folder) of one of its files."""
        if self.repo is None:
            assert self.folder is not None
            return str(self.folder / file)
        base = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
        return f"{base}/{self.repo}/resolve/{self.revision}/{file}"


def parse_hf_model(model: str) -> HfModel | None:
    """The :class:`HfModel` an ``esm.model`` value names, or None for fair-esm names and
    checkpoint files. ``hf:owner/name`` or ``hf:owner/name@revision``: the hub; an existing
    folder: ``save_pretrained`` output."""
    if model.startswith(HF_PREFIX):
        repo, _, revision = model[len(HF_PREFIX) :].partition("@")
        if not _REPO_ID.match(repo):
            raise HfModelError(
                f"config key esm.model: {model!r}: a hub id is hf:<owner>/<name>[@revision], "
                "e.g. hf:facebook/esm2_t6_8M_UR50D"
            )
        return HfModel(model, repo=repo, revision=revision or "main")
    if not model.endswith(".pt") and Path(model).is_dir():
        return HfModel(model, folder=Path(model))
    return None


# --------------------------------------------------------------------------- config and shapes


@dataclass(frozen=True)
class EsmShape:
    """What fair-esm's ``ESM2`` constructor needs, read from an ``EsmConfig``."""

    layers: int
    embed_dim: int
    heads: int
    token_dropout: bool

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor an ``EsmForMaskedLM`` of this shape stores (names after normalising)."""
        d, v = self.embed_dim, len(ESM2_VOCAB)
        shapes: dict[str, tuple[int, ...]] = {
            "esm.embeddings.word_embeddings.weight": (v, d),
            "esm.encoder.emb_layer_norm_after.weight": (d,),
            "esm.encoder.emb_layer_norm_after.bias": (d,),
            "lm_head.dense.weight": (d, d),
            "lm_head.dense.bias": (d,),
            "lm_head.layer_norm.weight": (d,),
            "lm_head.layer_norm.bias": (d,),
            "lm_head.bias": (v,),
        }
        for i in range(self.layers):
            for hf in _LAYER_NAMES:
                rows = 4 * d if hf == "intermediate.dense" else d
                if "LayerNorm" in hf:
                    shapes[f"esm.encoder.layer.{i}.{hf}.weight"] = (d,)
                else:
                    cols = 4 * d if hf == "output.dense" else d
                    shapes[f"esm.encoder.layer.{i}.{hf}.weight"] = (rows, cols)
                shapes[f"esm.encoder.layer.{i}.{hf}.bias"] = (rows,)
        return shapes

    def optional_shapes(self) -> dict[str, tuple[int, ...]]:
        """Tensors a file may omit: the tied output projection and the contact head."""
        return {
            "lm_head.decoder.weight": (len(ESM2_VOCAB), self.embed_dim),
            "esm.contact_head.regression.weight": (1, self.layers * self.heads),
            "esm.contact_head.regression.bias": (1,),
        }


def esm_shape(config: dict[str, Any], where: str) -> EsmShape:
    """Check that an ``EsmConfig`` describes an ESM-2 fair-esm's class computes exactly, and
    return its shape. ``where`` starts every message (config key and file)."""

    def need(key: str, ok: bool, wanted: str) -> None:
        if not ok:
            raise HfModelError(
                f"{where}: config.json {key}={config.get(key)!r}; {wanted} "
                "(fair-esm's ESM-2, which protsae runs, has no other)"
            )

    if config.get("model_type") != "esm":
        raise HfModelError(
            f"{where}: not an ESM model: config.json has model_type={config.get('model_type')!r} "
            f"(architectures {config.get('architectures')}); esm.model takes an ESM-2 "
            "(EsmForMaskedLM) such as hf:facebook/esm2_t6_8M_UR50D"
        )
    need("is_folding_model", not config.get("is_folding_model", False), "an ESMFold model is not")
    need(
        "position_embedding_type",
        config.get("position_embedding_type", "absolute") == "rotary",
        "ESM-2 uses rotary",
    )
    need("emb_layer_norm_before", not config.get("emb_layer_norm_before", False), "must be false")
    need("vocab_size", config.get("vocab_size") == len(ESM2_VOCAB), "ESM-2's alphabet has 33")
    need("hidden_act", config.get("hidden_act", "gelu") == "gelu", "must be gelu")
    need("layer_norm_eps", abs(config.get("layer_norm_eps", 1e-12) - 1e-5) < 1e-9, "must be 1e-05")
    need("rope_theta", config.get("rope_theta", 10000.0) == 10000.0, "must be 10000")
    need("mask_token_id", config.get("mask_token_id") == 32, "ESM-2's <mask> is 32")
    need("pad_token_id", config.get("pad_token_id") == 1, "ESM-2's <pad> is 1")
    try:
        layers = int(config["num_hidden_layers"])
        dim = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
    except (KeyError, TypeError, ValueError) as err:
        raise HfModelError(f"{where}: config.json lacks a usable {err}") from None
    need("intermediate_size", config.get("intermediate_size") == 4 * dim, "must be 4 x hidden_size")
    if layers < 1 or dim < 1 or heads < 1 or dim % heads or (dim // heads) % 2:
        raise HfModelError(
            f"{where}: config.json hidden_size={dim} does not split into "
            f"num_attention_heads={heads} heads of even size"
        )
    return EsmShape(layers, dim, heads, bool(config.get("token_dropout", True)))


def read_config(path: str | os.PathLike[str], where: str) -> dict[str, Any]:
    """``config.json`` as a dict; an unreadable or non-object file is an :class:`HfModelError`."""
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HfModelError(f"{where}: {path}: not a readable config.json ({err})") from None
    if not isinstance(config, dict):
        raise HfModelError(f"{where}: {path}: config.json is not a JSON object")
    return config


def _normalise(name: str) -> str:
    """Older checkpoints name layer-norm parameters gamma/beta."""
    return re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", name))


def parse_safetensors_header(head: bytes, where: str) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from the first bytes of a safetensors file (8-byte length, JSON)."""
    if len(head) < 8:
        raise HfModelError(f"{where}: not a safetensors file (only {len(head)} bytes)")
    (size,) = struct.unpack("<Q", head[:8])
    if size > _HEADER_LIMIT or len(head) < 8 + size:
        raise HfModelError(f"{where}: not a safetensors file (header length {size})")
    try:
        header = json.loads(head[8 : 8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HfModelError(f"{where}: not a safetensors file ({err})") from None
    return {
        _normalise(name): tuple(int(n) for n in entry["shape"])
        for name, entry in header.items()
        if name != "__metadata__"
    }


def read_safetensors_header(path: str | os.PathLike[str], where: str) -> dict[str, tuple[int, ...]]:
    """The tensor shapes of a local safetensors file, from its header alone."""
    with open(path, "rb") as fh:
        first = fh.read(8)
        size = struct.unpack("<Q", first)[0] if len(first) == 8 else 0
        rest = fh.read(min(size, _HEADER_LIMIT))
    return parse_safetensors_header(first + rest, where)


def check_shapes(shape: EsmShape, tensors: dict[str, tuple[int, ...]], where: str) -> None:
    """Every tensor the config implies is there with its shape, and nothing else is."""
    expected = shape.expected_shapes()
    optional = shape.optional_shapes()
    problems = []
    for name, want in expected.items():
        if name not in tensors:
            problems.append(f"{name} missing")
        elif tensors[name] != want:
            problems.append(f"{name} has shape {list(tensors[name])}, config implies {list(want)}")
    for name, got in tensors.items():
        if name in expected or _IGNORED.search(name):
            continue
        if name not in optional:
            problems.append(f"{name} is not part of an ESM-2 EsmForMaskedLM")
        elif got != optional[name]:
            problems.append(f"{name} has shape {list(got)}, config implies {list(optional[name])}")
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if problems[5:] else ""
        )
        raise HfModelError(f"{where}: the weights do not fit config.json: {shown}")


def check_vocab(path: str | os.PathLike[str], where: str) -> None:
    """``vocab.txt`` must list ESM-2's alphabet in fair-esm's order (token ids are shared)."""
    tokens = Path(path).read_text().split()
    if tokens != ESM2_VOCAB:
        raise HfModelError(
            f"{where}: {path}: the vocabulary is not ESM-2's 33 tokens in fair-esm's order "
            f"(starts {tokens[:6]}); token ids would not match"
        )


# --------------------------------------------------------------------------- inspection (DAG time)


def _http_open(url: str, timeout: float = 30) -> Any:
    request = urllib.request.Request(url, headers={"User-Agent": "protsae"})
    return urllib.request.urlopen(request, timeout=timeout)


def _remote_problem(url: str, err: Exception) -> str:
    if isinstance(err, urllib.error.HTTPError):
        hint = (
            " (no such model or file on the hub, or a gated/private repository)"
            if err.code in (401, 403, 404)
            else ""
        )
        return f"{url}: HTTP {err.code} {err.reason}{hint}"
    return f"{url}: {err}"


def _remote_config(model: HfModel, where: str) -> dict[str, Any]:
    url = model.location("config.json")
    try:
        with _http_open(url) as response:
            body = response.read(1 << 20)
    except (urllib.error.URLError, OSError) as err:
        raise HfModelError(f"{where}: {_remote_problem(url, err)}") from None
    try:
        config = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HfModelError(f"{where}: {url}: not a readable config.json ({err})") from None
    if not isinstance(config, dict):
        raise HfModelError(f"{where}: {url}: config.json is not a JSON object")
    return config


def _remote_header(model: HfModel, where: str) -> dict[str, tuple[int, ...]]:
    """The safetensors header read from the start of the download (the body is not fetched)."""
    url = model.location("model.safetensors")
    try:
        with _http_open(url) as response:
            first = response.read(8)
            size = struct.unpack("<Q", first)[0] if len(first) == 8 else 0
            rest = response.read(min(size, _HEADER_LIMIT))
    except (urllib.error.URLError, OSError) as err:
        raise HfModelError(f"{where}: {_remote_problem(url, err)}") from None
    return parse_safetensors_header(first + rest, f"{where}: {url}")


def inspect(model: HfModel, downloads_dir: str | os.PathLike[str] | None = None) -> EsmShape:
    """Check a Hugging Face ESM-2 before any job runs and return its shape.

    A folder is read in place. A hub model is read from the download stage's copies in
    ``downloads_dir`` once they exist, else from the hub: ``config.json`` and the first bytes of
    ``model.safetensors`` (its header), so a missing repository, a non-ESM model or weights
    that disagree with the config stop the run naming ``esm.model`` and the file.
    """
    where = f"config key esm.model: {model.written}"
    if model.folder is not None:
        config_path = model.folder / "config.json"
        if not config_path.is_file():
            raise HfModelError(
                f"{where}: {config_path}: no config.json; esm.model takes a Hugging Face "
                "save_pretrained folder, a fair-esm checkpoint (.pt) or a fair-esm model name"
            )
        weights = model.folder / "model.safetensors"
        if not weights.is_file():
            raise HfModelError(
                f"{where}: {weights}: no model.safetensors (save the model with "
                "save_pretrained(..., safe_serialization=True))"
            )
        shape = esm_shape(read_config(config_path, where), f"{where}: {config_path}")
        check_shapes(
            shape, read_safetensors_header(weights, f"{where}: {weights}"), f"{where}: {weights}"
        )
        if (model.folder / "vocab.txt").is_file():
            check_vocab(model.folder / "vocab.txt", where)
        return shape
    local = (
        {f: Path(downloads_dir, download_name(model, f)) for f in HUB_FILES}
        if downloads_dir
        else {}
    )
    if local and all(path.is_file() for path in local.values()):
        config_path, weights = local["config.json"], local["model.safetensors"]
        shape = esm_shape(read_config(config_path, where), f"{where}: {config_path}")
        check_shapes(
            shape, read_safetensors_header(weights, f"{where}: {weights}"), f"{where}: {weights}"
        )
        return shape
    url = model.location("config.json")
    shape = esm_shape(_remote_config(model, where), f"{where}: {url}")
    weights_url = model.location("model.safetensors")
    check_shapes(shape, _remote_header(model, where), f"{where}: {weights_url}")
    return shape


def download_name(model: HfModel, file: str) -> str:
    """The name of one of its files in ``resources/downloads/``: ``{model}.{file}``."""
    return f"{model.name}.{file}"


# --------------------------------------------------------------------------- conversion


def fairesm_state(
    tensors: dict[str, Any], shape: EsmShape, where: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """EsmForMaskedLM tensors -> (fair-esm ``ESM2`` state without the contact head, the contact
    regression's state). The output projection is tied to the embeddings in fair-esm: a file
    with a different ``lm_head.decoder.weight`` is refused."""
    import torch

    tensors = {_normalise(name): t for name, t in tensors.items()}
    check_shapes(shape, {n: tuple(t.shape) for n, t in tensors.items()}, where)
    state: dict[str, torch.Tensor] = {}
    regression: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach().to(torch.float32).contiguous()
        if _IGNORED.search(name):
            continue
        layer = _LAYER_KEY.match(name)
        if layer:
            module, _, param = layer.group(2).rpartition(".")
            state[f"layers.{layer.group(1)}.{_LAYER_NAMES[module]}.{param}"] = tensor
        elif name == "lm_head.bias":
            state["lm_head.bias"] = tensor
        elif name == "lm_head.decoder.weight":
            continue  # checked against the embeddings below
        else:
            module, _, param = name.rpartition(".")
            target = f"{_TOP_NAMES[module]}.{param}"
            (regression if module == "esm.contact_head.regression" else state)[target] = tensor
    embed = state["embed_tokens.weight"]
    decoder = tensors.get("lm_head.decoder.weight")
    if decoder is not None and not torch.equal(decoder.to(torch.float32), embed):
        raise HfModelError(
            f"{where}: lm_head.decoder.weight differs from the word embeddings; fair-esm's ESM-2 "
            "ties them (tie_word_embeddings), so this model cannot be converted"
        )
    state["lm_head.weight"] = embed
    return state, regression


def build_esm2(shape: EsmShape, state: dict[str, Any], regression: dict[str, Any]) -> Any:
    """fair-esm's ``ESM2`` of ``shape`` holding ``state`` (rotary buffers its own)."""
    import esm
    from esm.model.esm2 import ESM2

    model = ESM2(
        num_layers=shape.layers,
        embed_dim=shape.embed_dim,
        attention_heads=shape.heads,
        alphabet=esm.data.Alphabet.from_architecture("ESM-1b"),
        token_dropout=shape.token_dropout,
    )
    full = {k: v for k, v in model.state_dict().items() if k.endswith("rot_emb.inv_freq")}
    full.update(state)
    # A file without the contact head (it is not used here) gets a zero one, never a random one.
    full.update(
        regression
        or {k: v.new_zeros(v.shape) for k, v in model.state_dict().items() if "regression" in k}
    )
    model.load_state_dict(full, strict=True)
    return model.eval()


def load_hf_files(
    config_path: str | os.PathLike[str],
    weights_path: str | os.PathLike[str],
    vocab_path: str | os.PathLike[str] | None = None,
    where: str = "esm.model",
) -> Any:
    """fair-esm's ``ESM2`` with the weights of a Hugging Face ESM-2's files."""
    from safetensors.torch import load_file

    shape = esm_shape(read_config(config_path, where), f"{where}: {config_path}")
    if vocab_path is not None:
        check_vocab(vocab_path, where)
    tensors = load_file(str(weights_path))
    state, regression = fairesm_state(tensors, shape, f"{where}: {weights_path}")
    return build_esm2(shape, state, regression)


def load_hf_folder(folder: str | os.PathLike[str]) -> Any:
    """fair-esm's ``ESM2`` from a ``save_pretrained`` folder (converted in memory)."""
    model = HfModel(str(folder), folder=Path(folder))
    inspect(model)
    vocab = model.folder / "vocab.txt" if "vocab.txt" in model.files() else None
    return load_hf_files(
        model.folder / "config.json", model.folder / "model.safetensors", vocab, str(folder)
    )
