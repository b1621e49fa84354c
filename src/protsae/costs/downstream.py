"""``protsae plan`` for the stages after the latent tables: probes, steering, figures, browser.

Probes run ESM-2 to the probe layer over every record of each task (twice: once for the
ESM-embedding probe, once for the SAE-latent probe, which also encodes with the SAE); fitting
the linear probes on those features is small next to that and is not counted. Steering runs,
per steered latent, ``steering.sequences`` top sequences through the whole model once plain and
once per multiplier (the SAE splice at the SAE's layer), after one blastp search and one Clustal
Omega alignment per sequence (CPU). The figures and the browser cost disk; their compute is
negligible except the browser's one Clustal Omega alignment per latent (CPU).

The steering fan-out depends on the ``latent_families`` checkpoint: the plan counts its upper
bound, ``min(steering.max_latents, width)`` latents per SAE.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protsae.config import is_local_source, local_source_path
from protsae.costs.jobs import jobs_per_rule, jobs_probe, sae_grid
from protsae.costs.types import Stage, distinct_latents, seq_stats_rows
from protsae.probes.config import probe_sae_specs, probe_tasks

if TYPE_CHECKING:
    from protsae.config import SaeSpec
    from protsae.costs.types import Assumptions, ModelShape


#: The paper's probe data sets (records after the readers' filters, mean length), used when a
#: task's source is not a local file; rough published sizes, printed as an assumption.
TASK_DEFAULTS = {
    "secondary_structure": (11_361, 256.0),  # TAPE train + valid + CB513
    "localization": (13_858, 550.0),  # DeepLoc 1.0 without Cytoplasm-Nucleus
    "thermostability": (27_951, 540.0),  # FLIP meltome mixed_split
    "expression": (2_000, 400.0),  # CHO expression (Tegel et al.), a rough guess
}
RESIDUE_TASKS = frozenset({"secondary_structure"})
#: Coefficient rows per feature: classes of the task's probe (one for regression / binary).
TASK_OUTPUTS = {"secondary_structure": 3, "localization": 10, "thermostability": 1, "expression": 1}

BLASTP_CELLS_PER_CPU_S = 1e10  # query residues x database residues per CPU-second (heuristic)
CLUSTALO_S_PER_UNIT = 1e-7  # CPU-seconds per (sequences^2 x length) of an alignment
MAKEBLASTDB_RESIDUES_PER_S = 5e7
FIGURE_BYTES = 75_000  # one figure's PNG and SVG together (the demo's figures' mean)


@dataclass
class TaskSize:
    """One probe task's records and residues (as the probe_data rule keeps them)."""

    records: int
    residues: float
    residues_sq: float  # sum over records of (length + 2)^2, for attention FLOPs
    measured: bool

    @property
    def tokens(self) -> float:
        """Tokens through ESM-2: residues plus BOS and EOS."""
        return self.residues + 2 * self.records

    @property
    def mean_tokens(self) -> float:
        """Token-weighted mean sequence length in tokens (what attention FLOPs scale with)."""
        return self.residues_sq / max(1.0, self.tokens)


def task_sizes(
    config: dict[str, Any], tasks: list[str], assume: Assumptions
) -> dict[str, TaskSize]:
    """Each task's size: read with the probe reader when its source is a local file, else
    :data:`TASK_DEFAULTS` (noted in the plan's assumptions)."""
    from protsae.probes.data import TaskOptions, load_task

    probes, out = config["probes"], {}
    for task in tasks:
        url = config["sources"][task]["url"]
        path = Path(local_source_path(url)) if is_local_source(url) else None
        if path is not None and path.is_file():
            options = TaskOptions(
                long_sequences=probes["long_sequences"],
                validation_fraction=probes["validation_fraction"],
                test_fraction=probes["test_fraction"],
                seed=probes["seed"],
                ss_test_set=probes["ss_test_set"],
                meltome_split=probes["meltome_split"],
                expression_column=probes["expression_column"],
            )
            data = load_task(task, path, options)
            lengths = [len(r.sequence) for r in data.records]
            out[task] = TaskSize(
                len(lengths), float(sum(lengths)), float(sum((n + 2) ** 2 for n in lengths)), True
            )
            continue
        n, mean = TASK_DEFAULTS[task]
        assume.notes.append(f"probe task {task}: {n:,} records of mean length {mean:g} assumed")
        out[task] = TaskSize(n, n * mean, n * (mean + 2) ** 2, False)
    return out


