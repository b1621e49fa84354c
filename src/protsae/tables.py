"""Aggregate tables over the SAE grid: one row per SAE, read by figures and people."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from protsae.io import atomic_path
from protsae.latents.classes import PATTERN_CLASSES

SAE_PATH = re.compile(
    r"(?P<model>[^/\\]+)[/\\]L(?P<layer>\d+)[/\\]k(?P<k>\d+)-w(?P<width>\d+)[/\\][^/\\]+$"
)


def sae_coordinates(path: str | os.PathLike[str]) -> dict[str, str | int]:
    """``model``, ``layer``, ``k``, ``width`` from a path ``…/{model}/L{layer}/k{k}-w{width}/file``."""
    match = SAE_PATH.search(str(path))
    if not match:
        raise ValueError(f"{path}: not under <model>/L<layer>/k<k>-w<width>/")
    return {
        "model": match["model"],
        "layer": int(match["layer"]),
        "k": int(match["k"]),
        "width": int(match["width"]),
    }


def _rows(paths: Iterable[str | os.PathLike[str]]) -> Iterable[tuple[dict, dict]]:
    for path in paths:
        with open(path) as handle:
            try:
                payload = json.load(handle)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: not valid JSON ({err})") from None
        yield sae_coordinates(path), payload


def sae_metrics_table(eval_paths: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """One row per SAE with its ``eval.json`` metrics, sorted by (layer, k, width)."""
    records = [{**coords, **metrics} for coords, metrics in _rows(eval_paths)]
    frame = pd.DataFrame.from_records(records)
    return frame.sort_values(["layer", "k", "width"]).reset_index(drop=True) if records else frame


def latent_summary_table(summary_paths: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """One row per SAE: latents per pattern class and the number of family-specific latents."""
    records = []
    for coords, summary in _rows(summary_paths):
        counts = summary.get("class_counts", {})
        row = {**coords, "n_latents": summary.get("n_latents")}
        row.update({name: int(counts.get(name, 0)) for name in PATTERN_CLASSES})
        row["family_specific"] = summary.get("n_family_specific")
        records.append(row)
    frame = pd.DataFrame.from_records(records)
    return frame.sort_values(["layer", "k", "width"]).reset_index(drop=True) if records else frame


def write_csv(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a table as CSV atomically."""
    with atomic_path(Path(path)) as tmp:
        frame.to_csv(tmp, index=False)
