"""Linear probes: metric per layer, ESM embedding vs SAE latents (the paper's Figure 4),
and the distribution of probe coefficients, ESM vs SAE (Figure 9)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

PROBE_COLUMNS = ("layer", "task", "features", "metric", "value")


def _require(frame: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {', '.join(missing)}")
    if frame.empty:
        raise ValueError(f"{what} has no rows")


def _feature_order(features) -> list[str]:
    """``esm`` first, then the SAE feature sets in name order."""
    names = sorted(set(features))
    return (["esm"] if "esm" in names else []) + [n for n in names if n != "esm"]


def _panels(figure: Figure, n: int):
    cols = min(n, 4)
    rows = -(-n // cols)
    axes = np.atleast_1d(figure.subplots(rows, cols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_axis_off()
    return axes[:n]


def probe_metrics_figure(probes: pd.DataFrame) -> Figure:
    """One panel per task (title = task), one line per feature set (label = ``features``):
    x = layer, y = the task's metric (accuracy or Spearman ρ), from ``tables/probes.csv``."""
    _require(probes, PROBE_COLUMNS, "probe table")
    tasks = sorted(set(probes.task))
    figure = Figure(figsize=(3.6 * min(len(tasks), 4), 3.4 * -(-len(tasks) // 4)))
    figure.set_layout_engine("constrained")
    for ax, task in zip(_panels(figure, len(tasks)), tasks, strict=True):
        rows = probes[probes.task == task]
        for features in _feature_order(rows.features):
            line = rows[rows.features == features].sort_values("layer")
            style = "o-" if features == "esm" else "s--"
            ax.plot(line.layer.to_numpy(), line.value.to_numpy(), style, label=features)
        ax.set_title(task)
        ax.set_xlabel("layer")
        ax.set_ylabel(" / ".join(sorted(set(rows.metric))))
        ax.legend(fontsize="small")
    return figure


def probe_coefficients_figure(coefficients: pd.DataFrame, bins: int = 40) -> Figure:
    """One panel per task, one step histogram per feature set (label = ``features``) of the
    probe coefficients, as densities over shared edges (log-scaled counts hide nothing)."""
    _require(coefficients, ("task", "features", "coefficient"), "coefficient table")
    tasks = sorted(set(coefficients.task))
    figure = Figure(figsize=(3.6 * min(len(tasks), 4), 3.4 * -(-len(tasks) // 4)))
    figure.set_layout_engine("constrained")
    for ax, task in zip(_panels(figure, len(tasks)), tasks, strict=True):
        rows = coefficients[coefficients.task == task]
        values = rows.coefficient.to_numpy(dtype=float)
        low, high = float(values.min()), float(values.max())
        edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
        for features in _feature_order(rows.features):
            mine = rows[rows.features == features].coefficient.to_numpy(dtype=float)
            density, _ = np.histogram(mine, bins=edges, density=True)
            ax.stairs(density, edges, label=features)
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_title(task)
        ax.set_xlabel("coefficient")
        ax.set_ylabel("density")
        ax.legend(fontsize="small")
    return figure


PROBE_PATH = re.compile(r"L(?P<layer>\d+)[/\\](?P<task>[^/\\]+)[/\\][^/\\]+$")


def read_coefficients(paths) -> pd.DataFrame:
    """Concatenate ``probes/{model}/L{layer}/{task}/coefficients.parquet`` files, adding
    ``layer`` and ``task`` from each path when the file lacks them."""
    frames = []
    for path in paths:
        match = PROBE_PATH.search(str(path))
        if not match:
            raise ValueError(f"{path}: not under L<layer>/<task>/")
        frame = pd.read_parquet(path)
        if "task" not in frame.columns:
            frame["task"] = match["task"]
        if "layer" not in frame.columns:
            frame["layer"] = int(match["layer"])
        frames.append(frame)
    if not frames:
        raise ValueError("no probe coefficient files")
    return pd.concat(frames, ignore_index=True)
