"""Figures of the paper, each drawn from the pipeline's tables.

Every ``*_figure`` function takes tables (DataFrames) and returns a matplotlib
:class:`~matplotlib.figure.Figure` whose artists carry the table's numbers, so tests read
the data back through matplotlib; :func:`save_figure` writes it as PNG and SVG atomically.
The Agg backend is selected on import: no display is ever needed.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from protsae.figures.histograms import (  # noqa: E402
    activation_histograms,
    example_latents,
    max_activation_figure,
)
from protsae.figures.probes import probe_coefficients_figure, probe_metrics_figure  # noqa: E402
from protsae.figures.quality import sae_quality_figure  # noqa: E402
from protsae.figures.save import save_figure  # noqa: E402
from protsae.figures.steering import steering_figure  # noqa: E402
from protsae.figures.sweeps import sweep_figure, sweep_points, varying_axes  # noqa: E402

__all__ = [
    "activation_histograms",
    "example_latents",
    "max_activation_figure",
    "probe_coefficients_figure",
    "probe_metrics_figure",
    "sae_quality_figure",
    "save_figure",
    "steering_figure",
    "sweep_figure",
    "sweep_points",
    "varying_axes",
]
