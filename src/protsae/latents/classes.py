"""Activation-pattern classes of latents.

The rules (first match wins) are docs/method.md's "Activation-pattern classes", with the
thresholds of config ``latents`` held by :class:`PatternRules`; how the code settles what the
method leaves open (ties, medians, the coverage tolerance) is in method.md's "Decisions the
code makes", under "Pattern classes".

Which sequences: a latent's top test-split sequences by max activation, exactly the test
rows of ``top_examples``. Their statistics (top region length, coverage, activation counts,
histograms of distances between the starts of consecutive regions) are read from the matching
``seq_stats`` rows, so they are computed once, in the stats stage, by the same code for
every consumer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

PATTERN_CLASSES = (
    "dead",
    "not_enough_data",
    "periodic",
    "point",
    "motif_short",
    "motif_medium",
    "motif_long",
    "whole",
    "other",
)

CLASSES_SCHEMA = pa.schema(
    [
        pa.field("latent", pa.int32()),
        pa.field("pattern_class", pa.string()),
        pa.field("n_sequences", pa.int32()),
        pa.field("n_top", pa.int32()),
        pa.field("median_top_region_length", pa.float64()),
        pa.field("mean_coverage", pa.float64()),
        pa.field("density", pa.float64()),
        pa.field("periodic_fraction", pa.float64()),
        pa.field("top_distances", pa.list_(pa.int32())),
    ]
)

_TOL = 1e-9

_STAT_COLUMNS = ["latent", "id", "split", "length", "n_active", "top_region_length"]
_DIST_COLUMNS = ["distances", "distance_counts"]


@dataclass(frozen=True)
class PatternRules:
    """Thresholds of the pattern rules; defaults are the paper's values."""

    min_sequences: int = 5
    periodic_fraction: float = 0.5
    periodic_min_activations: float = 10
    periodic_max_region: float = 10
    motif_bounds: tuple[float, float, float] = (20, 50, 300)
    whole_coverage: float = 0.8

    def __post_init__(self) -> None:
        b = tuple(self.motif_bounds)
        if len(b) != 3 or not 1 < b[0] < b[1] < b[2]:
            raise ValueError(f"motif_bounds must be 3 increasing values > 1, got {list(b)}")
        object.__setattr__(self, "motif_bounds", b)


@dataclass(frozen=True)
class PatternStats:
    """The statistics one latent's class is decided by."""

    n_sequences: int
    n_top: int
    median_top_region_length: float
    mean_coverage: float
    density: float  # active residues per sequence
    periodic_fraction: float
    top_distances: tuple[int, ...]


def pattern_stats(
    n_sequences: int,
    lengths: np.ndarray,
    n_active: np.ndarray,
    top_region_lengths: np.ndarray,
    distances: np.ndarray,
    distance_counts: np.ndarray,
) -> PatternStats:
    """Reduce a latent's top sequences (one entry per sequence; distance histograms pooled)."""
    n_top = len(lengths)
    if n_top == 0:
        nan = float("nan")
        return PatternStats(n_sequences, 0, nan, nan, nan, 0.0, ())
    dist, inverse = np.unique(np.asarray(distances, np.int64), return_inverse=True)
    pooled = np.bincount(inverse, weights=distance_counts, minlength=len(dist)).astype(np.int64)
    order = np.lexsort((dist, -pooled))[:2]  # most common first, ties -> smaller distance
    total = int(pooled.sum())
    return PatternStats(
        n_sequences=int(n_sequences),
        n_top=n_top,
        median_top_region_length=float(np.median(top_region_lengths)),
        mean_coverage=float(np.mean(np.asarray(n_active, np.float64) / lengths)),
        density=float(np.mean(n_active)),
        periodic_fraction=float(pooled[order].sum() / total) if total else 0.0,
        top_distances=tuple(int(d) for d in dist[order]),
    )


def classify(stats: PatternStats, rules: PatternRules = PatternRules()) -> str:
    """The pattern class of one latent: the first rule of method.md that holds."""
    if stats.n_sequences == 0:
        return "dead"
    if stats.n_sequences < rules.min_sequences:
        return "not_enough_data"
    median = stats.median_top_region_length
    if (
        stats.periodic_fraction > rules.periodic_fraction + _TOL
        and stats.density > rules.periodic_min_activations
        and median < rules.periodic_max_region
    ):
        return "periodic"
    if median == 1:
        return "point"
    b0, b1, b2 = rules.motif_bounds
    if stats.mean_coverage < rules.whole_coverage - _TOL:
        if 1 < median < b0:
            return "motif_short"
        if b0 <= median < b1:
            return "motif_medium"
        if b1 <= median < b2:
            return "motif_long"
    if stats.mean_coverage > rules.whole_coverage + _TOL:
        return "whole"
    return "other"


