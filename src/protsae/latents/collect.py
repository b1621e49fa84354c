"""Per-(latent, sequence) activation statistics, computed in one streaming pass.

The SAE's output for a sequence is sparse: ``k`` (latent, value) pairs per residue. The
statistics the pattern and family rules need are computed from those triples directly,
for a whole batch of sequences at once (sort by (sequence, latent, position), then
segment reductions), so no dense ``[residues, width]`` matrix ever exists. ``seq_stats``
rows are written out as they are made; only the top-example heaps (bounded by
``width x splits x top_examples``) stay in memory.

Terms follow method.md: a *region* is a maximal run of consecutive residues with
activation > 0, the *top region* is the region holding the sequence's maximum (the first
maximum by position when several residues tie), *coverage* is active residues / length.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from protsae.io import AtomicParquetWriter, write_parquet
from protsae.progress import Progress, get_logger

SPLITS = ("train", "test")

SEQ_STATS_SCHEMA = pa.schema(
    [
        pa.field("latent", pa.int32()),
        pa.field("id", pa.string()),
        pa.field("split", pa.string()),
        pa.field("length", pa.int32()),
        pa.field("max_act", pa.float32()),
        pa.field("argmax", pa.int32()),
        pa.field("n_active", pa.int32()),
        pa.field("top_region_length", pa.int32()),
        pa.field("coverage", pa.float32()),
        # Histogram of distances between the starts of consecutive regions: distinct
        # distances ascending, and how often each occurs in this sequence.
        pa.field("distances", pa.list_(pa.int32())),
        pa.field("distance_counts", pa.list_(pa.int32())),
    ]
)

TOP_EXAMPLES_SCHEMA = pa.schema(
    [
        pa.field("latent", pa.int32()),
        pa.field("split", pa.string()),
        pa.field("rank", pa.int32()),
        pa.field("id", pa.string()),
        pa.field("length", pa.int32()),
        pa.field("max_act", pa.float32()),
        pa.field("positions", pa.list_(pa.int32())),
        pa.field("values", pa.list_(pa.float32())),
    ]
)


class EvalRecord(NamedTuple):
    """One sequence of the evaluation set."""

    id: str
    sequence: str
    split: str


# An encoder turns (id, sequence) records into each sequence's top-k SAE activations:
# yields (id, values [length, k] float, indices [length, k] int) in any order.
Encoder = Callable[[Sequence[tuple[str, str]]], Iterator[tuple[str, np.ndarray, np.ndarray]]]


@dataclass
class SparseStats:
    """Statistics of each (sequence, latent) group of a batch of sparse activations.

    Groups are ordered by (sequence, latent). ``pos``/``value`` are the batch's active
    triples sorted the same way; group ``g`` owns ``pos[starts[g]:starts[g + 1]]``.
    """

    seq: np.ndarray  # int64 index of the group's sequence in the batch
    latent: np.ndarray  # int32
    max_act: np.ndarray  # float32
    argmax: np.ndarray  # int32, first position holding max_act
    n_active: np.ndarray  # int32
    top_region_length: np.ndarray  # int32
    starts: np.ndarray  # int64 [groups + 1]
    pos: np.ndarray  # int32, sorted triples
    value: np.ndarray  # float32, sorted triples
    distance_offsets: np.ndarray  # int32 [groups + 1], into distances/distance_counts
    distances: np.ndarray  # int32
    distance_counts: np.ndarray  # int32

    def __len__(self) -> int:
        return len(self.latent)


def sparse_stats(
    seq: np.ndarray, pos: np.ndarray, latent: np.ndarray, value: np.ndarray
) -> SparseStats:
    """Group active (sequence, position, latent, value) triples and reduce each group.

    Every triple must have value > 0 and each (sequence, position, latent) must occur
    at most once (true for top-k indices). Cost is one sort of the triples.
    """
    seq = np.asarray(seq, dtype=np.int64)
    pos = np.asarray(pos, dtype=np.int64)
    latent = np.asarray(latent, dtype=np.int64)
    value = np.asarray(value, dtype=np.float32)
    n = len(value)
    if n == 0:
        empty_i = np.empty(0, np.int32)
        return SparseStats(
            seq=np.empty(0, np.int64),
            latent=empty_i,
            max_act=np.empty(0, np.float32),
            argmax=empty_i,
            n_active=empty_i,
            top_region_length=empty_i,
            starts=np.zeros(1, np.int64),
            pos=empty_i,
            value=np.empty(0, np.float32),
            distance_offsets=np.zeros(1, np.int32),
            distances=empty_i,
            distance_counts=empty_i,
        )
    stride = int(pos.max()) + 2  # > any distance, so (group, distance) keys never collide
    group_key = seq * (int(latent.max()) + 1) + latent
    order = np.argsort(group_key * stride + pos)
    group_key, pos, value = group_key[order], pos[order], value[order]
    seq, latent = seq[order], latent[order]

    new_group = np.empty(n, bool)
    new_group[0] = True
    np.not_equal(group_key[1:], group_key[:-1], out=new_group[1:])
    starts = np.flatnonzero(new_group)
    n_active = np.diff(np.append(starts, n))

    max_act = np.maximum.reduceat(value, starts)
    is_max = value == np.repeat(max_act, n_active)
    first_max = np.minimum.reduceat(np.where(is_max, np.arange(n), n), starts)

    new_region = new_group.copy()
    new_region[1:] |= pos[1:] != pos[:-1] + 1
    region = np.cumsum(new_region) - 1
    top_region_length = np.bincount(region)[region[first_max]]

    # Distances between the starts of consecutive regions within a group, as a histogram
    # (method.md, turn 3: between regions, so a dense latent's gaps of 1 and 2 never count).
    group = np.cumsum(new_group) - 1
    region_start = np.flatnonzero(new_region)
    start_group, start_pos = group[region_start], pos[region_start]
    within = start_group[1:] == start_group[:-1]
    dist_keys, dist_counts = np.unique(
        start_group[1:][within] * stride + (start_pos[1:] - start_pos[:-1])[within],
        return_counts=True,
    )
    dist_group = dist_keys // stride
    distance_offsets = np.zeros(len(starts) + 1, np.int64)
    np.cumsum(np.bincount(dist_group, minlength=len(starts)), out=distance_offsets[1:])

    return SparseStats(
        seq=seq[starts],
        latent=latent[starts].astype(np.int32),
        max_act=max_act,
        argmax=pos[first_max].astype(np.int32),
        n_active=n_active.astype(np.int32),
        top_region_length=top_region_length.astype(np.int32),
        starts=np.append(starts, n),
        pos=pos.astype(np.int32),
        value=value,
        distance_offsets=distance_offsets.astype(np.int32),
        distances=(dist_keys % stride).astype(np.int32),
        distance_counts=dist_counts.astype(np.int32),
    )


class _Example:
    """A heap entry; ``a < b`` means a ranks below b (lower max, or equal max and larger id)."""

    __slots__ = ("max_act", "id", "length", "positions", "values")

    def __init__(
        self,
        max_act: float,
        seq_id: str,
        length: int,
        positions: np.ndarray | None,
        values: np.ndarray | None,
    ) -> None:
        self.max_act = max_act
        self.id = seq_id
        self.length = length
        self.positions = positions
        self.values = values

    def __lt__(self, other: _Example) -> bool:
        if self.max_act != other.max_act:
            return self.max_act < other.max_act
        return self.id > other.id


class TopExamples:
    """The ``size`` highest-activating sequences per (split, latent), in bounded min-heaps.

    Ranking: max activation descending, then id ascending, so the result does not depend
    on the order sequences arrive in. A numpy floor per heap (its weakest max activation
    once full) rejects most groups before any Python-level heap work.
    """

    def __init__(self, width: int, size: int) -> None:
        if size < 1:
            raise ValueError(f"top_examples must be >= 1, got {size}")
        self.width = width
        self.size = size
        self._heaps: list[list[list[_Example]]] = [[[] for _ in range(width)] for _ in SPLITS]
        self._floor = np.full((len(SPLITS), width), -np.inf, np.float32)

    def add(
        self, stats: SparseStats, ids: Sequence[str], lengths: np.ndarray, splits: np.ndarray
    ) -> None:
        """Offer every group of ``stats``; ``ids``/``lengths``/``splits`` index by batch sequence."""
        group_split = splits[stats.seq]
        candidates = np.flatnonzero(stats.max_act >= self._floor[group_split, stats.latent])
        for g in candidates.tolist():
            s, lat, seq = int(group_split[g]), int(stats.latent[g]), int(stats.seq[g])
            heap = self._heaps[s][lat]
            entry = _Example(float(stats.max_act[g]), ids[seq], int(lengths[seq]), None, None)
            if len(heap) == self.size and not heap[0] < entry:
                continue
            a, b = stats.starts[g], stats.starts[g + 1]
            # Copies, so the heap never keeps the batch's arrays alive.
            entry.positions, entry.values = stats.pos[a:b].copy(), stats.value[a:b].copy()
            if len(heap) < self.size:
                heapq.heappush(heap, entry)
            else:
                heapq.heapreplace(heap, entry)
            if len(heap) == self.size:
                self._floor[s, lat] = heap[0].max_act

    def table(self, latents_per_chunk: int = 1024) -> pa.Table:
        """All kept examples, ordered by latent, split, rank (0 = highest).

        Built in chunks of latents so list offsets stay within int32 at any width.
        """
        chunks = []
        for first in range(0, self.width, latents_per_chunk):
            cols: dict[str, list] = {name: [] for name in TOP_EXAMPLES_SCHEMA.names}
            for lat in range(first, min(first + latents_per_chunk, self.width)):
                for s, split in enumerate(SPLITS):
                    for rank, ex in enumerate(sorted(self._heaps[s][lat], reverse=True)):
                        cols["latent"].append(lat)
                        cols["split"].append(split)
                        cols["rank"].append(rank)
                        cols["id"].append(ex.id)
                        cols["length"].append(ex.length)
                        cols["max_act"].append(ex.max_act)
                        cols["positions"].append(ex.positions)
                        cols["values"].append(ex.values)
            cols["positions"] = _list_array(cols["positions"], pa.int32())
            cols["values"] = _list_array(cols["values"], pa.float32())
            chunks.append(pa.table(cols, schema=TOP_EXAMPLES_SCHEMA))
        return pa.concat_tables(chunks) if chunks else TOP_EXAMPLES_SCHEMA.empty_table()


def _list_array(parts: list[np.ndarray], value_type: pa.DataType) -> pa.Array:
    offsets = np.zeros(len(parts) + 1, np.int32)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    flat = np.concatenate(parts) if parts else np.empty(0)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=value_type))


def seq_stats_table(
    stats: SparseStats, ids: Sequence[str], lengths: np.ndarray, splits: np.ndarray
) -> pa.Table:
    """The ``seq_stats`` rows of one processed batch."""
    length = lengths[stats.seq]
    offsets = pa.array(stats.distance_offsets)
    return pa.table(
        {
            "latent": stats.latent,
            "id": pa.array(ids, pa.string()).take(pa.array(stats.seq)),
            "split": pa.array(SPLITS, pa.string()).take(pa.array(splits[stats.seq])),
            "length": length.astype(np.int32),
            "max_act": stats.max_act,
            "argmax": stats.argmax,
            "n_active": stats.n_active,
            "top_region_length": stats.top_region_length,
            "coverage": (stats.n_active / length).astype(np.float32),
            "distances": pa.ListArray.from_arrays(offsets, pa.array(stats.distances)),
            "distance_counts": pa.ListArray.from_arrays(offsets, pa.array(stats.distance_counts)),
        },
        schema=SEQ_STATS_SCHEMA,
    )


class LatentStatsCollector:
    """Accumulates sequences' sparse activations, reduces them in batches, streams rows out.

    Use as a context manager: ``seq_stats`` is written atomically to ``seq_stats_path``
    (row groups as they fill) and appears only if the block succeeds. Peak memory is one
    batch of ``batch_activations`` triples plus one row group plus the top-example heaps.
    """

    def __init__(
        self,
        seq_stats_path: str | os.PathLike[str],
        width: int,
        top_examples: int,
        batch_activations: int = 1 << 20,
        row_group_rows: int = 1 << 18,
    ) -> None:
        self.path = Path(seq_stats_path)
        self.width = width
        self.top = TopExamples(width, top_examples)
        self.batch_activations = batch_activations
        self.row_group_rows = row_group_rows
        self.n_sequences = 0
        self.n_rows = 0
        self._reset_batch()
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def _reset_batch(self) -> None:
        self._ids: list[str] = []
        self._lengths: list[int] = []
        self._splits: list[int] = []
        self._seq: list[np.ndarray] = []
        self._pos: list[np.ndarray] = []
        self._latent: list[np.ndarray] = []
        self._value: list[np.ndarray] = []
        self._batch_size = 0

    def __enter__(self) -> LatentStatsCollector:
        self._file = AtomicParquetWriter(self.path, SEQ_STATS_SCHEMA, compression="zstd")
        self._writer = self._file.writer
        return self

    def add(self, seq_id: str, split: str, values: np.ndarray, indices: np.ndarray) -> None:
        """Take one sequence's top-k activations: ``values``/``indices`` of shape [length, k]."""
        if values.shape != indices.shape or values.ndim != 2:
            raise ValueError(
                f"sequence {seq_id}: expected top-k values and indices of equal shape "
                f"[length, k], got {values.shape} and {indices.shape}"
            )
        try:
            split_index = SPLITS.index(split)
        except ValueError:
            raise ValueError(
                f"sequence {seq_id}: split must be one of {SPLITS}, got {split!r}"
            ) from None
        length = values.shape[0]
        active = values > 0
        pos = np.nonzero(active)[0]
        latent = indices[active]
        if len(latent) and (latent.min() < 0 or latent.max() >= self.width):
            raise ValueError(
                f"sequence {seq_id}: latent index out of range [0, {self.width}): "
                f"{int(latent.min())}..{int(latent.max())}"
            )
        self._seq.append(np.full(len(pos), len(self._ids), np.int64))
        self._pos.append(pos)
        self._latent.append(latent)
        self._value.append(values[active])
        self._ids.append(seq_id)
        self._lengths.append(length)
        self._splits.append(split_index)
        self._batch_size += len(pos)
        self.n_sequences += 1
        if self._batch_size >= self.batch_activations:
            self._process()

    def _process(self) -> None:
        if not self._ids:
            return
        stats = sparse_stats(
            np.concatenate(self._seq),
            np.concatenate(self._pos),
            np.concatenate(self._latent),
            np.concatenate(self._value),
        )
        lengths = np.asarray(self._lengths, np.int64)
        splits = np.asarray(self._splits, np.int64)
        self.top.add(stats, self._ids, lengths, splits)
        table = seq_stats_table(stats, self._ids, lengths, splits)
        self._reset_batch()
        self._pending.append(table)
        self._pending_rows += len(table)
        if self._pending_rows >= self.row_group_rows:
            self._write()

    def _write(self) -> None:
        if self._pending_rows:
            table = pa.concat_tables(self._pending).combine_chunks()
            self._writer.write_table(table, row_group_size=len(table))
            self.n_rows += len(table)
        self._pending, self._pending_rows = [], 0

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._file.finish(exc_type is None, self._flush_all)

    def _flush_all(self) -> None:
        self._process()
        self._write()


