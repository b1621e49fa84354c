# Config validation, the SAE grid, wildcard constraints and the path patterns every stage
# shares. Each stage's input functions live in its own workflow/rules/<stage>.smk.

import re
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from protsae.config import (
    ConfigError,
    SaeSpec,
    downloads,
    expand_sweeps,
    hf_model,
    is_checkpoint_path,
    load_schema,
    model_layer_problems,
    model_name,
    pretrained_specs,
    regression_path,
    validate_config,
)
from protsae.probes.config import probe_sae_specs, probe_tasks

try:
    _validated = validate_config(
        config, load_schema(workflow.source_path("../schemas/config.schema.yaml"))
    )
except ConfigError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_validated)

RESULTS = config["results"]
DOWNLOADS_DIR = "resources/downloads"
MODEL = model_name(config["esm"])

# A Hugging Face ESM-2 (esm.model hf:<id> or a save_pretrained folder) is checked now, before any
# job: its config.json and the weights' safetensors header (from the hub until the download stage
# has fetched them), then every configured layer against its depth.
HF_MODEL = (
    None
    if config["esm"]["random_init"] or config["esm"]["pretrain"]
    else hf_model(config["esm"]["model"])
)
if HF_MODEL is not None:
    from protsae.huggingface import HfModelError, inspect as inspect_hf

    try:
        _problems = model_layer_problems(
            config, inspect_hf(HF_MODEL, DOWNLOADS_DIR).layers
        )
    except HfModelError as err:
        raise WorkflowError(str(err)) from None
    if _problems:
        raise WorkflowError("invalid config:\n  " + "\n  ".join(_problems))
DOWNLOADS = downloads(config)
SWEEP_SAES = expand_sweeps(config["sae"]["sweeps"])
SHARDS = [f"{i:03d}" for i in range(config["activations"]["shards"])]

try:
    PRETRAINED = pretrained_specs(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None
_clash = sorted(set(PRETRAINED) & set(SWEEP_SAES))
if _clash:
    raise WorkflowError(
        "invalid config: config key sae.pretrained: "
        + ", ".join(f"layer {s.layer} k{s.k}-w{s.width}" for s in _clash)
        + " also trained by sae.sweeps; drop one of them"
    )
SAES = sorted(set(SWEEP_SAES) | set(PRETRAINED))

try:
    PROBE_SAES = probe_sae_specs(config["probes"], SAES)
except ConfigError as err:
    raise WorkflowError(str(err)) from None
PROBE_TASKS = probe_tasks(config["sources"])


def _alternatives(values):
    """A regex matching exactly the given strings (or nothing when there are none)."""
    return "|".join(re.escape(str(v)) for v in values) or "(?!)"


wildcard_constraints:
    model=re.escape(MODEL),
    layer=r"\d+",
    k=r"\d+",
    width=r"\d+",
    shard=r"\d+",
    latent=r"\d+",


def res(*parts):
    """A path under the results folder."""
    return str(Path(RESULTS, *parts))


# Wildcard path patterns of the per-SAE (and per-probe) folders, and each one's folder.
SAE_DIR = res("sae", "{model}", "L{layer}", "k{k}-w{width}")
LATENTS_DIR = res("latents", "{model}", "L{layer}", "k{k}-w{width}")
SAE_LOGS = res("logs", "sae", "{model}", "L{layer}", "k{k}-w{width}")
LATENT_LOGS = res("logs", "latents", "{model}", "L{layer}", "k{k}-w{width}")
SAE_BENCH = res("benchmarks", "sae", "{model}", "L{layer}", "k{k}-w{width}")
LATENT_BENCH = res("benchmarks", "latents", "{model}", "L{layer}", "k{k}-w{width}")
STEERING_DIR = res("steering", "{model}", "L{layer}", "k{k}-w{width}")
STEERING_LOGS = res("logs", "steering", "{model}", "L{layer}", "k{k}-w{width}")
STEERING_BENCH = res("benchmarks", "steering", "{model}", "L{layer}", "k{k}-w{width}")
BLAST_DB = res("steering", "blastdb", "swissprot")
PROBE_DIR = res("probes", "{model}", "L{layer}", "{task}")


def sae_dir(spec):
    return res("sae", MODEL, f"L{spec.layer}", spec.name)


def latents_dir(spec):
    return res("latents", MODEL, f"L{spec.layer}", spec.name)


def steering_dir(spec):
    return res("steering", MODEL, f"L{spec.layer}", spec.name)


def probe_dir(layer, task):
    return res("probes", MODEL, f"L{layer}", task)


def sae_spec(wildcards):
    """The SAE of a job's layer, k and width wildcards."""
    return SaeSpec(int(wildcards.layer), int(wildcards.k), int(wildcards.width))


# The ESM-2 checkpoint every ESM job loads, wherever it comes from.


def esm_checkpoint(wildcards=None):
    """The ESM-2 checkpoint file every ESM job loads (downloaded, local, random init or
    pre-trained here).

    Rules name it ``model=esm_checkpoint`` (the file the job passes to ``load_model``) and its
    regression file ``regression=esm_regression`` beside it.
    """
    esm = config["esm"]
    if esm["pretrain"]:
        return res("esm", f"{MODEL}.pt")
    if esm["random_init"] or HF_MODEL or not is_checkpoint_path(esm["model"]):
        return f"{DOWNLOADS_DIR}/{MODEL}.pt"
    return esm["model"]


def esm_regression(wildcards=None):
    """The checkpoint's contact-regression file, which fair-esm's loader finds beside it:
    made by the download or the random init; for a local checkpoint, used when present.
    """
    regression = regression_path(esm_checkpoint())
    if (
        regression.name in DOWNLOADS
        or config["esm"]["random_init"]
        or config["esm"]["pretrain"]
        or HF_MODEL
        or regression.exists()
    ):
        return [str(regression)]
    return []


def wildcard_int(name):
    """A params function turning a digit wildcard into an int."""

    def get(wildcards):
        return int(wildcards[name])

    get.__name__ = f"wildcard_{name}"
    return get