def classes_table(
    width: int,
    n_sequences: np.ndarray,
    top_stats: pa.Table,
    rules: PatternRules = PatternRules(),
) -> pa.Table:
    """Classify every latent ``0..width-1``.

    ``n_sequences[latent]`` counts the test sequences activating each latent; ``top_stats``
    holds the ``seq_stats`` rows of each latent's top test sequences.
    """
    top_stats = top_stats.sort_by("latent")
    latents = top_stats["latent"].to_numpy()
    bounds = np.searchsorted(latents, np.arange(width + 1))
    length = top_stats["length"].to_numpy()
    n_active = top_stats["n_active"].to_numpy()
    region = top_stats["top_region_length"].to_numpy()
    dist_col = top_stats["distances"].combine_chunks()
    count_col = top_stats["distance_counts"].combine_chunks()
    dist_off = dist_col.offsets.to_numpy()
    dist = dist_col.values.to_numpy()
    counts = count_col.values.to_numpy()
    rows: dict[str, list] = {name: [] for name in CLASSES_SCHEMA.names}
    for lat in range(width):
        a, b = bounds[lat], bounds[lat + 1]
        da, db = dist_off[a], dist_off[b]
        stats = pattern_stats(
            int(n_sequences[lat]),
            length[a:b],
            n_active[a:b],
            region[a:b],
            dist[da:db],
            counts[da:db],
        )
        rows["latent"].append(lat)
        rows["pattern_class"].append(classify(stats, rules))
        rows["n_sequences"].append(stats.n_sequences)
        rows["n_top"].append(stats.n_top)
        rows["median_top_region_length"].append(stats.median_top_region_length)
        rows["mean_coverage"].append(stats.mean_coverage)
        rows["density"].append(stats.density)
        rows["periodic_fraction"].append(stats.periodic_fraction)
        rows["top_distances"].append(list(stats.top_distances))
    return pa.table(rows, schema=CLASSES_SCHEMA)


def classes_from_files(
    seq_stats_path: str | os.PathLike[str],
    top_examples_path: str | os.PathLike[str],
    width: int,
    rules: PatternRules = PatternRules(),
) -> pa.Table:
    """Classify latents from the stats stage's outputs, streaming ``seq_stats`` row group by row group."""
    top = pq.read_table(top_examples_path, columns=["latent", "split", "id"])
    top = top.filter(pc.equal(top["split"], "test"))
    top_ids = pc.unique(top["id"])
    n_ids = max(len(top_ids), 1)

    def keys(latent: pa.Array, ids: pa.Array) -> np.ndarray:
        code = pc.index_in(ids, value_set=top_ids).fill_null(-1).to_numpy(zero_copy_only=False)
        key = latent.to_numpy().astype(np.int64) * n_ids + code
        return np.where(code < 0, -1, key)

    wanted = np.sort(keys(top["latent"].combine_chunks(), top["id"].combine_chunks()))
    n_sequences = np.zeros(width, np.int64)
    kept: list[pa.Table] = []
    pf = pq.ParquetFile(seq_stats_path)
    for i in range(pf.num_row_groups):
        rg = pf.read_row_group(i, columns=_STAT_COLUMNS + _DIST_COLUMNS)
        rg = rg.filter(pc.equal(rg["split"], "test"))
        latent = rg["latent"].combine_chunks()
        lat_np = latent.to_numpy()
        if len(lat_np) and (lat_np.min() < 0 or lat_np.max() >= width):
            raise ValueError(
                f"{seq_stats_path}: row group {i}: latent out of range [0, {width}): "
                f"{lat_np.min()}..{lat_np.max()}"
            )
        n_sequences += np.bincount(lat_np, minlength=width)
        k = keys(latent, rg["id"].combine_chunks())
        hit = k >= 0
        hit[hit] = np.isin(k[hit], wanted)
        if hit.any():
            kept.append(rg.filter(pa.array(hit)))
    schema = pq.read_schema(seq_stats_path)
    top_stats = (
        pa.concat_tables(kept)
        if kept
        else schema.empty_table().select(_STAT_COLUMNS + _DIST_COLUMNS)
    )
    if len(top_stats) != len(wanted):
        raise ValueError(
            f"{seq_stats_path} and {top_examples_path} disagree: {len(wanted)} top test examples, "
            f"{len(top_stats)} matching seq_stats rows"
        )
    return classes_table(width, n_sequences, top_stats, rules)
