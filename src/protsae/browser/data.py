"""What the feature browser shows, gathered from one SAE's latent tables."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from protsae.figures.max_activation import Histograms, Membership, activation_histograms

CLASS_STATS = (
    "n_sequences",
    "n_top",
    "median_top_region_length",
    "mean_coverage",
    "density",
    "periodic_fraction",
)
FAMILY_STATS = (
    "f1",
    "precision",
    "recall",
    "threshold",
    "train_f1",
    "n_train_positive",
    "n_test_positive",
)


def clean(value):
    """A JSON-safe scalar: NaN/None -> None, numpy numbers -> Python numbers (4 significant
    digits for floats, enough to read and small to ship)."""
    if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
        return None
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(f"{float(value):.4g}")
    return value if isinstance(value, int | str) else str(value)


def class_stats(classes: pd.Series) -> dict:
    """The statistics that decided a latent's class, density and coverage among them, and the
    two most common distances between region starts (what makes a latent periodic)."""
    stats = {key: clean(classes[key]) for key in CLASS_STATS if key in classes}
    if "top_distances" in classes:
        distances = classes["top_distances"]
        stats["top_distances"] = ", ".join(str(int(d)) for d in distances) if len(distances) else ""
    return stats


@dataclass
class SaeTables:
    """One SAE's latent tables, read once for all its latent pages."""

    name: str  # e.g. L24-k64-w4096: folder and label in the browser
    layer: int
    k: int
    width: int
    classes: pd.DataFrame
    families: pd.DataFrame
    top: pd.DataFrame  # top_examples, ranked across both splits
    hist: Histograms
    examples: pd.DataFrame  # every top_examples row (per-residue values), for quantile examples
    probes: dict[int, list[dict]] = field(default_factory=dict)
    steering: dict[int, list[dict]] = field(default_factory=dict)
    extras: dict[str, dict] = field(default_factory=dict)  # per-latent sections, by name


def read_sae_tables(
    latents_dir: str | os.PathLike[str],
    name: str,
    coords: tuple[int, int, int],
    membership: Membership,
    top_sequences: int,
    bins: int = 20,
) -> SaeTables:
    """Read ``classes``, ``families``, ``top_examples`` and the histograms of ``seq_stats``."""
    folder = Path(latents_dir)
    classes = pq.read_table(folder / "classes.parquet").to_pandas().set_index("latent")
    families = pq.read_table(folder / "families.parquet").to_pandas()
    width = len(classes)
    if sorted(classes.index) != list(range(width)):
        raise ValueError(f"{folder / 'classes.parquet'}: latents are not 0..{width - 1}")
    family_of = [None] * width
    for latent, family in zip(families.latent, families.family, strict=True):
        family_of[int(latent)] = family if isinstance(family, str) else None
    hist = activation_histograms(folder / "seq_stats.parquet", family_of, membership, bins)
    top = pq.read_table(
        folder / "top_examples.parquet",
        columns=["latent", "split", "id", "length", "max_act", "positions", "values"],
    ).to_pandas()
    every = top.sort_values(["latent", "max_act", "id"], ascending=[True, False, True])
    every = every.drop_duplicates(["latent", "id"])
    top = every.groupby("latent", sort=False).head(top_sequences)
    return SaeTables(
        name,
        *coords,
        classes,
        families.set_index("latent"),
        top.reset_index(drop=True),
        hist,
        every.set_index(["latent", "id"]),
    )


def shown_sequences(
    top_examples_path: str | os.PathLike[str], top_sequences: int
) -> dict[int, list[str]]:
    """latent -> the ids of its top sequences as the browser shows them (strongest first)."""
    top = pq.read_table(top_examples_path, columns=["latent", "id", "max_act"]).to_pandas()
    top = top.sort_values(["latent", "max_act", "id"], ascending=[True, False, True])
    top = top.drop_duplicates(["latent", "id"]).groupby("latent", sort=False).head(top_sequences)
    return {int(latent): list(rows.id) for latent, rows in top.groupby("latent", sort=False)}


def sequences_for(swissprot_path: str | os.PathLike[str], ids: set[str]) -> dict[str, str]:
    """accession -> sequence for the given ids, reading only the rows that match."""
    table = pq.read_table(swissprot_path, columns=["accession", "sequence"])
    table = table.filter(pc.is_in(table["accession"], value_set=pa.array(sorted(ids), pa.string())))
    return dict(zip(table["accession"].to_pylist(), table["sequence"].to_pylist(), strict=True))


def rows_by_latent(frame: pd.DataFrame | None) -> dict[int, list[dict]]:
    """Group a table with a ``latent`` column into JSON-safe row dicts per latent."""
    if frame is None or frame.empty:
        return {}
    if "latent" not in frame.columns:
        raise ValueError("table to show per latent has no 'latent' column")
    out: dict[int, list[dict]] = {}
    for row in frame.to_dict("records"):
        latent = int(row.pop("latent"))
        out.setdefault(latent, []).append({str(k): clean(v) for k, v in row.items()})
    return out


def latent_payload(
    tables: SaeTables,
    latent: int,
    sequences: Mapping[str, str],
    aligned: list[str],
    top: pd.DataFrame,
    names: Mapping[str, str],
    sequence_info: Mapping[str, dict] | None = None,
) -> dict:
    """Everything one latent page shows, JSON-ready; ``sequence_info[id]`` adds to the row of
    each top sequence (its annotation tracks, its structure)."""
    sequence_info = sequence_info or {}
    classes = tables.classes.loc[latent]
    fam = tables.families.loc[latent] if latent in tables.families.index else None
    family = fam.family if fam is not None and isinstance(fam.family, str) else None
    hist = tables.hist
    return {
        "sae": tables.name,
        "layer": tables.layer,
        "k": tables.k,
        "width": tables.width,
        "latent": latent,
        "pattern_class": str(classes.pattern_class),
        "class_stats": class_stats(classes),
        "family": family,
        "family_name": names.get(family) if family else None,
        "family_specific": bool(fam.family_specific) if fam is not None else False,
        "family_stats": {key: clean(fam[key]) for key in FAMILY_STATS} if fam is not None else {},
        "max_act": clean(hist.max_act[latent]) if hist.n_sequences[latent] else None,
        "n_active_sequences": int(hist.n_sequences[latent]),
        "histogram": {
            "edges": [clean(e) for e in hist.edges],
            "in_family": hist.in_family[latent].tolist(),
            "other": hist.other[latent].tolist(),
        },
        "sequences": [
            {
                "id": row.id,
                "split": row.split,
                "max_act": clean(row.max_act),
                "aligned": row_aligned,
                "positions": [int(p) for p in row.positions],
                "values": [clean(v) for v in row.values],
                **sequence_info.get(row.id, {}),
            }
            for row, row_aligned in zip(top.itertuples(), aligned, strict=True)
        ],
        "probes": tables.probes.get(latent, []),
        "steering": tables.steering.get(latent, []),
        **{name: values.get(latent) for name, values in tables.extras.items()},
    }


def index_row(payload: dict, sae_index: int) -> list:
    """The index table's row of one latent (column order: ``INDEX_COLUMNS``)."""
    return [
        sae_index,
        payload["latent"],
        payload.get("description"),
        payload["pattern_class"],
        payload["family"],
        payload["family_name"],
        payload["family_stats"].get("f1"),
        payload["family_specific"],
        payload["max_act"],
        payload["n_active_sequences"],
    ]


INDEX_COLUMNS = (
    "sae",
    "latent",
    "description",
    "pattern_class",
    "family",
    "family_name",
    "f1",
    "family_specific",
    "max_act",
    "n_active_sequences",
)
