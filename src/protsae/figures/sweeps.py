"""Pattern classes and family-specific latents along one sweep of the SAE grid
(the paper's Figures 3c, 3d, 7a and 7b)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from protsae.figures.grid import AXES, Point, sweep_points, varying_axes
from protsae.latents.classes import PATTERN_CLASSES

__all__ = ["sweep_figure", "sweep_points", "varying_axes"]

MARKERS = ("x", "+", "o", "s", "^", "v", "D", "P", "*")


def _sweep_rows(summary: pd.DataFrame, points: list[Point]) -> pd.DataFrame:
    """The latent-summary rows of the sweep's SAEs, ordered along the sweep."""
    keyed = summary.set_index(["layer", "k", "width"])
    missing = [p for p in points if p not in keyed.index]
    if missing:
        raise ValueError(
            "latent summary table has no row for SAE(s) "
            + ", ".join(f"layer {a} k {b} width {c}" for a, b, c in missing)
        )
    rows = keyed.loc[points].reset_index()
    return rows.sort_values(["layer", "k", "width"]).reset_index(drop=True)


def _tick_labels(rows: pd.DataFrame, axes: list[str]) -> list[str]:
    if len(axes) == 1:
        return [str(v) for v in rows[axes[0]]]
    return [" ".join(f"{a}={r[a]}" for a in axes) for _, r in rows.iterrows()]


def sweep_figure(summary: pd.DataFrame, points: Sequence[Sequence[int]]) -> Figure:
    """Two panels along a sweep: latents per pattern class, and family-specific latents.

    ``points`` are the sweep's SAEs as (layer, k, width) (:func:`sweep_points`);
    ``summary`` is ``tables/latent_summary.csv`` (one row per SAE). Line ``i`` of the
    left panel is class ``PATTERN_CLASSES[i]`` (label = class name), nudged by up to ±0.15 on x
    so equal counts do not hide each other; the right panel has one line labelled
    ``family_specific`` and, when the table has the column, one labelled ``concept_specific``
    (latents with a residue concept of test F1 > 0.5). x positions are 0..n-1 with the swept
    (integer) value as tick; y ticks are integers.
    """
    points = sorted({(int(a), int(b), int(c)) for a, b, c in points})
    axes = varying_axes(points)
    if not axes:
        raise ValueError("sweep has a single SAE: nothing varies, no sweep figure")
    rows = _sweep_rows(summary, points)
    x = list(range(len(rows)))
    labels = _tick_labels(rows, axes)
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    classes_ax, family_ax = figure.subplots(1, 2)
    # Nudged apart and with their own markers, so classes with equal counts (often 0) stay visible.
    offsets = np.linspace(-0.15, 0.15, len(PATTERN_CLASSES))
    for name, offset, marker in zip(PATTERN_CLASSES, offsets, MARKERS, strict=True):
        classes_ax.plot(np.add(x, offset), rows[name].to_numpy(), marker=marker, label=name)
    classes_ax.set_ylabel("latents")
    classes_ax.set_title("activation-pattern classes")
    classes_ax.legend(fontsize="small", ncols=2)
    family_ax.plot(
        x, rows["family_specific"].to_numpy(), marker="o", color="C3", label="family_specific"
    )
    if "concept_specific" in rows and rows["concept_specific"].notna().any():
        family_ax.plot(
            x,
            rows["concept_specific"].to_numpy(dtype=float),
            marker="s",
            color="C4",
            label="concept_specific",
        )
        family_ax.legend(fontsize="small")
    family_ax.set_ylabel("latents")
    family_ax.set_title("family- and concept-specific latents")
    fixed = [f"{c}={rows[c].iloc[0]}" for c in AXES if c not in axes]
    for ax in (classes_ax, family_ax):
        ax.set_xticks(x, labels, rotation=30 if len(axes) > 1 else 0)
        ax.set_xlabel(" / ".join(axes))
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of latents
    figure.suptitle(f"sweep over {' and '.join(axes)} ({', '.join(fixed) or 'all varying'})")
    return figure