def probe_flops(shape: ModelShape, specs: list[SaeSpec], sizes: dict[str, TaskSize]) -> float:
    """ESM-2 forwards to each probe layer (for the ESM and the SAE probe) plus the SAE encode."""
    total = 0.0
    for spec in specs:
        for size in sizes.values():
            forward = size.tokens * shape.flops_per_token(spec.layer, size.mean_tokens)
            total += 2 * forward + size.tokens * 2 * shape.d_model * spec.width
    return total


def probe_disk(
    shape: ModelShape, specs: list[SaeSpec], sizes: dict[str, TaskSize], top_n: int
) -> tuple[float, float]:
    """(bytes under results/probes, the largest job's scratch file), with sizes fitted to the
    demo's parquet files: data tables (1 B per residue, 1.3 with per-residue labels, 40 B per
    record); per probe two coefficient tables (1.5 kB + 6 B per feature and output), the
    interpretation (coefficients: 4 kB + 8 B per latent and output; top latents: 5 kB + 100 B
    per listed latent), two JSON scores (0.7 kB) and the predictions. The scratch file holds the dense float32
    ESM residue features of a residue-level task (in a temporary folder)."""
    data = sum(
        s.residues * (1.3 if task in RESIDUE_TASKS else 1.0) + 40 * s.records
        for task, s in sizes.items()
    )
    # predictions (id, position, split, y, y_pred): ~12 B per row, two probes per (layer, task)
    # and two controls per task
    rows = {t: s.residues if t in RESIDUE_TASKS else s.records for t, s in sizes.items()}
    per_probe = sum(12 * n * (2 * len(specs) + 2) for n in rows.values())
    for spec in specs:
        for task in sizes:
            outputs = TASK_OUTPUTS[task]
            per_probe += 2 * 1500 + 6 * outputs * (shape.d_model + spec.width)
            per_probe += 4000 + 8 * outputs * spec.width + 5000 + 100 * 2 * outputs * top_n
            per_probe += 2 * 700
    scratch = max(
        (s.residues * shape.d_model * 4 for t, s in sizes.items() if t in RESIDUE_TASKS),
        default=0.0,
    )
    return data + per_probe, scratch


def steered_latents(config: dict[str, Any], saes: list[SaeSpec]) -> int:
    """Upper bound of the latents steered: ``min(max_latents, width)`` per SAE."""
    return sum(min(config["steering"]["max_latents"], s.width) for s in saes)


def steering_flops(
    config: dict[str, Any], shape: ModelShape, saes: list[SaeSpec], mean_length: float
) -> float:
    """Per steered latent: its sequences through every layer, plain and per multiplier; each
    spliced forward also encodes with the SAE (2 d w) and decodes its k latents (2 k d)."""
    st = config["steering"]
    cap, multipliers = st["max_latents"], len(st["multipliers"])
    tokens = st["sequences"] * (mean_length + 2)
    forward = shape.flops_per_token(shape.layers, mean_length + 2)
    total = 0.0
    for s in saes:
        splice = 2 * shape.d_model * s.width + 2 * s.k * shape.d_model
        total += min(cap, s.width) * tokens * ((1 + multipliers) * forward + multipliers * splice)
    return total


def steering_cpu_hours(
    config: dict[str, Any], saes: list[SaeSpec], n_eval: int, eval_residues: float
) -> float:
    """makeblastdb once; per steered sequence one blastp against the Swiss-Prot set and one
    Clustal Omega alignment of at most ``blast.max_hits`` homologs (rough, see the constants)."""
    st = config["steering"]
    mean = eval_residues / max(1, n_eval)
    hits = min(st["blast"]["max_hits"], n_eval)
    per_sequence = mean * eval_residues / BLASTP_CELLS_PER_CPU_S
    per_sequence += CLUSTALO_S_PER_UNIT * hits**2 * mean
    seconds = steered_latents(config, saes) * st["sequences"] * per_sequence
    return (seconds + eval_residues / MAKEBLASTDB_RESIDUES_PER_S) / 3600


