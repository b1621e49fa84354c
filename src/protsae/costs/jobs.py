"""Jobs per rule of a run from scratch, counted with the workflow's own expansion."""

from __future__ import annotations

from typing import Any

from protsae.config import (
    SaeSpec,
    downloads,
    expand_sweeps,
    extraction_jobs,
    pass_rule_name,
    pretrained_specs,
)
from protsae.figures.grid import figure_sweeps
from protsae.probes.config import probe_sae_specs, probe_tasks


def sae_grid(config: dict[str, Any]) -> tuple[list[SaeSpec], list[SaeSpec]]:
    """(trained, imported) SAEs: the sweeps' expansion and the pretrained entries, as the
    workflow computes them (an SAE both trained and imported is a config error there)."""
    trained = expand_sweeps(config["sae"]["sweeps"])
    imported = sorted(set(pretrained_specs(config)) - set(trained))
    return trained, imported


def jobs_per_rule(config: dict[str, Any]) -> dict[str, int]:
    """Jobs of each rule in a run from scratch, counted like the workflow's DAG."""
    trained, imported = sae_grid(config)
    saes = len(trained) + len(imported)
    layers = {s.layer for s in trained}
    esm = config["esm"]
    probes = jobs_probe(config, trained + imported)
    n_downloads = len(downloads(config))  # every configured source has a stage reading it
    jobs = {"download": n_downloads}
    if esm.get("random_init"):
        jobs["esm_random_init"] = 1
    if esm.get("pretrain"):
        jobs["pretrain_esm"] = 1
    jobs |= {
        "sample_uniref50": 1,
        "parse_swissprot": 1,
        "cluster_swissprot": 1,
        **extraction_rules(config, layers),
        "train_sae": len(trained),
        "import_sae": len(imported),
        "evaluate_sae": saes,
        "latent_stats": saes,
        "latent_classes": saes,
        "latent_families": saes,
        "latent_concepts": saes,
        "latent_descriptions": saes,
        "latent_summary": saes,
        **probes,
        **_steering_jobs(config, trained + imported),
        "sae_metrics_table": int(saes > 0),
        "latent_summary_table": int(saes > 0),
        **_report_jobs(config, saes, bool(probes)),
        "all": 1,
    }
    return {rule: n for rule, n in jobs.items() if n}


def extraction_rules(config: dict[str, Any], layers: set[int]) -> dict[str, int]:
    """Extraction jobs per rule: one early-exit job per (lone layer, shard), one pass job per
    (``activations.layer_passes`` group with a wanted layer, shard)."""
    groups, lone = extraction_jobs(config, layers)
    shards = config["activations"]["shards"]
    return {"extract_activations": len(lone) * shards} | {
        pass_rule_name(group): shards for group in groups
    }


def jobs_probe(config: dict[str, Any], saes: list[SaeSpec]) -> dict[str, int]:
    """The probe stage's jobs: data and two controls (majority, composition) per task, two fits
    and one interpretation per (layer, task)."""
    specs, tasks = probe_sae_specs(config["probes"], saes), probe_tasks(config["sources"])
    if not (specs and tasks):
        return {}
    pairs = len(specs) * len(tasks)
    return {
        "probe_data": len(tasks),
        "probe_control": 2 * len(tasks),
        "probe_fit": 2 * pairs,  # ESM-embedding and SAE-latent probes
        "probe_interpret": pairs,
        "probes_table": 1,
    }


def _steering_jobs(config: dict[str, Any], saes: list[SaeSpec]) -> dict[str, int]:
    """The steering stage's jobs. Its per-latent jobs fan out over the family-specific latents
    the ``latent_families`` checkpoint finds, so they are an upper bound here: at most
    ``min(steering.max_latents, width)`` latents per SAE (and one BLAST database if any)."""
    latents = sum(min(config["steering"]["max_latents"], s.width) for s in saes)
    return {
        "steering_blastdb": int(bool(saes)),
        "steering_homologs": latents,
        "steer_latent": latents,
        "steering_summary": len(saes),
    }


def _report_jobs(config: dict[str, Any], saes: int, probes: bool) -> dict[str, int]:
    """Figures (sweeps with more than one SAE, SAE quality, one max-activation, one best-concepts
    and one steering figure per SAE, the two probe figures), the feature browser (one job per
    SAE and the index) and the structures of its pages (one job per SAE), as the workflow
    draws them."""
    sweeps, _ = figure_sweeps(config["sae"]["sweeps"])
    return {
        "figure_sweep": len(sweeps),
        "figure_sae_quality": int(saes > 0),
        "figure_max_activation": saes,
        "figure_best_concepts": saes,
        "figure_steering": saes,
        "figure_probes": int(probes),
        "figure_probe_coefficients": int(probes),
        "browser_sae": saes,
        "browser_index": int(saes > 0),
        "structures": saes if config["structures"]["source"] != "none" else 0,
    }
