# Config validation, the SAE grid, wildcard constraints and input functions:
# the one place to read how the pipeline's files connect.

import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

from protsae.store import content_key
from protsae.plan import (
    ConfigError,
    SaeSpec,
    downloads,
    expand_sweeps,
    source_file_name,
    hf_model,
    is_checkpoint_path,
    model_layer_problems,
    load_schema,
    model_name,
    pretrained_specs,
    regression_path,
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


# ---- downloads -------------------------------------------------------------------


def hf_files(wildcards=None):
    """The downloaded files of a Hugging Face ESM-2 (``esm.model`` hf:<id> or a folder) by name:
    links as ancient (touching a folder's file reruns nothing) and their records (the bytes).
    """
    from protsae.huggingface import download_name

    files = {}
    for file in HF_MODEL.files():
        name = download_name(HF_MODEL, file)
        key = file.split(".")[0]
        files[key] = ancient(f"{DOWNLOADS_DIR}/{name}")
        files[f"{key}_record"] = f"{DOWNLOADS_DIR}/{name}.json"
    return files


def source_file(name):
    """The link to config source ``name`` (ancient: touching a source reruns nothing; a
    consumer reruns when the source's bytes change through ``source_record``)."""
    return ancient(
        f"{DOWNLOADS_DIR}/{source_file_name(name, config['sources'][name]['url'])}"
    )


def source_record(name):
    """The record of config source ``name`` (its checksums; rewritten only when its bytes
    change): every rule reading ``source_file(name)`` takes this too."""
    file = source_file_name(name, config["sources"][name]["url"])
    return f"{DOWNLOADS_DIR}/{file}.json"


def download_field(field):
    def get(wildcards):
        return DOWNLOADS[wildcards.file][field]

    get.__name__ = f"download_{field}"
    return get


def download_content(wildcards):
    """What the download's bytes must be (protsae.store.content_key): the job reruns when
    this changes, never because a file was touched or a checksum it has was added."""
    try:
        return content_key(DOWNLOADS[wildcards.file], wildcards.file, DOWNLOADS_DIR)
    except ConfigError as err:
        raise WorkflowError(str(err)) from None


# ---- wildcards as typed params -----------------------------------------------------


def wildcard_int(name):
    """A params function turning a digit wildcard into an int."""

    def get(wildcards):
        return int(wildcards[name])

    get.__name__ = f"wildcard_{name}"
    return get


# ---- activations and SAEs ----------------------------------------------------------


# Layers extracted together (activations.layer_passes): one pass rule per group
# (activations.smk); extract_activations makes the shards of every other layer.
from protsae.plan import layer_passes, pass_rule_name

LAYER_PASSES = layer_passes(config)
LONE_LAYER = r"(?!(?:{})(?!\d))\d+".format(
    _alternatives(sorted({layer for group in LAYER_PASSES for layer in group}))
)


def pass_shards(group):
    """The shard files one pass job writes: each layer of ``group``, one shard."""
    return [
        res("activations", "{model}", f"L{layer}", "shard-{shard}.parquet")
        for layer in group
    ]


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


def sae_coordinates():
    """model, layer, k and width of every SAE, in the order of all_sae_evals and
    all_latent_summaries (the aggregate tables take them as params, not from paths)."""
    return [
        {"model": MODEL, "layer": s.layer, "k": s.k, "width": s.width} for s in SAES
    ]


def all_sae_evals(wildcards=None):
    return [f"{sae_dir(spec)}/eval.json" for spec in SAES]


def all_latent_summaries(wildcards=None):
    return [f"{latents_dir(spec)}/summary.json" for spec in SAES]


# ---- probes ----------------------------------------------------------------------

from protsae.probes.config import probe_sae_specs, probe_tasks, task_grid, task_training

try:
    PROBE_SAES = probe_sae_specs(config["probes"], SAES)
except ConfigError as err:
    raise WorkflowError(str(err)) from None
PROBE_TASKS = probe_tasks(config["sources"])
PROBE_SAE_NAME = SaeSpec(0, **config["probes"]["sae"]).name
PROBE_FEATURES = ["esm", f"sae-{PROBE_SAE_NAME}"]
PROBE_DIR = res("probes", "{model}", "L{layer}", "{task}")


def probe_dir(layer, task):
    return res("probes", MODEL, f"L{layer}", task)


def probe_source(wildcards):
    return source_file(wildcards.task)


def probe_source_record(wildcards):
    return source_record(wildcards.task)


def probe_sae_files(wildcards):
    """The SAE a probe encodes with: none for ESM features."""
    if wildcards.features == "esm":
        return []
    spec = SaeSpec(int(wildcards.layer), **config["probes"]["sae"])
    return [f"{sae_dir(spec)}/sae.safetensors", f"{sae_dir(spec)}/sae.json"]


def probe_latent_table(name):
    def get(wildcards):
        spec = SaeSpec(int(wildcards.layer), **config["probes"]["sae"])
        return f"{latents_dir(spec)}/{name}.parquet"

    get.__name__ = f"probe_latent_{name}"
    return get


def probe_grid(wildcards):
    return task_grid(config["probes"], wildcards.task)


def probe_training(wildcards):
    return task_training(config["probes"], wildcards.task)


def all_probe_results(wildcards=None):
    return [
        f"{probe_dir(spec.layer, task)}/{features}.json"
        for spec in PROBE_SAES
        for task in PROBE_TASKS
        for features in PROBE_FEATURES
    ]


def all_probe_controls(wildcards=None):
    """The two controls of every probe task (no language model: once per task)."""
    return [
        res("probes", "controls", task, f"{control}.json")
        for task in PROBE_TASKS
        for control in ("majority", "composition")
    ]


def probe_targets():
    if not (PROBE_SAES and PROBE_TASKS):
        return []
    targets = all_probe_results()
    for spec in PROBE_SAES:
        for task in PROBE_TASKS:
            targets += [
                f"{probe_dir(spec.layer, task)}/{name}.parquet"
                for name in ("top_latents", "coefficients")
            ]
    return targets + [res("tables", "probes.csv")]


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
            for name in (
                "classes.parquet",
                "families.parquet",
                "concepts.parquet",
                "descriptions.parquet",
                "summary.json",
            )
        ]
        targets.append(f"{steering_dir(spec)}/summary.parquet")
    if SAES:
        targets += [
            res("tables", "sae_metrics.csv"),
            res("tables", "latent_summary.csv"),
        ]
    targets += probe_targets()
    targets += figure_targets() + probe_figure_targets() + steering_figure_targets()
    targets += browser_targets()
    return targets


