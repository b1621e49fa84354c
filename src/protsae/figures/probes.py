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


TASK_TITLES = {
    "secondary_structure": "Secondary structure (3 classes)",
    "localization": "Subcellular localization",
    "thermostability": "Thermostability",
    "expression": "CHO expression",
}
METRIC_LABELS = {"accuracy": "test accuracy", "spearman": "test Spearman ρ"}
CONTROL_STYLES = {"majority": ":", "composition": "-."}


def _title(task: str) -> str:
    return TASK_TITLES.get(task, task.replace("_", " "))


def probe_metrics_figure(probes: pd.DataFrame) -> Figure:
    """One panel per task (title: the task and its n_test), one line per probed feature set
    (label = ``features``) over integer layer ticks, with its 95% bootstrap interval as error
    bars when the table has ``ci_low``/``ci_high``; each control (``majority``,
    ``composition``) a grey horizontal line. The ESM and SAE points are nudged apart on x so
    neither hides the other; accuracy axes run from 0 to 1 (1.02, so a point at 1 is whole), Spearman from min(0, lowest)."""
    _require(probes, PROBE_COLUMNS, "probe table")
    tasks = sorted(set(probes.task))
    figure = Figure(figsize=(3.8 * min(len(tasks), 4), 3.6 * -(-len(tasks) // 4)))
    figure.set_layout_engine("constrained")
    has_ci = {"ci_low", "ci_high"} <= set(probes.columns)
    for ax, task in zip(_panels(figure, len(tasks)), tasks, strict=True):
        rows = probes[probes.task == task]
        layers = sorted({int(v) for v in rows.layer})
        probed = [f for f in _feature_order(rows.features) if f not in CONTROL_STYLES]
        offsets = np.linspace(-0.08, 0.08, len(probed)) if len(probed) > 1 else [0.0]
        lowest = 0.0
        for features, offset in zip(probed, offsets, strict=True):
            line = rows[rows.features == features].sort_values("layer")
            x = line.layer.to_numpy(dtype=float) + offset
            y = line.value.to_numpy(dtype=float)
            yerr = None
            if has_ci:
                low, high = line.ci_low.to_numpy(dtype=float), line.ci_high.to_numpy(dtype=float)
                yerr = np.vstack([y - low, high - y])
                lowest = min(lowest, float(np.nanmin(low)))
            style = "o-" if features == "esm" else "s--"
            ax.errorbar(x, y, yerr=yerr, fmt=style, capsize=3, label=features)
        for control, style in CONTROL_STYLES.items():
            value = rows[rows.features == control].value
            if len(value):
                ax.axhline(float(value.iloc[0]), color="0.45", linestyle=style, label=control)
                lowest = min(lowest, float(value.iloc[0]))
        metric = sorted(set(rows.metric))
        n_test = sorted({int(v) for v in rows.n_test}) if "n_test" in rows else []
        suffix = f" (n_test = {', '.join(map(str, n_test))})" if n_test else ""
        ax.set_title(_title(task) + suffix, fontsize="medium")
        ax.set_xticks(layers)
        ax.set_xlim(layers[0] - 0.5, layers[-1] + 0.5)
        ax.set_xlabel("layer")
        ax.set_ylabel(" / ".join(METRIC_LABELS.get(m, m) for m in metric))
        ax.set_ylim(
            0.0 if metric == ["accuracy"] else min(0.0, lowest - 0.05), 1.02
        )  # 1.02: a point at 1 stays whole
        ax.legend(fontsize="small")
    return figure


def probe_coefficients_figure(
    coefficients: pd.DataFrame, selected: pd.DataFrame | None = None, bins: int = 40
) -> Figure:
    """One panel per (task, layer, output class): one step histogram per feature set (label =
    ``features``, with the strength its probe was selected at from ``selected``, the rows of
    ``tables/probes.csv``) of that class's coefficients, as densities over shared edges. Layers
    and classes are never pooled: each panel compares two probes on one question."""
    _require(coefficients, ("task", "features", "coefficient"), "coefficient table")
    frame = coefficients.copy()
    if "layer" not in frame:
        frame["layer"] = 0
    if "output" not in frame:
        frame["output"] = ""
    keys = sorted(
        {
            (str(task), int(layer), str(output))
            for task, layer, output in zip(frame.task, frame.layer, frame.output, strict=True)
        }
    )
    strengths = {}
    if selected is not None and "selected" in selected:
        for row in selected.itertuples():
            strengths[(str(row.task), int(row.layer), str(row.features))] = row.selected
    cols = min(len(keys), 5)
    figure = Figure(figsize=(3.2 * cols, 2.8 * -(-len(keys) // cols)))
    figure.set_layout_engine("constrained")
    for ax, (task, layer, output) in zip(_panels(figure, len(keys)), keys, strict=True):
        rows = frame[(frame.task == task) & (frame.layer == layer) & (frame.output == output)]
        values = rows.coefficient.to_numpy(dtype=float)
        low, high = float(values.min()), float(values.max())
        edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
        for features in _feature_order(rows.features):
            mine = rows[rows.features == features].coefficient.to_numpy(dtype=float)
            density, _ = np.histogram(mine, bins=edges, density=True)
            strength = strengths.get((task, layer, features))
            label = (
                features if strength is None or pd.isna(strength) else f"{features} ({strength:g})"
            )
            ax.stairs(density, edges, label=label)
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_title(f"{_title(task)}, L{layer}: {output}", fontsize="small")
        ax.set_xlabel("coefficient (per train sd)")
        ax.set_ylabel("density")
        ax.legend(fontsize="x-small")
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
