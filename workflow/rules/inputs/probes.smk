# Input and params functions of the probes stage (its rules: workflow/rules/probes.smk).

from protsae.probes.config import task_grid, task_training

PROBE_SAE_NAME = SaeSpec(0, **config["probes"]["sae"]).name
PROBE_FEATURES = ["esm", f"sae-{PROBE_SAE_NAME}"]


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
