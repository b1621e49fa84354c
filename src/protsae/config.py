"""The workflow config: validation against the schema, SAE grid expansion and naming.

Everything the Snakefile decides before any job runs lives here so it can be tested
without Snakemake. Errors name the config key at fault, and are raised before the DAG
is built, so a bad config never starts a job.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

FAIRESM_BASE = "https://dl.fbaipublicfiles.com/fair-esm"
FAIRESM_LAYERS = re.compile(r"^esm2_t(\d+)_")
# k written in a published SAE's file name, e.g. ``esm2_plm1280_l24_sae4096_k64_auxk640``.
FILE_NAME_K = re.compile(r"(?:^|_)k(\d+)(?=[_.]|$)")
ESM2_MAX_RESIDUES = 1022
#: Rule names of the activations.layer_passes groups: this prefix and the layers.
PASS_PREFIX = "extract_pass_L"


class ConfigError(ValueError):
    """A config value the pipeline cannot run with; the message names the key."""


@dataclass(frozen=True, order=True)
class SaeSpec:
    """One SAE of the grid: trained on ``layer`` with ``k`` active latents out of ``width``."""

    layer: int
    k: int
    width: int

    @property
    def name(self) -> str:
        return f"k{self.k}-w{self.width}"


def _key_path(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not ref:
        return schema
    node: Any = root
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    merged = dict(node)
    merged.update({k: v for k, v in schema.items() if k != "$ref"})
    return merged


def _fill_defaults(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> None:
    """Insert the schema's defaults into ``value`` in place (objects only, recursively)."""
    schema = _resolve(schema, root)
    if isinstance(value, dict):
        for branch in schema.get("oneOf", []) + schema.get("anyOf", []):
            branch = _resolve(branch, root)
            if branch.get("type") == "object":
                _fill_defaults(value, branch, root)
        for key, sub in schema.get("properties", {}).items():
            sub = _resolve(sub, root)
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                _fill_defaults(value[key], sub, root)
        for pattern, sub in schema.get("patternProperties", {}).items():
            for key in value:
                if re.search(pattern, str(key)):
                    _fill_defaults(value[key], sub, root)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _fill_defaults(item, schema["items"], root)


def load_schema(path: str | Path) -> dict[str, Any]:
    """Read the YAML JSON-schema of the config."""
    with open(path) as handle:
        return yaml.safe_load(handle)


def _stringify_keys(value: Any) -> Any:
    # YAML reads `pretrained: {24: ...}` with an int key; JSON-schema only knows string keys.
    if isinstance(value, dict):
        return {str(k): _stringify_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify_keys(v) for v in value]
    return value


