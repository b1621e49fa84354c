"""Aggregate tables over the SAE grid: one row per SAE, read by figures and people."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from protsae.io import atomic_path
from protsae.latents.classes import PATTERN_CLASSES

#: Where an SAE sits in the grid: ``model``, ``layer``, ``k``, ``width`` (the rules pass them).
Coordinates = Mapping[str, str | int]


def _rows(
    paths: Iterable[str | os.PathLike[str]], coordinates: Sequence[Coordinates]
) -> Iterable[tuple[dict, dict]]:
    paths = list(paths)
    if len(paths) != len(coordinates):
        raise ValueError(f"{len(paths)} files but {len(coordinates)} SAE coordinates")
    for path, coords in zip(paths, coordinates, strict=True):
        with open(path) as handle:
            try:
                payload = json.load(handle)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: not valid JSON ({err})") from None
        yield {key: coords[key] for key in ("model", "layer", "k", "width")}, payload


def sae_metrics_table(
    eval_paths: Iterable[str | os.PathLike[str]], coordinates: Sequence[Coordinates]
) -> pd.DataFrame:
    """One row per SAE with its ``eval.json`` metrics, sorted by (layer, k, width).

    ``coordinates[i]`` says which SAE ``eval_paths[i]`` belongs to.
    """
    records = [{**coords, **metrics} for coords, metrics in _rows(eval_paths, coordinates)]
    frame = pd.DataFrame.from_records(records)
    return frame.sort_values(["layer", "k", "width"]).reset_index(drop=True) if records else frame


def latent_summary_table(
    summary_paths: Iterable[str | os.PathLike[str]], coordinates: Sequence[Coordinates]
) -> pd.DataFrame:
    """One row per SAE: latents per pattern class, the numbers of family- and concept-specific
    latents.

    ``coordinates[i]`` says which SAE ``summary_paths[i]`` belongs to.
    """
    records = []
    for coords, summary in _rows(summary_paths, coordinates):
        counts = summary.get("class_counts", {})
        row = {**coords, "n_latents": summary.get("n_latents")}
        row.update({name: int(counts.get(name, 0)) for name in PATTERN_CLASSES})
        row["family_specific"] = summary.get("n_family_specific")
        row["concept_specific"] = summary.get("n_concept_specific")
        records.append(row)
    frame = pd.DataFrame.from_records(records)
    return frame.sort_values(["layer", "k", "width"]).reset_index(drop=True) if records else frame


def write_csv(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a table as CSV atomically."""
    with atomic_path(Path(path)) as tmp:
        frame.to_csv(tmp, index=False)
