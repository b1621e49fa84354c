# Config validation, the SAE grid, wildcard constraints and input functions:
# the one place to read how the pipeline's files connect.

import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

from protsae.plan import (
    ConfigError,
    SaeSpec,
    downloads,
    expand_sweeps,
    is_local_source,
    local_source_path,
    source_file_name,
    is_checkpoint_path,
    load_schema,
    model_name,
    pretrained_specs,
    validate_config,
)

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
DOWNLOADS = downloads(config)
SWEEP_SAES = expand_sweeps(config["sae"]["sweeps"])
SHARDS = [f"{i:03d}" for i in range(config["activations"]["shards"])]


def _safetensors_width(path):
    """The SAE width of a published file, from its header alone (decoder rows)."""
    from safetensors import safe_open

    if not Path(path).exists():
        raise WorkflowError(f"config key sae.pretrained: {path}: no such file")
    with safe_open(path, "pt") as handle:
        for name in handle.keys():
            if name.rsplit(".", 1)[-1] in ("w_dec", "W_dec"):
                return handle.get_slice(name).get_shape()[0]
    raise WorkflowError(
        f"{path}: no w_dec/W_dec tensor, not an InterProt or protsae SAE file"
    )


PRETRAINED = pretrained_specs(config, _safetensors_width)
_clash = sorted(set(PRETRAINED) & set(SWEEP_SAES))
if _clash:
    raise WorkflowError(
        "invalid config: config key sae.pretrained: "
        + ", ".join(f"layer {s.layer} k{s.k}-w{s.width}" for s in _clash)
        + " also trained by sae.sweeps; drop one of them"
    )
SAES = sorted(set(SWEEP_SAES) | set(PRETRAINED))


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


# Wildcard path patterns of the per-SAE folders.
SAE_DIR = res("sae", "{model}", "L{layer}", "k{k}-w{width}")
LATENTS_DIR = res("latents", "{model}", "L{layer}", "k{k}-w{width}")
SAE_LOGS = res("logs", "sae", "{model}", "L{layer}", "k{k}-w{width}")
LATENT_LOGS = res("logs", "latents", "{model}", "L{layer}", "k{k}-w{width}")
SAE_BENCH = res("benchmarks", "sae", "{model}", "L{layer}", "k{k}-w{width}")
LATENT_BENCH = res("benchmarks", "latents", "{model}", "L{layer}", "k{k}-w{width}")


def sae_dir(spec):
    return res("sae", MODEL, f"L{spec.layer}", spec.name)


def latents_dir(spec):
    return res("latents", MODEL, f"L{spec.layer}", spec.name)


# ---- ESM-2 model -----------------------------------------------------------------


def esm_checkpoint():
    """The ESM-2 checkpoint file every ESM job loads (downloaded, local, random init or
    pre-trained here)."""
    esm = config["esm"]
    if esm["pretrain"]:
        return res("esm", f"{MODEL}.pt")
    if esm["random_init"] or not is_checkpoint_path(esm["model"]):
        return f"{DOWNLOADS_DIR}/{MODEL}.pt"
    return esm["model"]


def esm_files(wildcards=None):
    """The checkpoint plus, for fair-esm downloads, its contact-regression file."""
    files = [esm_checkpoint()]
    if config["esm"]["pretrain"]:
        files.append(res("esm", f"{MODEL}-contact-regression.pt"))
    regression = f"{MODEL}-contact-regression.pt"
    if regression in DOWNLOADS:
        files.append(f"{DOWNLOADS_DIR}/{regression}")
    return files


# ---- downloads -------------------------------------------------------------------


def source_file(name):
    """Where the download stage puts config source ``name``."""
    return f"{DOWNLOADS_DIR}/{source_file_name(name, config['sources'][name]['url'])}"


def download_field(field):
    def get(wildcards):
        return DOWNLOADS[wildcards.file][field]

    get.__name__ = f"download_{field}"
    return get


def download_input(wildcards):
    """A local source is the download's input, so editing that file reruns what reads it."""
    url = DOWNLOADS[wildcards.file]["url"]
    return [local_source_path(url)] if is_local_source(url) else []


# ---- wildcards as typed params -----------------------------------------------------


def wildcard_int(name):
    """A params function turning a digit wildcard into an int."""

    def get(wildcards):
        return int(wildcards[name])

    get.__name__ = f"wildcard_{name}"
    return get


# ---- activations and SAEs ----------------------------------------------------------


def layer_shards(wildcards):
    return expand(
        res("activations", MODEL, f"L{wildcards.layer}", "shard-{shard}.parquet"),
        shard=SHARDS,
    )


def sae_spec(wildcards):
    return SaeSpec(int(wildcards.layer), int(wildcards.k), int(wildcards.width))


def pretrained_weights(wildcards):
    return PRETRAINED[sae_spec(wildcards)]


def pretrained_k(wildcards):
    return sae_spec(wildcards).k


# ---- steering ----------------------------------------------------------------------

STEERING_DIR = res("steering", "{model}", "L{layer}", "k{k}-w{width}")
STEERING_LOGS = res("logs", "steering", "{model}", "L{layer}", "k{k}-w{width}")
STEERING_BENCH = res("benchmarks", "steering", "{model}", "L{layer}", "k{k}-w{width}")
BLAST_DB = res("steering", "blastdb", "swissprot")


def steering_dir(spec):
    return res("steering", MODEL, f"L{spec.layer}", spec.name)


def steering_latent_tables(wildcards):
    """The per-latent steering tables of one SAE (its family-specific latents, best F1 first,
    at most steering.max_latents), known once the latent_families checkpoint has run."""
    from protsae.latents.families import family_specific_latents

    families = checkpoints.latent_families.get(**wildcards).output[0]
    latents = family_specific_latents(families, config["steering"]["max_latents"])
    folder = STEERING_DIR.format(**wildcards)
    return [f"{folder}/latent-{latent}.parquet" for latent in latents]


# ---- aggregates and final targets ----------------------------------------------------


def all_sae_evals(wildcards=None):
    return [f"{sae_dir(spec)}/eval.json" for spec in SAES]


def all_latent_summaries(wildcards=None):
    return [f"{latents_dir(spec)}/summary.json" for spec in SAES]


def get_final_targets():
    targets = [
        res("sequences", "uniref50_sample.parquet"),
        res("sequences", "swissprot.parquet"),
        res("sequences", "swissprot_clusters.parquet"),
    ]
    for spec in SAES:
        targets += [f"{sae_dir(spec)}/sae.safetensors", f"{sae_dir(spec)}/eval.json"]
        if spec in SWEEP_SAES:
            targets.append(f"{sae_dir(spec)}/train_log.parquet")
        targets += [
            f"{latents_dir(spec)}/{name}"
            for name in ("classes.parquet", "families.parquet", "summary.json")
        ]
        targets.append(f"{steering_dir(spec)}/summary.parquet")
    if SAES:
        targets += [
            res("tables", "sae_metrics.csv"),
            res("tables", "latent_summary.csv"),
        ]
    return targets


# ---- ESM-2 pre-trained here (esm.pretrain) ------------------------------------------


def pretrain_setting(name):
    """A params function for one esm.pretrain value (None when the config trains no model)."""

    def get(wildcards):
        pretrain = config["esm"]["pretrain"]
        return pretrain[name] if pretrain else None

    get.__name__ = f"pretrain_{name}"
    return get
