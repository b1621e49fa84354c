"""SAE quality across the grid: FVE, L0, dead fraction and loss recovered per SAE."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from protsae.figures.save import sae_label

# eval.json has carried one dead fraction (``dead_fraction``) and, later, one per data set.
DEAD_COLUMNS = ("dead_fraction", "dead_fraction_train", "dead_fraction_eval")
PANELS = (
    ("fve", "fraction of variance explained"),
    ("l0", "L0 (active latents per token)"),
    ("dead", "fraction of dead latents"),
    ("loss_recovered", "loss recovered"),
)


def dead_columns(metrics: pd.DataFrame) -> list[str]:
    """The dead-fraction columns present in ``metrics`` (old or new eval.json names)."""
    found = [c for c in DEAD_COLUMNS if c in metrics.columns]
    if not found:
        raise ValueError(f"SAE metrics table has none of the columns {', '.join(DEAD_COLUMNS)}")
    return found


def sae_quality_figure(metrics: pd.DataFrame) -> Figure:
    """One bar panel per metric, one bar (group) per SAE of ``tables/sae_metrics.csv``.

    The dead-fraction panel draws one bar container per dead-fraction column present, with
    that column's name as label; the other panels one container labelled with the metric. A
    metric with a ``<metric>_std`` column (loss recovered: the spread over mask draws) gets
    error bars of ± one standard deviation, titled so. A missing value (NaN) has no bar and an
    "n/a" label.
    """
    required = {"layer", "k", "width", "fve", "l0", "loss_recovered"}
    missing = sorted(required - set(metrics.columns))
    if missing:
        raise ValueError(f"SAE metrics table lacks column(s) {', '.join(missing)}")
    if metrics.empty:
        raise ValueError("SAE metrics table has no rows")
    rows = metrics.sort_values(["layer", "k", "width"]).reset_index(drop=True)
    labels = [sae_label(r.layer, r.k, r.width) for r in rows.itertuples()]
    x = np.arange(len(rows))
    figure = Figure(figsize=(max(8, 1.1 * len(rows) + 4), 6.5), layout="constrained")
    for ax, (key, title) in zip(figure.subplots(2, 2).ravel(), PANELS, strict=True):
        columns = dead_columns(rows) if key == "dead" else [key]
        step = 0.8 / len(columns)
        for i, column in enumerate(columns):
            values = rows[column].to_numpy(dtype=float)
            where = x - 0.4 + step * (i + 0.5)
            spread = f"{column}_std"  # eval.json: the spread over mask draws
            yerr = rows[spread].to_numpy(dtype=float) if spread in rows else None
            ax.bar(where, values, width=step, label=column, yerr=yerr, capsize=3)
            for at in where[np.isnan(values)]:  # e.g. loss recovered without a clean/zero gap
                ax.text(at, 0, "n/a", ha="center", va="bottom", fontsize="small")
        if key == "l0":
            ax.plot(x, rows["k"].to_numpy(), "k_", markersize=30, markeredgewidth=2, label="k")
        if len(columns) > 1 or key == "l0":
            ax.legend(fontsize="small")
        spread = f"{key}_std" in rows
        if spread:
            draws = (
                rows["mask_draws"].dropna() if "mask_draws" in rows else pd.Series([], dtype=float)
            )
            n = f"{int(draws.min())}" if len(draws) and draws.min() == draws.max() else "several"
            title = f"{title} (mean ± sd over {n} mask draws)"
        ax.set_title(title)
        ax.set_xticks(x, labels, rotation=45, ha="right", fontsize="small")
    return figure
