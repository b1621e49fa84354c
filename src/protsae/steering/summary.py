"""Fraction of residues left unchanged by steering, per multiplier and conservation bin.

Per latent: over all its steered positions with conservation in ``[low, high)`` (the last bin
closed), the fraction whose steered residue equals the original one; the rows with ``bin_low``
null cover every position. A latent is **kept** when its fraction unchanged over all positions at
``filter_multiplier`` exceeds ``min_fraction_unchanged`` (the paper keeps latents above 20% at
0.5: a clamp that rewrites most of the sequence says nothing about which positions resist).
The ``average`` rows pool the positions of the kept latents that have positions in the bin
(method.md, turn 3: weighted by positions, so a latent with 5 positions in a bin weighs 5, not
as much as one with 500), for the clamped and for the unclamped (baseline) forward;
``n_positions`` and ``n_latents`` count what was pooled, ``q25``/``q75`` are the quartiles of
the per-latent fractions (the spread between latents), and ``n_latents_kept`` (on every row)
counts the kept latents. Bins pooling fewer than :data:`MIN_BIN_POSITIONS` positions are
marked in the figure, not drawn as points.
A skipped latent has one row with its reason; an SAE with no latent gives an empty table.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from protsae.steering.homologs import META_FAMILY, META_LATENT, META_SKIP

SUMMARY_SCHEMA = pa.schema(
    [
        pa.field("scope", pa.string()),
        pa.field("latent", pa.int32()),
        pa.field("family", pa.string()),
        pa.field("multiplier", pa.float64()),
        pa.field("bin_low", pa.float64()),
        pa.field("bin_high", pa.float64()),
        pa.field("n_positions", pa.int64()),
        pa.field("fraction_unchanged", pa.float64()),
        pa.field("fraction_baseline_unchanged", pa.float64()),
        pa.field("kept", pa.bool_()),
        pa.field("n_latents", pa.int32()),
        pa.field("n_latents_kept", pa.int32()),
        pa.field("skip_reason", pa.string()),
        pa.field("q25", pa.float64()),
        pa.field("q75", pa.float64()),
    ]
)

#: A bin pooling fewer positions than this is marked, not drawn as a point (method.md, turn 3).
MIN_BIN_POSITIONS = 20


def check_bins(edges: Sequence[float]) -> np.ndarray:
    """Conservation bin edges: increasing, from 0 to 1, two or more."""
    arr = np.asarray(edges, np.float64)
    if len(arr) < 2 or arr[0] != 0 or arr[-1] != 1 or (np.diff(arr) <= 0).any():
        raise ValueError(f"conservation bins must increase from 0 to 1, got {list(edges)}")
    return arr


def bin_index(conservation: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The bin of each value: ``[e_i, e_{i+1})``, the last bin including 1."""
    return np.clip(np.searchsorted(edges, conservation, side="right") - 1, 0, len(edges) - 2)


def latent_rows(table: pa.Table, edges: np.ndarray) -> list[dict]:
    """Rows of one latent's steering table: per multiplier, all positions then each bin."""
    cols = table.select(["multiplier", "conservation", "original", "baseline", "steered"])
    data = {name: np.asarray(cols[name].to_pylist()) for name in cols.column_names}
    same = data["steered"] == data["original"]
    baseline_same = data["baseline"] == data["original"]
    bins = bin_index(data["conservation"].astype(np.float64), edges)
    rows = []
    for multiplier in sorted(set(data["multiplier"].tolist())):
        at = data["multiplier"] == multiplier
        groups = [(None, None, at)]
        groups += [(edges[b], edges[b + 1], at & (bins == b)) for b in range(len(edges) - 1)]
        for low, high, where in groups:
            n = int(where.sum())
            rows.append(
                {"multiplier": float(multiplier), "bin_low": low, "bin_high": high}
                | {"n_positions": n, "fraction_unchanged": float(same[where].mean()) if n else None}
                | {"fraction_baseline_unchanged": float(baseline_same[where].mean()) if n else None}
            )
    return rows


def _group_order(item: tuple) -> tuple:
    (multiplier, low, _), _ = item
    return (multiplier, -1.0 if low is None else low)


def _average_rows(kept: list[list[dict]], n_kept: int) -> list[dict]:
    """Per (multiplier, bin): the fractions pooled over the kept latents' positions, and the
    quartiles of the per-latent fractions."""
    groups: dict[tuple, list[dict]] = {}
    for rows in kept:
        for row in rows:
            if row["fraction_unchanged"] is not None:
                key = (row["multiplier"], row["bin_low"], row["bin_high"])
                groups.setdefault(key, []).append(row)
    out = []
    for (multiplier, low, high), rows in sorted(groups.items(), key=_group_order):
        n = np.array([r["n_positions"] for r in rows], np.float64)
        steered = np.array([r["fraction_unchanged"] for r in rows])
        baseline = np.array([r["fraction_baseline_unchanged"] for r in rows])
        q25, q75 = np.percentile(steered, [25, 75])
        out.append(
            {"scope": "average", "multiplier": multiplier, "bin_low": low, "bin_high": high}
            | {"n_positions": int(n.sum()), "n_latents": len(rows)}
            | {"fraction_unchanged": float((steered * n).sum() / n.sum())}
            | {"fraction_baseline_unchanged": float((baseline * n).sum() / n.sum())}
            | {"q25": float(q25), "q75": float(q75), "n_latents_kept": n_kept}
        )
    return out


def summarize(
    latent_paths: Sequence[str | os.PathLike[str]],
    bins: Sequence[float],
    filter_multiplier: float,
    min_fraction_unchanged: float,
) -> pa.Table:
    """The summary table of one SAE from its per-latent steering tables."""
    edges = check_bins(bins)
    per_latent: list[tuple[dict, list[dict]]] = []
    for path in latent_paths:
        table = pq.read_table(path)
        meta = table.schema.metadata or {}
        if META_LATENT not in meta:
            raise ValueError(f"{path}: not a per-latent steering table (no latent metadata)")
        head = {"scope": "latent", "latent": int(meta[META_LATENT]), "n_latents": 1}
        head["family"] = meta.get(META_FAMILY, b"").decode() or None
        if META_SKIP in meta or table.num_rows == 0:
            reason = meta.get(META_SKIP, b"no steered positions").decode()
            per_latent.append(({**head, "skip_reason": reason, "kept": False}, []))
            continue
        rows = latent_rows(table, edges)
        overall = [r for r in rows if r["bin_low"] is None and r["multiplier"] == filter_multiplier]
        if not overall:
            raise ValueError(
                f"{path}: no rows at the filter multiplier {filter_multiplier}; "
                "it must be one of the steering multipliers"
            )
        head["kept"] = bool(overall[0]["fraction_unchanged"] > min_fraction_unchanged)
        per_latent.append((head, rows))
    n_kept = sum(bool(head["kept"]) for head, _ in per_latent)
    out = []
    for head, rows in sorted(per_latent, key=lambda item: item[0]["latent"]):
        out += [{**head, "n_latents_kept": n_kept} | row for row in rows or [{}]]
    out += _average_rows([rows for head, rows in per_latent if head["kept"]], n_kept)
    return pa.Table.from_pylist(out, schema=SUMMARY_SCHEMA)