@dataclass(frozen=True)
class StreamBounds:
    """What the latent-stats stream holds at once: ``batch_activations`` pending activations
    and ``row_group_rows`` pending ``seq_stats`` rows (plus the top-example heaps)."""

    batch_activations: int = 1 << 20
    row_group_rows: int = 1 << 18


def checked_encodings(
    chunks: Iterable[Sequence[EvalRecord]], encode: Encoder
) -> Iterator[tuple[EvalRecord, np.ndarray, np.ndarray]]:
    """Encode the evaluation set chunk by chunk; yield (record, values, indices) per sequence.

    Every record must come back exactly once, with one row of codes per residue: a duplicate
    id, an unknown or repeated id, a wrong length or a dropped sequence stops with its id.
    """
    for chunk in chunks:
        by_id = {r.id: r for r in chunk}
        if len(by_id) != len(chunk):
            raise ValueError("evaluation set: duplicate sequence ids in one chunk")
        for seq_id, values, indices in encode([(r.id, r.sequence) for r in chunk]):
            record = by_id.pop(seq_id, None)
            if record is None:
                raise ValueError(f"encoder returned unknown or repeated sequence id {seq_id!r}")
            if len(values) != len(record.sequence):
                raise ValueError(
                    f"sequence {seq_id}: encoder returned {len(values)} residues "
                    f"for a sequence of length {len(record.sequence)}"
                )
            yield record, values, indices
        if by_id:
            raise ValueError(f"encoder dropped {len(by_id)} sequences, e.g. {next(iter(by_id))}")