# ---- figures and the feature browser (report stage) ----------------------------------

import sys

from protsae.figures.grid import figure_sweeps

# (on stderr: stdout carries machine-readable output such as --summary)
FIGURE_SWEEPS, _skipped_sweeps = figure_sweeps(config["sae"]["sweeps"])
for _message in _skipped_sweeps:
    print(_message, file=sys.stderr)


def sweep_points_of_figure(wildcards):
    """The (layer, k, width) of each SAE of sweep number ``wildcards.sweep``."""
    return FIGURE_SWEEPS[int(wildcards.sweep)]


def latents_file(name):
    """An input function: file ``name`` of the latents folder of the wildcards' SAE."""

    def get(wildcards):
        return f"{latents_dir(sae_spec(wildcards))}/{name}"

    get.__name__ = f"latents_{name.split('.')[0]}"
    return get


def all_latent_files(name):
    """An input function: file ``name`` of every SAE's latents folder."""

    def get(wildcards):
        return [f"{latents_dir(spec)}/{name}" for spec in SAES]

    get.__name__ = f"all_latents_{name.split('.')[0]}"
    return get


def sae_title(wildcards):
    return f"{MODEL} layer {wildcards.layer}, k {wildcards.k}, width {wildcards.width}"


def figure_targets():
    """Every figure the configured stages can draw (PNG and SVG)."""
    names = [f"sweep-{number}" for number in FIGURE_SWEEPS]
    if SAES:
        names.append("sae_quality")
    names += [f"max_activation-L{s.layer}-k{s.k}-w{s.width}" for s in SAES]
    names += [f"best_concepts-L{s.layer}-k{s.k}-w{s.width}" for s in SAES]
    return [res("figures", f"{name}.{ext}") for name in names for ext in ("png", "svg")]


def all_probe_tables(name):
    """An input function: ``{name}.parquet`` of every probe (layer, task); none when the
    probe stage is not configured."""

    def get(wildcards=None):
        return [
            f"{probe_dir(spec.layer, task)}/{name}.parquet"
            for spec in PROBE_SAES
            for task in PROBE_TASKS
        ]

    get.__name__ = f"all_probe_{name}"
    return get


def probe_figure_targets():
    """Figures 4 and 9 when the probe stage runs."""
    if not (PROBE_SAES and PROBE_TASKS):
        return []
    return [
        res("figures", f"{name}.{ext}")
        for name in ("probes", "probe_coefficients")
        for ext in ("png", "svg")
    ]


def steering_summary_file(wildcards):
    """The steering summary of the wildcards' SAE."""
    return f"{steering_dir(sae_spec(wildcards))}/summary.parquet"


def all_steering_summaries(wildcards=None):
    return [f"{steering_dir(spec)}/summary.parquet" for spec in SAES]


def steering_figure_targets():
    """Figure 6 of each SAE: its steering summary is a final target of every SAE."""
    return [
        res("figures", f"steering-L{s.layer}-k{s.k}-w{s.width}.{ext}")
        for s in SAES
        for ext in ("png", "svg")
    ]


def browser_saes():
    """What the browser job needs of each SAE: coordinates, latents folder, steering summary."""
    return [
        {
            "layer": s.layer,
            "k": s.k,
            "width": s.width,
            "latents": latents_dir(s),
            "steering": f"{steering_dir(s)}/summary.parquet",
        }
        for s in SAES
    ]


def browser_targets():
    """The feature browser folder, when there are SAEs to browse."""
    return [res("browser")] if SAES else []


# ---- ESM-2 pre-trained here (esm.pretrain) ------------------------------------------


def pretrain_setting(name):
    """A params function for one esm.pretrain value (None when the config trains no model)."""

    def get(wildcards):
        pretrain = config["esm"]["pretrain"]
        return pretrain[name] if pretrain else None

    get.__name__ = f"pretrain_{name}"
    return get
