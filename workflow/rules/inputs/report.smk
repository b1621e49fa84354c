# Input and params functions of the report stage (its rules: workflow/rules/report.smk).


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
