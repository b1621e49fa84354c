"""Figures of the paper, each drawn from the pipeline's tables.

Every ``*_figure`` function takes tables (DataFrames) and returns a matplotlib
:class:`~matplotlib.figure.Figure` (built without pyplot, so no display and no global
state) whose artists carry the table's numbers, so tests read the data back through
matplotlib; :func:`save_figure` writes it as PNG and SVG atomically. Names load lazily:
``protsae.figures.grid`` stays importable without matplotlib's start-up cost.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "activation_histograms": "max_activation",
    "best_concepts_figure": "concepts",
    "example_latents": "max_activation",
    "max_activation_figure": "max_activation",
    "probe_coefficients_figure": "probes",
    "probe_metrics_figure": "probes",
    "sae_quality_figure": "sae_quality",
    "save_figure": "save",
    "steering_figure": "steering",
    "sweep_figure": "sweeps",
    "sweep_points": "grid",
    "varying_axes": "grid",
    "figure_sweeps": "grid",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'protsae.figures' has no attribute {name!r}")
    return getattr(importlib.import_module(f"protsae.figures.{_WHERE[name]}"), name)