def stream_latent_stats(
    chunks: Iterable[Sequence[EvalRecord]],
    encode: Encoder,
    width: int,
    top_examples: int,
    seq_stats_path: str | os.PathLike[str],
    top_examples_path: str | os.PathLike[str],
    total_sequences: int | None = None,
    bounds: StreamBounds | None = None,
) -> tuple[int, int]:
    """Encode the evaluation set chunk by chunk; write ``seq_stats`` and ``top_examples``,
    holding at most what ``bounds`` allow (default :class:`StreamBounds`).

    Returns (sequences processed, seq_stats rows). Each encoded sequence's track length
    must equal its sequence length, and every record must come back exactly once.
    """
    logger = get_logger()
    progress = Progress("latent stats", total_sequences, "sequences", logger)
    bounds = bounds or StreamBounds()
    with LatentStatsCollector(
        seq_stats_path, width, top_examples, bounds.batch_activations, bounds.row_group_rows
    ) as collector:
        for record, values, indices in checked_encodings(chunks, encode):
            collector.add(record.id, record.split, values, indices)
            progress.update(1)
    # After the block: leaving it reduces the last pending batch into the heaps.
    write_parquet(collector.top.table(), top_examples_path, compression="zstd")
    progress.finish(rows=collector.n_rows)
    return collector.n_sequences, collector.n_rows