def validate_config(config: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Return a validated copy of ``config`` with defaults filled in.

    Raises :class:`ConfigError` naming the offending key for schema violations and for
    the cross-key rules a schema cannot state (k > width, a layer deeper than the model).
    """
    config = _stringify_keys(copy.deepcopy(config))
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors:
            key = _key_path(err.absolute_path)
            if err.validator == "additionalProperties":
                extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
                patterns = err.schema.get("patternProperties", {})
                extra = [e for e in extra if not any(re.search(p, e) for p in patterns)]
                lines.append(f"config key {key}: unknown key(s) {', '.join(map(repr, extra))}")
            else:
                lines.append(f"config key {key}: {err.message}")
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines))
    _fill_defaults(config, schema, schema)
    _check_cross_keys(config)
    return config


def _check_cross_keys(config: dict[str, Any]) -> None:
    problems = []
    if config["esm"].get("random_init") and config["esm"].get("pretrain"):
        problems.append("config key esm: random_init and pretrain exclude each other; set one")
    for i, sweep in enumerate(config["sae"]["sweeps"]):
        for k in sweep["ks"]:
            for width in sweep["widths"]:
                if k > width:
                    problems.append(
                        f"config key sae.sweeps[{i}]: k={k} is larger than width={width}"
                    )
    n_layers = model_num_layers(config["esm"])
    if n_layers is not None:
        problems += model_layer_problems(config, n_layers)
    problems += _pretrained_problems(config["sae"]["pretrained"])
    problems += _layer_pass_problems(config["activations"]["layer_passes"], None)
    probe_sae = config["probes"]["sae"]
    if probe_sae["k"] > probe_sae["width"]:
        problems.append(
            f"config key probes.sae: k={probe_sae['k']} is larger than width={probe_sae['width']}"
        )
    if config["sequences"]["max_length"] > ESM2_MAX_RESIDUES:
        problems.append(f"config key sequences.max_length: ESM-2 takes at most {ESM2_MAX_RESIDUES}")
    problems += _steering_problems(config["steering"])
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def model_layer_problems(config: dict[str, Any], n_layers: int) -> list[str]:
    """Every configured layer (sweeps, probes, imported SAEs, layer passes) deeper than a model of
    ``n_layers`` layers, one line naming the key each."""
    problems = []
    model = model_name(config["esm"])
    for i, sweep in enumerate(config["sae"]["sweeps"]):
        for layer in sweep["layers"]:
            if layer > n_layers:
                problems.append(
                    f"config key sae.sweeps[{i}].layers: layer {layer} is deeper than the "
                    f"model {model} ({n_layers} layers)"
                )
    for layer in config["probes"]["layers"]:
        if layer > n_layers:
            problems.append(
                f"config key probes.layers: layer {layer} is deeper than the model "
                f"{model} ({n_layers} layers)"
            )
    for layer in config["sae"]["pretrained"]:
        if int(layer) > n_layers:
            problems.append(
                f"config key sae.pretrained.{layer}: layer {layer} is deeper than the model "
                f"({n_layers} layers)"
            )
    return problems + [
        p
        for p in _layer_pass_problems(config["activations"]["layer_passes"], n_layers)
        if "deeper" in p
    ]


def _steering_problems(steering: dict[str, Any]) -> list[str]:
    problems = []
    if steering["filter"]["multiplier"] not in steering["multipliers"]:
        problems.append(
            f"config key steering.filter.multiplier: {steering['filter']['multiplier']} is not "
            f"one of steering.multipliers {steering['multipliers']}"
        )
    bins = steering["conservation_bins"]
    if (
        bins[0] != 0
        or bins[-1] != 1
        or any(b <= a for a, b in zip(bins[:-1], bins[1:], strict=True))
    ):
        problems.append(
            f"config key steering.conservation_bins: edges must increase from 0 to 1, got {bins}"
        )
    return problems


def _layer_pass_problems(groups: list[list[int]], n_layers: int | None) -> list[str]:
    """Each layer in at most one ``activations.layer_passes`` group, none deeper than the model."""
    problems, owner = [], {}
    for i, group in enumerate(groups):
        for layer in group:
            if layer in owner and owner[layer] != i:
                problems.append(
                    f"config key activations.layer_passes[{i}]: layer {layer} is already in "
                    f"activations.layer_passes[{owner[layer]}]; a layer's shards have one producer"
                )
            owner.setdefault(layer, i)
            if n_layers is not None and layer > n_layers:
                problems.append(
                    f"config key activations.layer_passes[{i}]: layer {layer} is deeper than "
                    f"the model ({n_layers} layers)"
                )
    return problems


def layer_passes(config: dict[str, Any]) -> list[tuple[int, ...]]:
    """The ``activations.layer_passes`` groups of a validated config, each sorted."""
    return [tuple(sorted(group)) for group in config["activations"]["layer_passes"]]


def extraction_jobs(
    config: dict[str, Any], layers: set[int] | list[int]
) -> tuple[list[tuple[int, ...]], list[int]]:
    """How the shards of ``layers`` are made: (the groups whose pass runs, because one of their
    layers is wanted; the wanted layers of no group, each extracted by its own early exit)."""
    wanted = set(layers)
    groups = [g for g in layer_passes(config) if wanted & set(g)]
    grouped = {layer for g in layer_passes(config) for layer in g}
    return groups, sorted(wanted - grouped)


def pass_rule_name(group: tuple[int, ...] | list[int]) -> str:
    """The Snakemake rule of one ``activations.layer_passes`` group, e.g. ``extract_pass_L2_4``."""
    return PASS_PREFIX + "_".join(str(layer) for layer in sorted(group))


def k_in_file_name(path: str) -> int | None:
    """The k a file name states (``..._k64_...``), or None when it states none."""
    match = FILE_NAME_K.search(Path(path).name)
    return int(match.group(1)) if match else None


def _pretrained_problems(pretrained: dict[str, Any]) -> list[str]:
    """``sae.pretrained.*.k`` must be given (an InterProt file does not store it) and must agree
    with a k in the file name."""
    problems = []
    for layer, entry in pretrained.items():
        key = f"config key sae.pretrained.{layer}.k"
        if isinstance(entry, str) or "k" not in entry:
            path = entry if isinstance(entry, str) else entry["path"]
            problems.append(
                f"{key}: required: an InterProt SAE file does not store its k, and a wrong k "
                f"changes every reconstruction; write {{path: {path}, k: <k it was trained with>}}"
            )
            continue
        named = k_in_file_name(entry["path"])
        if named is not None and named != entry["k"]:
            problems.append(
                f"{key}: k={entry['k']}, but the file name {Path(entry['path']).name} says k{named}"
            )
    return problems


def expand_sweeps(sweeps: list[dict[str, list[int]]]) -> list[SaeSpec]:
    """The union of the sweeps' cartesian products, each (layer, k, width) once, sorted."""
    specs = {
        SaeSpec(layer, k, width)
        for sweep in sweeps
        for layer in sweep["layers"]
        for k in sweep["ks"]
        for width in sweep["widths"]
    }
    return sorted(specs)


def is_checkpoint_path(model: str) -> bool:
    """A model given as a fair-esm checkpoint file (``*.pt`` or with a directory part) rather than
    a fair-esm name, a hub id (``hf:...``) or a ``save_pretrained`` folder."""
    if hf_model(model) is not None:
        return False
    return model.endswith(".pt") or "/" in model or "\\" in model


def hf_model(model: str) -> Any:
    """The :class:`protsae.huggingface.HfModel` an ``esm.model`` value names, or None.

    A malformed hub id is a :class:`ConfigError` naming the key."""
    from protsae.huggingface import HfModelError, parse_hf_model

    try:
        return parse_hf_model(model)
    except HfModelError as err:
        raise ConfigError(str(err)) from None


def model_name(esm: dict[str, Any]) -> str:
    """The ``{model}`` wildcard: fair-esm name, checkpoint stem, ``random-t{L}-d{D}-s{seed}``
    (random init) or ``pretrained-t{L}-d{D}-s{seed}`` (trained here, ``esm.pretrain``)."""
    random_init = esm.get("random_init")
    if random_init:
        return f"random-t{random_init['layers']}-d{random_init['embed_dim']}-s{random_init.get('seed', 0)}"
    pretrain = esm.get("pretrain")
    if pretrain:
        return (
            f"pretrained-t{pretrain['layers']}-d{pretrain['embed_dim']}-s{pretrain.get('seed', 0)}"
        )
    model = esm["model"]
    hub_or_folder = hf_model(model)
    if hub_or_folder is not None:
        return hub_or_folder.name
    return Path(model).stem if is_checkpoint_path(model) else model


def model_num_layers(esm: dict[str, Any]) -> int | None:
    """Number of transformer layers, when the config says (random init or an ``esm2_tNN_`` name)."""
    made_here = esm.get("random_init") or esm.get("pretrain")
    if made_here:
        return int(made_here["layers"])
    if hf_model(esm["model"]) is not None:
        return None  # read from its config.json when the DAG is built (esm.huggingface.inspect)
    match = FAIRESM_LAYERS.match(Path(esm["model"]).stem)
    return int(match.group(1)) if match else None


def fairesm_urls(name: str) -> tuple[str, str]:
    """fair-esm's own URLs of a model's weights and its contact-regression file."""
    return (
        f"{FAIRESM_BASE}/models/{name}.pt",
        f"{FAIRESM_BASE}/regression/{name}-contact-regression.pt",
    )


def regression_path(checkpoint: str | Path) -> Path:
    """Where fair-esm's loader looks for a checkpoint's contact-regression file: beside it."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}-contact-regression.pt")


def source_file_name(name: str, url: str) -> str:
    """The download's file name: the source name plus a short hash of its URL.

    A new URL for a source is a new file, so configs with different sources can share one
    checkout without re-downloading, and the protected old file never has to be overwritten.
    """
    return f"{name}-{hashlib.sha1(url.encode()).hexdigest()[:8]}"


def is_local_source(url: str) -> bool:
    """A ``file://`` URL or a plain path (as opposed to http, https, ftp)."""
    return url.startswith("file://") or "://" not in url


def local_source_path(url: str) -> str:
    """The path of a local source (``file://`` stripped)."""
    return url[len("file://") :] if url.startswith("file://") else url


# The format each source must have (protsae.filetypes.KINDS), checked before a download
# takes its final name. Probe data sets come in several layouts (archives, FASTA, CSV):
# "any" refuses an HTML page or an empty file and checks archives are whole.
SOURCE_KINDS = {
    "uniref50": "fasta",
    "swissprot": "swissprot",
    "interpro_entries": "entry_list",
    "secondary_structure": "any",
    "localization": "any",
    "thermostability": "any",
    "expression": "any",
}


# The format check of each Hugging Face file the download stage fetches.
HF_FILE_KINDS = {"config.json": "json", "model.safetensors": "safetensors", "vocab.txt": "text"}


def downloads(config: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Every file the download rule may fetch:
    ``{file name: {url, md5, sha256, md5_url, source, label, kind}}``; ``label`` names the
    config key."""
    files = {
        source_file_name(name, src["url"]): {
            "url": src["url"],
            "md5": src.get("md5", ""),
            "sha256": src.get("sha256", ""),
            "md5_url": src.get("md5_url", ""),
            "source": name,
            "label": f"sources.{name}",
            "kind": SOURCE_KINDS.get(name, "text"),
        }
        for name, src in config["sources"].items()
    }
    esm = config["esm"]
    made_here = esm.get("random_init") or esm.get("pretrain")
    hub_or_folder = None if made_here else hf_model(esm["model"])
    if hub_or_folder is not None:
        # Hugging Face files keep their own names after the model's: {model}.config.json, ...
        from protsae.huggingface import download_name

        for file in hub_or_folder.files():
            files[download_name(hub_or_folder, file)] = {
                "url": hub_or_folder.location(file),
                "md5": "",
                "sha256": (esm.get("model_sha256") or "") if file == "model.safetensors" else "",
                "source": "esm",
                "label": "esm.model",
                "kind": HF_FILE_KINDS[file],
            }
    elif not made_here and not is_checkpoint_path(esm["model"]):
        # fair-esm file names are kept: its loader finds the regression file by name.
        model_url, regression_url = fairesm_urls(esm["model"])
        files[f"{esm['model']}.pt"] = {
            "url": model_url,
            "md5": esm.get("model_md5") or "",
            "sha256": esm.get("model_sha256") or "",
            "source": "esm",
            "label": "esm.model",
            "kind": "checkpoint",
        }
        files[f"{esm['model']}-contact-regression.pt"] = {
            "url": regression_url,
            "md5": "",
            "sha256": "",
            "source": "esm",
            "label": "esm.model (contact regression)",
            "kind": "checkpoint",
        }
    return files


def safetensors_width(path: str | Path) -> int:
    """The width (decoder rows) of an InterProt or protsae SAE file, from its header alone."""
    from safetensors import safe_open  # deferred: only configs with sae.pretrained need it

    if not Path(path).is_file():
        raise ConfigError(f"config key sae.pretrained: {path}: no such file")
    with safe_open(str(path), "pt") as handle:
        for name in handle.keys():  # noqa: SIM118 (safe_open handles are not iterable)
            if name.rsplit(".", 1)[-1] in ("w_dec", "W_dec"):
                return int(handle.get_slice(name).get_shape()[0])
    raise ConfigError(
        f"config key sae.pretrained: {path}: no w_dec/W_dec tensor, "
        "not an InterProt or protsae SAE file"
    )


def pretrained_specs(
    config: dict[str, Any], width_of: Callable[[str], int] = safetensors_width
) -> dict[SaeSpec, str]:
    """Imported SAEs: ``{SaeSpec: path}``; the width (part of the SAE's path) is read from the
    file by ``width_of``, so the rules take it from the ``{width}`` wildcard like any SAE's."""
    specs = {}
    for layer, entry in config["sae"]["pretrained"].items():
        problems = _pretrained_problems({layer: entry})
        if problems:
            raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
        path = entry["path"]
        specs[SaeSpec(int(layer), int(entry["k"]), int(width_of(path)))] = path
    return specs


def schema_path() -> Path:
    """The config schema: shipped with the package (a link to ``workflow/schemas/`` in a checkout)."""
    packaged = Path(__file__).with_name("schemas") / "config.schema.yaml"
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def schema_defaults(*section: str) -> dict[str, Any]:
    """The schema's default of each key of config section ``section`` (``"sae", "training"``).

    Library code takes its defaults from here, so each default is written once, in the schema.
    """
    node = load_schema(schema_path())
    for key in section:
        node = node["properties"][key]
    return {name: spec["default"] for name, spec in node["properties"].items() if "default" in spec}


def load_config(path: str | Path, schema_path: str | Path) -> dict[str, Any]:
    """Read and validate a config file (for tools and tests outside Snakemake)."""
    with open(path) as handle:
        raw = yaml.safe_load(handle) or {}
    try:
        return validate_config(raw, load_schema(schema_path))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
