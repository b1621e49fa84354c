"""Steering: fraction of residues unchanged vs conservation of their aligned column, one line
per multiplier (the paper's Figure 6), from a steering ``summary.parquet``."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

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


def steering_figure(summary: pd.DataFrame, title: str = "") -> Figure:
    """x = middle of each conservation bin, y = fraction of residues whose argmax is unchanged
    after clamping, averaged over the kept latents: one line per multiplier (label
    ``×{multiplier}``), and the unclamped forward's agreement as a dashed line (``no clamp``)."""
    curves = steering_curves(summary)
    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = figure.subplots()
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
        ax.plot(middle, line.fraction_unchanged.to_numpy(), "o-", label=f"×{multiplier:g}")
    baseline = curves.drop_duplicates("bin_low")
    ax.plot(
        (baseline.bin_low.to_numpy() + baseline.bin_high.to_numpy()) / 2,
        baseline.fraction_baseline_unchanged.to_numpy(),
        "k--",
        label="no clamp",
    )
    edges = np.unique(np.concatenate([curves.bin_low.to_numpy(), curves.bin_high.to_numpy()]))
    ax.set_xticks(edges)
    ax.set_xlabel("conservation of the aligned column (bin)")
    ax.set_ylabel("fraction of residues unchanged")
    ax.set_ylim(0, 1.02)
    ax.legend(title="clamp × max activation", fontsize="small")
    if title:
        ax.set_title(title)
    return figure
