"""Which SAEs a sweep of the config covers, and which of its axes vary (no matplotlib here:
the Snakefile imports this at parse time)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

# Table columns of an SAE's coordinates, in the order of a point (layer, k, width).
AXES = ("layer", "k", "width")
Point = tuple[int, int, int]


def sweep_points(sweep: Mapping[str, Sequence[int]]) -> list[Point]:
    """The (layer, k, width) of every SAE of one sweep, sorted, each once."""
    points = itertools.product(sweep["layers"], sweep["ks"], sweep["widths"])
    return sorted({(int(a), int(b), int(c)) for a, b, c in points})


def varying_axes(points: Sequence[Point]) -> list[str]:
    """Columns (``layer``, ``k``, ``width``) that take more than one value among the points."""
    return [axis for i, axis in enumerate(AXES) if len({p[i] for p in points}) > 1]


def figure_sweeps(
    sweeps: Sequence[Mapping[str, Sequence[int]]],
) -> tuple[dict[int, list[list[int]]], list[str]]:
    """``({sweep number (1-based): its points as [layer, k, width] lists}, skip messages)``:
    a sweep with a single SAE has nothing to draw along, so it gets a message, not a figure."""
    kept: dict[int, list[list[int]]] = {}
    skipped = []
    for number, sweep in enumerate(sweeps, start=1):
        points = sweep_points(sweep)
        if varying_axes(points):
            kept[number] = [list(p) for p in points]
        else:
            layer, k, width = points[0]
            skipped.append(
                f"figures: sweep {number} (layer {layer}, k {k}, width {width}) has a single "
                "SAE; no sweep figure drawn for it"
            )
    return kept, skipped