def steering_disk(
    config: dict[str, Any], saes: list[SaeSpec], n_eval: int, eval_residues: float
) -> tuple[float, float]:
    """(BLAST database and one summary per SAE; the per-latent tables at their upper bound).

    Per steered latent: conservation (40 B per residue), alignments (1.2 B per aligned residue
    of each homolog) and the steering table (30 B per residue and multiplier). Latents the
    checkpoint finds fewer of, or skips (too few homologs), write less.
    """
    st = config["steering"]
    mean = eval_residues / max(1, n_eval)
    residues = st["sequences"] * mean
    hits = min(st["blast"]["max_hits"], n_eval)
    per_latent = residues * (40 + 1.2 * hits + 30 * len(st["multipliers"]))
    db = 1.3 * eval_residues + 60 * n_eval
    summaries = len(saes) * (2000 + 100 * len(st["conservation_bins"]) * st["max_latents"])
    return db + summaries, steered_latents(config, saes) * per_latent


STRUCTURE_BYTES_PER_RESIDUE = 900.0  # an AlphaFold DB mmCIF model: ~9 atom lines per residue
BACKBONE_BYTES_PER_RESIDUE = 340.0  # the browser's copy: N, CA, C, O lines of PDB text


def report_disk(
    config: dict[str, Any], figures: int, saes: list[SaeSpec], n_eval: int, mean_length: float
) -> tuple[float, float, float]:
    """(figures, browser, structures) bytes: :data:`FIGURE_BYTES` per figure; the browser's
    static files (25 kB), per latent a script (1.5 kB of stats, histogram, peak residues) and
    an index row (150 B), per top sequence shown (``browser.top_sequences`` per latent, at
    most the latent's active sequences) its entry: 200 B, the aligned sequence (1.2 B per
    residue) and 12 B per active position, per quantile example (``browser.quantiles``) 150 B
    and its sequence (sizes from the browser's test pages). Structures (unless
    ``structures.source`` is none): a model for each of a latent's ``structures.top_sequences``
    at most (fewer: latents share sequences), :data:`STRUCTURE_BYTES_PER_RESIDUE` in
    the download cache (each accession once; ``structures/`` hard-links it), the backbone,
    :data:`BACKBONE_BYTES_PER_RESIDUE`, in the browser."""
    top = config["browser"]["top_sequences"]
    quantiles = config["browser"]["quantiles"]
    examples = quantiles["bins"] * quantiles["examples"]
    browser = 25_000.0 if saes else 0.0
    models = 0.0
    for spec in saes:
        entries = min(seq_stats_rows(spec, n_eval, mean_length), spec.width * top)
        active = mean_length * spec.k / max(1.0, distinct_latents(spec, mean_length))
        browser += spec.width * 1650 + entries * (200 + 1.2 * mean_length + 12 * active)
        browser += spec.width * examples * (150 + mean_length)
        models += min(spec.width * config["structures"]["top_sequences"], entries, n_eval)
    structures = 0.0
    if config["structures"]["source"] != "none":
        # one file per accession: the SAEs' structures/ folders hard-link the download cache
        structures = min(models, n_eval) * STRUCTURE_BYTES_PER_RESIDUE * mean_length
        browser += models * BACKBONE_BYTES_PER_RESIDUE * mean_length
    return figures * FIGURE_BYTES, browser, structures


def browser_cpu_hours(config: dict[str, Any], saes: list[SaeSpec], mean_length: float) -> float:
    """One Clustal Omega alignment of each latent's top sequences (shared ones are reused): at
    most ``width`` alignments of ``browser.top_sequences`` sequences in each SAE's own job."""
    return sum(browser_job_cpu_hours(config, s, mean_length) for s in saes)


# CPU-seconds per aligned residue of a browser alignment (clustalo, one thread): 10 sequences of
# 350 aa took 0.28 s, 5 of 350 aa 0.17 s, 10 of 150 aa 0.08 s on the 2-core test machine.
BROWSER_CLUSTALO_S_PER_RESIDUE = 8e-5


def browser_job_cpu_hours(config: dict[str, Any], spec: SaeSpec, mean_length: float) -> float:
    """The Clustal Omega CPU-hours of one SAE's browser job (its bound: one alignment of the
    ``browser.top_sequences`` top sequences per latent; latents sharing them share it)."""
    top = config["browser"]["top_sequences"]
    return spec.width * BROWSER_CLUSTALO_S_PER_RESIDUE * top * mean_length / 3600


