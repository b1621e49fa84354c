"""Writing a figure as PNG and SVG, each file complete or absent."""

from __future__ import annotations

import os

import matplotlib
from matplotlib.figure import Figure

from protsae.io import atomic_path


def save_figure(
    figure: Figure,
    png: str | os.PathLike[str],
    svg: str | os.PathLike[str],
    dpi: int = 150,
) -> None:
    """Write ``figure`` to ``png`` and ``svg`` atomically.

    The SVG carries no date and fixed element ids, so the same tables give the same bytes.
    """
    with atomic_path(png) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    with atomic_path(svg) as tmp, matplotlib.rc_context({"svg.hashsalt": "protsae"}):
        figure.savefig(tmp, format="svg", bbox_inches="tight", metadata={"Date": None})


def sae_label(layer: int, k: int, width: int) -> str:
    """The short name of one SAE of the grid, as figures and the browser print it."""
    return f"L{layer} k{k} w{width}"
