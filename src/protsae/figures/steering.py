"""Steering: fraction of residues unchanged vs conservation of their aligned column, one line
per multiplier (the paper's Figure 6)."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

STEERING_COLUMNS = ("multiplier", "conservation_bin", "n_residues", "n_unchanged")


def steering_curves(summary: pd.DataFrame) -> pd.DataFrame:
    """Pooled over latents: per (multiplier, conservation bin), unchanged / residues."""
    missing = [c for c in STEERING_COLUMNS if c not in summary.columns]
    if missing:
        raise ValueError(f"steering summary lacks column(s) {', '.join(missing)}")
    if summary.empty:
        raise ValueError("steering summary has no rows")
    pooled = summary.groupby(["multiplier", "conservation_bin"], as_index=False)[
        ["n_residues", "n_unchanged"]
    ].sum()
    pooled["fraction_unchanged"] = pooled.n_unchanged / pooled.n_residues
    return pooled.sort_values(["multiplier", "conservation_bin"]).reset_index(drop=True)


def steering_figure(summary: pd.DataFrame, title: str = "") -> Figure:
    """x = conservation bin (its lower edge), y = fraction of residues unchanged after
    steering, pooled over latents; one line per multiplier (label ``×{multiplier}``)."""
    curves = steering_curves(summary)
    figure = Figure(figsize=(6, 4.2), layout="constrained")
    ax = figure.subplots()
    for multiplier, line in curves.groupby("multiplier", sort=True):
        ax.plot(
            line.conservation_bin.to_numpy(),
            line.fraction_unchanged.to_numpy(),
            "o-",
            label=f"×{multiplier:g}",
        )
    ax.set_xlabel("conservation of the aligned column")
    ax.set_ylabel("fraction of residues unchanged")
    ax.set_ylim(0, 1.02)
    ax.legend(title="clamp × max activation", fontsize="small")
    if title:
        ax.set_title(title)
    return figure