def add_downstream(
    config: dict,
    shape: ModelShape,
    assume: Assumptions,
    eval_data: tuple[int, float],
    stages: list,
    disk: dict[str, float],
    extra: dict[str, float],
) -> dict[str, float]:
    """Append the probe, steering and report stages and their disk; return the MB their GPU
    jobs hold besides the model and its forward buffers (for the memory table)."""
    trained, imported = sae_grid(config)
    saes = trained + imported
    n_eval, eval_res = eval_data
    mean_eval = eval_res / max(1, n_eval)
    jobs = jobs_per_rule(config)
    memory: dict[str, float] = {}
    if jobs_probe(config, saes):
        specs = probe_sae_specs(config["probes"], saes)
        sizes = task_sizes(config, probe_tasks(config["sources"]), assume)
        stages.append(
            Stage("probe_fit", jobs["probe_fit"], probe_flops(shape, specs, sizes), "bf16")
        )
        disk["probes/ (data, coefficients, scores)"], scratch = probe_disk(
            shape, specs, sizes, config["probes"]["top_latents"]
        )
        extra["probe scratch: ESM residue features (largest job, temp folder)"] = scratch
        memory["probe_fit"] = probe_features_mb(shape, specs, sizes)
        assume.notes.append(
            "probe fitting (linear models on the pooled or per-residue features) is not counted: "
            "it is small next to the ESM forwards that make the features"
        )
    if saes:
        stages.append(
            Stage(
                "steer_latent",
                jobs["steer_latent"],
                steering_flops(config, shape, saes, mean_eval),
                "bf16",
                cpu_hours=steering_cpu_hours(config, saes, n_eval, eval_res),
            )
        )
        disk["steering/ (BLAST db, summaries)"], extra["steering per-latent tables (at most)"] = (
            steering_disk(config, saes, n_eval, eval_res)
        )
        figures = sum(n for r, n in jobs.items() if r.startswith("figure_"))
        disk["figures/"], disk["browser/"], structures = report_disk(
            config, figures, saes, n_eval, mean_eval
        )
        if structures:
            disk["structures/ (top sequences' models, each once, at most)"] = structures
        stages.append(Stage("figures", figures, 0.0, "cpu"))
        stages.append(
            Stage(
                "browser (one job per SAE, Clustal Omega; index)",
                jobs["browser_sae"] + jobs["browser_index"],
                0.0,
                "cpu",
                cpu_hours=browser_cpu_hours(config, saes, mean_eval),
            )
        )
        biggest = max(saes, key=lambda s: s.width)
        assume.notes.append(
            f"browser: each SAE's job aligns at most one set of "
            f"{config['browser']['top_sequences']} top sequences per latent (Clustal Omega, "
            f"~{browser_job_cpu_hours(config, biggest, mean_eval):.2g} CPU-h for "
            f"the widest SAE, {biggest.width} latents); adding an SAE runs only its job and "
            "the index"
        )
        assume.notes.append(
            f"steering: at most {config['steering']['max_latents']} latents per SAE are counted "
            "(the family-specific ones latent_families finds; often fewer); its CPU-hours "
            "(blastp, Clustal Omega) are rough"
        )
        widest = max(s.width for s in saes)
        memory["steer_latent"] = 4 * 2 * shape.d_model * widest / 1e6  # the SAE's weights
    return memory


def probe_features_mb(shape: ModelShape, specs: list[SaeSpec], sizes: dict[str, TaskSize]) -> float:
    """The largest probe job's features in memory: a protein-level task's pooled float32 rows
    (ESM d or SAE width wide) three times (the array, the fit's scaled copy and its work), or a
    residue-level task's sparse SAE rows (k values and columns, 8 B each) twice; the dense ESM
    residue features live in a memory-mapped scratch file instead."""
    widest = max(s.width for s in specs)
    k = max(s.k for s in specs)
    need = 0.0
    for task, size in sizes.items():
        if task in RESIDUE_TASKS:
            need = max(need, 2 * size.residues * k * 8)
        else:
            need = max(need, 3 * size.records * max(shape.d_model, widest) * 4)
    return need / 1e6
