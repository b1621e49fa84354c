"""Steering: fraction of residues unchanged vs conservation of their aligned column, one line
per multiplier (the paper's Figure 6), from a steering ``summary.parquet``."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from protsae.steering.summary import MIN_BIN_POSITIONS

STEERING_COLUMNS = (
    "scope",
    "multiplier",
    "bin_low",
    "bin_high",
    "n_positions",
    "fraction_unchanged",
    "fraction_baseline_unchanged",
)


def steering_curves(summary: pd.DataFrame) -> pd.DataFrame:
    """The ``average`` rows of one conservation bin each (not the all-positions rows), sorted
    by (multiplier, bin_low)."""
    missing = [c for c in STEERING_COLUMNS if c not in summary.columns]
    if missing:
        raise ValueError(f"steering summary lacks column(s) {', '.join(missing)}")
    rows = summary[(summary.scope == "average") & summary.bin_low.notna()]
    return rows.sort_values(["multiplier", "bin_low"]).reset_index(drop=True)


def latent_counts(summary: pd.DataFrame) -> dict[str, int]:
    """Latents kept (passed the filter), filtered (steered, failed it) and skipped (not steered)."""
    heads = summary[summary.scope == "latent"].drop_duplicates("latent")
    skipped = heads.skip_reason.notna() if "skip_reason" in heads else heads.kept.isna()
    kept = heads.kept.fillna(False).astype(bool) & ~skipped
    return {
        "kept": int(kept.sum()),
        "filtered": int((~kept & ~skipped).sum()),
        "skipped": int(skipped.sum()),
    }


def steering_figure(summary: pd.DataFrame, title: str = "") -> Figure:
    """x = middle of each conservation bin, y = fraction of residues whose argmax is unchanged
    after clamping, pooled over the kept latents' positions: one line per multiplier (label
    ``×{multiplier}``) with the per-latent interquartile range as a band, and the unclamped
    forward's agreement as a dashed black line (``no clamp``). Bins pooling fewer than
    MIN_BIN_POSITIONS positions are not drawn as points: they are shaded and labelled. The x
    tick labels give each bin's positions and latents; the footer says how many latents were
    kept, filtered and skipped."""
    curves = steering_curves(summary)
    figure = Figure(figsize=(7.0, 4.8), layout="constrained")
    ax = figure.subplots()
    counts = latent_counts(summary) if "kept" in summary else None
    if counts is not None:
        figure.supxlabel(
            f"latents: {counts['kept']} kept, {counts['filtered']} filtered "
            f"(too few residues unchanged at the filter multiplier), {counts['skipped']} skipped",
            fontsize="small",
        )
    if curves.empty:
        ax.text(
            0.5,
            0.5,
            "no latent was steered (none family-specific or all skipped)",
            ha="center",
            va="center",
            wrap=True,
        )
        ax.set_axis_off()
        return figure
    for multiplier, line in curves.groupby("multiplier", sort=True):
        middle = (line.bin_low.to_numpy() + line.bin_high.to_numpy()) / 2
        enough = line.n_positions.to_numpy() >= MIN_BIN_POSITIONS
        y = np.where(enough, line.fraction_unchanged.to_numpy(dtype=float), np.nan)
        (drawn,) = ax.plot(middle, y, "o-", label=f"×{multiplier:g}")
        if {"q25", "q75"} <= set(line.columns):
            low = np.where(enough, line.q25.to_numpy(dtype=float), np.nan)
            high = np.where(enough, line.q75.to_numpy(dtype=float), np.nan)
            ax.fill_between(middle, low, high, color=drawn.get_color(), alpha=0.15, linewidth=0)
    bins = curves.drop_duplicates("bin_low").sort_values("bin_low")
    middle = (bins.bin_low.to_numpy() + bins.bin_high.to_numpy()) / 2
    enough = bins.n_positions.to_numpy() >= MIN_BIN_POSITIONS
    baseline = np.where(enough, bins.fraction_baseline_unchanged.to_numpy(dtype=float), np.nan)
    ax.plot(middle, baseline, "k--", label="no clamp")
    for row in bins[~enough].itertuples():
        ax.axvspan(row.bin_low, row.bin_high, color="0.85", zorder=0)
        ax.text((row.bin_low + row.bin_high) / 2, 0.5, f"< {MIN_BIN_POSITIONS} positions",
                rotation=90, ha="center", va="center", fontsize="x-small", color="0.35")  # fmt: skip
    labels = [
        f"{row.bin_low:g}–{row.bin_high:g}\nn={int(row.n_positions)} ({int(row.n_latents)} lat.)"
        for row in bins.itertuples()
    ]
    ax.set_xticks(middle, labels, fontsize="x-small")
    ax.set_xlim(0, 1)
    ax.set_xlabel("conservation of the aligned column (bin; positions and latents pooled)")
    ax.set_ylabel("fraction of residues unchanged")
    ax.set_ylim(0, 1.02)
    ax.legend(title="clamp × max activation", fontsize="small")
    if title:
        ax.set_title(title)
    return figure
