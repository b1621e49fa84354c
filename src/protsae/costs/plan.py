"""What a config will cost before it runs: jobs, tokens, FLOPs, GPU-hours, disk and memory.

Everything is computed from the validated config with the same expansion the workflow uses
(:func:`protsae.config.expand_sweeps`, shards, hold-out fraction), plus a few stated assumptions
(:class:`Assumptions`): the mean length of the sampled sequences (measured from the FASTA when it
is a local file), the size of the Swiss-Prot evaluation set, and the GPU's throughput. The
formulas are in ``docs/scaling.md``; :mod:`protsae.costs.report` prints them;
:mod:`protsae.costs.types` holds the shared types.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from protsae.config import (
    SaeSpec,
    extraction_jobs,
    is_local_source,
    local_source_path,
    pass_rule_name,
)
from protsae.costs.downstream import add_downstream
from protsae.costs.jobs import jobs_per_rule, sae_grid
from protsae.costs.memory import job_memory, profile_mem_mb
from protsae.costs.types import (
    CHECKPOINT_BOUNDED,
    DEFAULT_EVAL_SEQUENCES,
    DEFAULT_MEAN_LENGTH,
    GPUS,
    Assumptions,
    ModelShape,
    Plan,
    SequenceSample,
    Stage,
    activation_bytes,
    ceil_div,
    distinct_latents,
    model_shape,
    sae_file_bytes,
    seq_stats_rows,
    training_tokens,
)


def _local_fasta(config: dict[str, Any]) -> Path | None:
    url = config["sources"]["uniref50"]["url"]
    return Path(local_source_path(url)) if is_local_source(url) else None


def sample_tokens(config: dict[str, Any], assume: Assumptions) -> SequenceSample:
    """Sequences and tokens of the UniRef50 sample, measured when the FASTA is a local file.

    The sample keeps ``sample_size`` records of length <= ``max_length`` whose letters ESM-2
    knows; when the file has more, the eligible records' mean length stands for the sample's.
    """
    seq_cfg, act = config["sequences"], config["activations"]
    per_seq = act["tokens_per_sequence"]
    fasta = _local_fasta(config)
    if assume.mean_length is None and fasta is not None and fasta.is_file():
        return _measured_sample(fasta, seq_cfg, act)
    mean = assume.mean_length or DEFAULT_MEAN_LENGTH
    if assume.mean_length is None:
        assume.notes.append(
            f"mean sampled length {mean:g} residues assumed (override with --mean-length)"
        )
    n = seq_cfg["sample_size"]
    hold = round(n * act["holdout_fraction"])
    stored_per_seq = mean if per_seq is None else min(per_seq, mean)
    return SequenceSample(
        n, n * mean, n * 2 * (mean + 2) ** 2, hold, hold * mean, (n - hold) * stored_per_seq, False
    )


def _measured_sample(fasta: Path, seq_cfg: dict, act: dict) -> SequenceSample:
    from protsae.ids import is_holdout
    from protsae.sequences import esm_residue_letters, read_fasta

    letters = frozenset(esm_residue_letters())
    lengths, holdout = [], []
    for record in read_fasta(fasta, unique_ids=True):
        seq = record.sequence
        if len(seq) <= seq_cfg["max_length"] and set(seq) <= letters:
            lengths.append(len(seq))
            holdout.append(is_holdout(record.id, act["holdout_fraction"]))
    n_all = len(lengths)
    scale = min(1.0, seq_cfg["sample_size"] / n_all) if n_all else 0.0
    per_seq = act["tokens_per_sequence"]
    stored = sum(
        n if per_seq is None else min(n, per_seq)
        for n, h in zip(lengths, holdout, strict=True)
        if not h
    )
    return SequenceSample(
        n=round(n_all * scale),
        residues=sum(lengths) * scale,
        residues_sq=sum((n + 2) ** 2 for n in lengths) * scale,
        holdout_n=round(sum(holdout) * scale),
        holdout_residues=sum(n for n, h in zip(lengths, holdout, strict=True) if h) * scale,
        stored_tokens=stored * scale,
        measured=True,
    )


def eval_set(config: dict[str, Any], assume: Assumptions) -> tuple[int, float]:
    """(sequences, residues) of the Swiss-Prot evaluation set (cluster representatives)."""
    url = config["sources"]["swissprot"]["url"]
    path = Path(local_source_path(url)) if is_local_source(url) else None
    if assume.eval_sequences is None and path is not None and path.is_file():
        n, residues = 0, 0
        from protsae.sequences import open_binary

        with open_binary(path) as handle:
            for line in handle:
                if line.startswith(b"SQ   "):
                    length = int(line.split()[2])
                    if length <= config["clustering"]["max_length"]:
                        n, residues = n + 1, residues + length
        assume.notes.append(
            f"evaluation set: all {n} Swiss-Prot entries of {path.name} counted as cluster "
            "representatives (an upper bound)"
        )
        return n, float(residues)
    n = assume.eval_sequences or DEFAULT_EVAL_SEQUENCES
    if assume.eval_sequences is None:
        assume.notes.append(
            f"evaluation set of {n:,} Swiss-Prot cluster representatives of mean length 350 "
            "assumed (override with --eval-sequences)"
        )
    return n, n * 350.0


# --------------------------------------------------------------------------- the plan


def _sae_train_flops(shape: ModelShape, spec: SaeSpec, tokens: float, auxk: int | None) -> float:
    """Per token: encoder forward 2dw + its weight gradient 2dw, sparse decode and its
    backward ~6kd, the AuxK decode of k_aux dead latents ~6 k_aux d."""
    d, w = shape.d_model, spec.width
    k_aux = auxk if auxk is not None else d // 2
    return tokens * (4 * d * w + 6 * (spec.k + k_aux) * d)


def _stages(
    config: dict, shape: ModelShape, sample: SequenceSample, n_eval: int, eval_residues: float
) -> tuple[list[Stage], dict[str, float]]:
    trained, imported = sae_grid(config)
    saes = trained + imported
    layers = sorted({s.layer for s in trained})
    train_n = sample.n - sample.holdout_n
    train_res = sample.residues - sample.holdout_residues
    mean_tokens = sample.residues_sq / max(1.0, sample.residues + 2 * sample.n)
    per_layer = shape.flops_per_token(1, mean_tokens) * (train_res + 2 * train_n)
    groups, lone = extraction_jobs(config, layers)
    shards = config["activations"]["shards"]
    # a lone layer costs its depth in layer passes per sequence, a group its deepest layer
    extract = [Stage("extract_activations", len(lone) * shards, per_layer * sum(lone), "bf16")]
    extract = extract if lone or not groups else []
    extract += [Stage(pass_rule_name(g), shards, per_layer * max(g), "bf16") for g in groups]
    training = config["sae"]["training"]
    train = Stage(
        "train_sae",
        len(trained),
        sum(
            _sae_train_flops(shape, s, training_tokens(config, sample), training["auxk"])
            for s in trained
        ),
        "bf16" if training["bf16"] else "fp32",
    )
    ev_n = min(config["sae"]["eval"]["max_sequences"], sample.holdout_n)
    ev_tokens = ev_n * (sample.holdout_residues / max(1, sample.holdout_n) + 2)
    ev_flops = sum(
        ev_tokens
        * (
            shape.flops_per_token(s.layer + 3 * shape.layers, mean_tokens)
            + 4 * shape.d_model * s.width
        )
        for s in saes
    )
    evaluate = Stage("evaluate_sae", len(saes), ev_flops, "bf16")
    st_tokens = eval_residues + 2 * n_eval
    stats = Stage(
        "latent_stats",
        len(saes),
        sum(
            st_tokens * (shape.flops_per_token(s.layer, mean_tokens) + 2 * shape.d_model * s.width)
            for s in saes
        ),
        "bf16",
    )
    # the concept counts encode the same evaluation set again (rule latent_concepts)
    concepts = Stage("latent_concepts", stats.jobs, stats.flops, "bf16")
    configured = sum(lone) + sum(max(g) for g in groups)
    alternative = {
        "per_layer_early_exit_flops": per_layer * sum(layers),
        "multi_layer_pass_flops": per_layer * (max(layers) if layers else 0),
        "configured_flops": per_layer * configured,
        "layer_passes_per_sequence_early_exit": float(sum(layers)),
        "layer_passes_per_sequence_multi_layer": float(max(layers) if layers else 0),
        "layer_passes_per_sequence_configured": float(configured),
    }
    return [*extract, train, evaluate, stats, concepts], alternative


def _disk(
    config: dict, shape: ModelShape, sample: SequenceSample, n_eval: int, eval_residues: float
) -> tuple[dict[str, float], dict[str, float]]:
    """(bytes per intermediate under results/, summed for the total; peaks and per-unit sizes)."""
    trained, imported = sae_grid(config)
    saes = trained + imported
    groups, lone = extraction_jobs(config, {s.layer for s in trained})
    layers = set(lone) | {layer for g in groups for layer in g}  # a pass writes its whole group
    act = activation_bytes(sample.stored_tokens, shape, config["activations"]["dtype"])
    mean_eval = eval_residues / max(1, n_eval)
    top_rows = min(2 * config["latents"]["top_examples"], n_eval)
    training = config["sae"]["training"]
    log_rows = ceil_div(training_tokens(config, sample), training["batch_tokens"])

    def top_bytes(spec: SaeSpec) -> float:
        rows = min(seq_stats_rows(spec, n_eval, mean_eval), spec.width * top_rows)
        positions = mean_eval * spec.k / max(1.0, distinct_latents(spec, mean_eval))
        return rows * (40 + 8 * positions)

    disk = {
        "sequences/uniref50_sample.parquet": sample.residues * 1.05 + sample.n * 30,
        "sequences/swissprot + clusters": eval_residues * 1.2 + n_eval * 300,
        "activations/ (all layers)": act * len(layers),
        "sae/ (weights, train logs, eval)": sum(sae_file_bytes(shape, s) + 2000 for s in saes)
        + len(trained) * min(log_rows, 100_000) * 40,
        "latents/*/seq_stats.parquet": sum(seq_stats_rows(s, n_eval, mean_eval) * 30 for s in saes),
        "latents/*/top_examples.parquet": sum(top_bytes(s) for s in saes),
        "latents/*/classes, families, summary": sum(s.width * 60 for s in saes),
        "logs/, benchmarks/, tables/": 6000
        * sum(n for r, n in jobs_per_rule(config).items() if r not in CHECKPOINT_BOUNDED),
    }
    extra = {
        "activations per layer": act,
        "SAE checkpoint while training (largest)": 3
        * max((sae_file_bytes(shape, s) for s in trained), default=0),
    }
    return disk, extra


def build_plan(
    config: dict[str, Any],
    assume: Assumptions | None = None,
    profile: str | os.PathLike[str] | None = None,
) -> Plan:
    """The plan of a validated config (see :func:`protsae.config.validate_config`)."""
    assume = assume or Assumptions()
    if assume.gpu not in GPUS:
        raise ValueError(f"unknown GPU {assume.gpu!r}; choose one of {', '.join(sorted(GPUS))}")
    shape = model_shape(config["esm"])
    sample = sample_tokens(config, assume)
    n_eval, eval_res = eval_set(config, assume)
    stages, alternative = _stages(config, shape, sample, n_eval, eval_res)
    gpu = GPUS[assume.gpu]
    peak = gpu.bf16 * assume.utilization * 3600
    alternative["per_layer_early_exit_gpu_hours"] = alternative["per_layer_early_exit_flops"] / peak
    alternative["multi_layer_pass_gpu_hours"] = alternative["multi_layer_pass_flops"] / peak
    alternative["configured_gpu_hours"] = alternative["configured_flops"] / peak
    disk, extra = _disk(config, shape, sample, n_eval, eval_res)
    trained, _ = sae_grid(config)
    tokens = {
        "sampled_sequences": sample.n,
        "sampled_residues": sample.residues,
        "holdout_sequences": sample.holdout_n,
        "stored_tokens_per_layer": sample.stored_tokens,
        "layers": len({s.layer for s in trained}),
        "sae_training_tokens": training_tokens(config, sample),
        "epochs_over_cache": training_tokens(config, sample) / max(1.0, sample.stored_tokens),
        "eval_set_sequences": n_eval,
        "eval_set_residues": eval_res,
    }
    jobs = jobs_per_rule(config)
    more_memory = add_downstream(config, shape, assume, (n_eval, eval_res), stages, disk, extra)
    for stage in stages:
        peak = gpu.bf16 if stage.precision == "bf16" else gpu.fp32
        stage.gpu_hours = stage.flops / (peak * assume.utilization) / 3600
    return Plan(
        model=shape,
        jobs=jobs,
        tokens=tokens,
        stages=stages,
        extraction_alternative=alternative,
        disk=disk,
        disk_extra=extra,
        memory=job_memory(config, shape, sample, assume, profile_mem_mb(profile), more_memory),
        assumptions={
            "gpu": gpu.name,
            "peak_bf16_tflops": gpu.bf16 / 1e12,
            "peak_fp32_tflops": gpu.fp32 / 1e12,
            "utilization": assume.utilization,
            "sample_measured": sample.measured,
            "notes": list(assume.notes),
        },
    )
