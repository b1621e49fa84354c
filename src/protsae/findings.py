"""The findings of a finished run, computed from its tables: what ``make demo`` ends by printing
and what the README may quote (nothing else).

Each finding is a function ``results -> lines`` in :data:`FINDINGS`; a stage adds its own by
appending one. A finding whose inputs are absent (a run without probes, say) prints nothing.
Numbers are rounded to what their spread supports (:func:`round_to_spread`), and intervals
that include zero are said to show no difference.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

#: A finding: the results folder in, printable lines out (none when its tables are absent).
Finding = Callable[[Path], list[str]]


def decimals_for(spread: float, minimum: int = 1, maximum: int = 4) -> int:
    """Decimals that keep the first significant digit of ``spread`` (e.g. 0.021 -> 2)."""
    if not spread or not math.isfinite(spread) or spread <= 0:
        return maximum
    return int(min(maximum, max(minimum, -math.floor(math.log10(abs(spread))))))


def round_to_spread(mean: float, spread: float) -> str:
    """``mean ± spread`` with as many decimals as the spread supports."""
    digits = decimals_for(spread)
    return f"{mean:.{digits}f} ± {spread:.{digits}f}"


def _interval(value: float, low: float, high: float, digits: int = 2, sign: bool = False) -> str:
    fmt = f"{{:+.{digits}f}}" if sign else f"{{:.{digits}f}}"
    return f"{fmt.format(value)} [{fmt.format(low)}, {fmt.format(high)}]"


def _sae_name(row) -> str:
    return f"L{int(row.layer)}-k{int(row.k)}-w{int(row.width)}"


def _read_csv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.exists() else None


def sae_quality(results: Path) -> list[str]:
    """Loss recovered (mean ± sd over mask draws) and FVE of every SAE."""
    metrics = _read_csv(results / "tables" / "sae_metrics.csv")
    if metrics is None or metrics.empty:
        return []
    lines = []
    for row in metrics.sort_values(["layer", "k", "width"]).itertuples():
        std = getattr(row, "loss_recovered_std", float("nan"))
        draws = getattr(row, "mask_draws", float("nan"))
        if pd.isna(row.loss_recovered):
            recovered = "loss recovered undefined (last layer)"
        elif pd.isna(std):
            recovered = f"loss recovered {row.loss_recovered:.2f} (one mask draw)"
        else:
            recovered = (
                f"loss recovered {round_to_spread(row.loss_recovered, std)} "
                f"(mean ± sd over {int(draws)} mask draws)"
            )
        lines.append(f"SAE {_sae_name(row)}: {recovered}; FVE {row.fve:.2f}, L0 {row.l0:.1f}")
    return lines


def latent_classes(results: Path) -> list[str]:
    """Family-specific and periodic latents per SAE."""
    summary = _read_csv(results / "tables" / "latent_summary.csv")
    if summary is None or summary.empty:
        return []
    lines = []
    for row in summary.sort_values(["layer", "k", "width"]).itertuples():
        lines.append(
            f"SAE {_sae_name(row)}: {int(row.family_specific)} of {int(row.n_latents)} latents "
            f"family-specific (test F1 > 0.7, family and threshold chosen on train); "
            f"{int(row.periodic)} periodic, {int(row.dead)} dead"
        )
    return lines


def _verdict(low: float, high: float) -> str:
    if low > 0:
        return "SAE better"
    if high < 0:
        return "ESM better"
    return "no difference shown (interval includes 0)"


def probes(results: Path) -> list[str]:
    """Per task and layer: SAE and ESM test metric with 95% intervals, the paired difference,
    and the controls."""
    table = _read_csv(results / "tables" / "probes.csv")
    if table is None or table.empty or "delta_vs_esm" not in table:
        return []
    lines = []
    for (task, layer), rows in table.groupby(["task", "layer"], sort=True):
        by = {r.features: r for r in rows.itertuples()}
        esm = by.get("esm")
        saes = [r for name, r in by.items() if name.startswith("sae-")]
        if esm is None or not saes:
            continue
        for sae in saes:
            controls = ", ".join(
                f"{name} {by[name].value:.2f}" for name in ("majority", "composition") if name in by
            )
            lines.append(
                f"probe {task} L{int(layer)} ({esm.metric}, n_test {int(esm.n_test)}): "
                f"SAE {_interval(sae.value, sae.ci_low, sae.ci_high)} vs "
                f"ESM {_interval(esm.value, esm.ci_low, esm.ci_high)}; SAE − ESM "
                f"{_interval(sae.delta_vs_esm, sae.delta_ci_low, sae.delta_ci_high, sign=True)}: "
                f"{_verdict(sae.delta_ci_low, sae.delta_ci_high)}"
                + (f"; controls: {controls}" if controls else "")
            )
    return lines


def steering(results: Path) -> list[str]:
    """Per SAE: fraction unchanged at the strongest clamp in the least and most conserved bins
    with enough positions, pooled over kept latents, beside the unclamped forward."""
    from protsae.steering.summary import MIN_BIN_POSITIONS

    lines = []
    for path in sorted((results / "steering").glob("*/L*/k*-w*/summary.parquet")):
        summary = pd.read_parquet(path)
        name = f"{path.parent.parent.name}-{path.parent.name}"
        heads = summary[summary.scope == "latent"].drop_duplicates("latent")
        kept = int(heads.kept.fillna(False).astype(bool).sum())
        if kept == 0:
            lines.append(f"steering {name}: no latent kept of {len(heads)}: no trend to show")
            continue
        bins = summary[(summary.scope == "average") & summary.bin_low.notna()]
        bins = bins[bins.n_positions >= MIN_BIN_POSITIONS]
        strongest = bins[bins.multiplier == bins.multiplier.max()].sort_values("bin_low")
        if len(strongest) < 2:
            lines.append(
                f"steering {name}: {kept} latent(s) kept of {len(heads)}; fewer than two "
                f"conservation bins hold {MIN_BIN_POSITIONS} positions: no trend to show"
            )
            continue
        low, high = strongest.iloc[0], strongest.iloc[-1]

        def at(row) -> str:
            return (
                f"{row.fraction_unchanged:.2f} at conservation {row.bin_low:g}–{row.bin_high:g} "
                f"(n={int(row.n_positions)}, {int(row.n_latents)} latents; no clamp "
                f"{row.fraction_baseline_unchanged:.2f})"
            )

        lines.append(
            f"steering {name} ({kept} of {len(heads)} latents kept), clamp "
            f"×{low.multiplier:g}: fraction unchanged {at(low)} vs {at(high)}"
        )
    return lines


def residue_concepts(results: Path) -> list[str]:
    """Per SAE: latents specific to a Swiss-Prot residue concept, and how many of them to a
    MOTIF (the demo's planted motifs are its FT MOTIF lines); then the motif total."""
    from protsae.latents.concepts import CONCEPT_F1_THRESHOLD

    lines, motif_total, n_saes = [], 0, 0
    for path in sorted((results / "latents").glob("*/L*/k*-w*/concepts.parquet")):
        concepts = pd.read_parquet(path, columns=["latent", "concept", "f1_test"])
        specific = concepts[concepts.f1_test > CONCEPT_F1_THRESHOLD]
        motif = specific[specific.concept.str.startswith("MOTIF")].latent.nunique()
        motif_total, n_saes = motif_total + motif, n_saes + 1
        lines.append(
            f"SAE {path.parent.parent.name}-{path.parent.name}: {specific.latent.nunique()} latents "
            f"concept-specific (test F1 > {CONCEPT_F1_THRESHOLD} on a Swiss-Prot feature, "
            f"threshold chosen on train; {concepts.concept.nunique()} concepts scored), "
            f"{motif} on a MOTIF"
        )
    if n_saes:
        lines.append(f"motif-specific latents over {n_saes} SAEs (test F1 > 0.5): {motif_total}")
    return lines


#: The findings printed, in order; a stage adds its own by appending here.
FINDINGS: list[Finding] = [sae_quality, latent_classes, residue_concepts, probes, steering]


def findings(results: str | os.PathLike[str]) -> list[str]:
    """Every line of every finding of the run under ``results``."""
    root = Path(results)
    if not (root / "tables").is_dir():
        raise FileNotFoundError(f"{root}: no tables/ folder (is this a finished run's results?)")
    return [line for finding in FINDINGS for line in finding(root)]
