"""Which SAEs a sweep of the config covers, and which of its axes vary (no matplotlib here:
the Snakefile imports this at parse time)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

# Sweep keys of the config and the table column each one sets.
AXES = (("layers", "layer"), ("ks", "k"), ("widths", "width"))


def sweep_points(sweep: Mapping[str, Sequence[int]]) -> list[tuple[int, int, int]]:
    """The (layer, k, width) of every SAE of one sweep, in config order, each once."""
    points = itertools.product(sweep["layers"], sweep["ks"], sweep["widths"])
    return list(dict.fromkeys((int(a), int(b), int(c)) for a, b, c in points))


def varying_axes(sweep: Mapping[str, Sequence[int]]) -> list[str]:
    """Table columns (``layer``, ``k``, ``width``) that take more than one value in the sweep."""
    return [column for key, column in AXES if len(set(sweep[key])) > 1]


def figure_sweeps(
    sweeps: Sequence[Mapping[str, Sequence[int]]],
) -> tuple[dict[int, dict[str, list[int]]], list[str]]:
    """``({sweep number (1-based): sweep}, skip messages)``: a sweep with a single SAE has
    nothing to draw along, so it gets a message instead of a figure."""
    kept: dict[int, dict[str, list[int]]] = {}
    skipped = []
    for number, sweep in enumerate(sweeps, start=1):
        if varying_axes(sweep):
            kept[number] = {key: [int(v) for v in sweep[key]] for key, _ in AXES}
        else:
            (layer, k, width), *_ = sweep_points(sweep)
            skipped.append(
                f"figures: sweep {number} (layer {layer}, k {k}, width {width}) has a single "
                "SAE; no sweep figure drawn for it"
            )
    return kept, skipped
