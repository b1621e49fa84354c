"""Activation shards: the Parquet layout every stage reads and writes through.

A shard holds one row per stored residue: ``id`` (sequence id), ``pos`` (0-based residue
index) and ``x``, a ``fixed_size_binary`` column with the little-endian float16/float32
vector. Binary rather than ``fixed_size_list`` because it decodes ~5x faster and maps
into numpy without a copy (see docs/design.md). File metadata records dtype, d_model,
model and layer so a reader never has to guess.

Shard membership lives here too: :func:`select_shard_records` and :func:`holdout_records`
pick a shard's or the held-out sequences by the per-id hashes of :mod:`protsae.ids`. :func:`extract_shard` writes a shard
(:func:`extract_shard_layers` those of several layers from one forward) through the ESM-2
forward in :mod:`protsae.esm`, imported only when it runs, so reading shards (SAE training)
never imports fair-esm.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from protsae.ids import id_digest, id_rng, is_holdout, shard_of
from protsae.io import AtomicParquetWriter
from protsae.progress import Progress, get_logger

if TYPE_CHECKING:
    import torch

    from protsae.esm import ForwardOptions

DTYPES = {"float16": np.dtype("<f2"), "float32": np.dtype("<f4")}
META_PREFIX = "protsae."
ROW_GROUP_BYTES = 64 * 1024 * 1024
_FLOAT16_MAX = float(np.finfo(np.float16).max)

#: One sequence: ``(id, residues)``.
Record = tuple[str, str]


def shard_schema(d_model: int, dtype: str, model: str = "", layer: int = -1) -> pa.Schema:
    """The Arrow schema of an activation shard, with protsae metadata."""
    itemsize = DTYPES[dtype].itemsize
    metadata = {
        f"{META_PREFIX}dtype": dtype,
        f"{META_PREFIX}d_model": str(d_model),
        f"{META_PREFIX}model": model,
        f"{META_PREFIX}layer": str(layer),
    }
    return pa.schema(
        [
            pa.field("id", pa.string()),
            pa.field("pos", pa.int32()),
            pa.field("x", pa.binary(d_model * itemsize)),
        ],
        metadata=metadata,
    )


def sample_positions(seq_id: str, length: int, count: int | None, seed: int) -> np.ndarray:
    """Sorted residue positions to store for one sequence: ``count`` of them, or all."""
    if count is None or count >= length:
        return np.arange(length, dtype=np.int32)
    if count < 1:
        raise ValueError(f"tokens_per_sequence must be positive or None, got {count}")
    chosen = id_rng(seq_id, seed).choice(length, size=count, replace=False)
    return np.sort(chosen).astype(np.int32)


def _check_table(table: pa.Table) -> list[str]:
    missing = {"id", "sequence"} - set(table.column_names)
    if missing:
        raise ValueError(
            f"sequence table lacks column(s) {sorted(missing)}; has {table.column_names}"
        )
    return table.column("id").to_pylist()


def _take_records(table: pa.Table, keep: list[bool]) -> list[Record]:
    # Filter before converting, so only the selected sequences become Python strings.
    chosen = table.select(["id", "sequence"]).filter(pa.array(keep, pa.bool_()))
    return list(
        zip(chosen.column("id").to_pylist(), chosen.column("sequence").to_pylist(), strict=True)
    )


def select_shard_records(
    table: pa.Table, shard: int, n_shards: int, holdout_fraction: float
) -> list[Record]:
    """The (id, sequence) records of one training shard, in table order: a function of each id.

    A sequence's shard and holdout membership never move when the sample grows or is reordered.
    """
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} out of range for {n_shards} shards")
    ids = _check_table(table)
    keep = [
        shard_of(seq_id, n_shards) == shard and not is_holdout(seq_id, holdout_fraction)
        for seq_id in ids
    ]
    return _take_records(table, keep)


def read_shard_records(
    sample_path: str | os.PathLike[str],
    shard: int,
    n_shards: int,
    holdout_fraction: float,
    logger: logging.Logger | None = None,
) -> list[Record]:
    """:func:`select_shard_records` of the sample table at ``sample_path``, with a log line."""
    sample = pq.read_table(sample_path, columns=["id", "sequence"])
    records = select_shard_records(sample, shard, n_shards, holdout_fraction)
    (logger or get_logger()).info(
        "shard %d of %d: %d of %d sequences", shard, n_shards, len(records), sample.num_rows
    )
    return records


def holdout_records(
    table: pa.Table, holdout_fraction: float, max_sequences: int | None
) -> list[Record]:
    """Held-out records (never in a training shard), the same ones whatever the table order.

    Ordered by a hash of the id, so the first ``max_sequences`` are a random-like subset.
    """
    held = _take_records(table, [is_holdout(i, holdout_fraction) for i in _check_table(table)])
    held.sort(key=lambda r: (id_digest(r[0]), r[0]))
    return held if max_sequences is None else held[:max_sequences]


@dataclass(frozen=True)
class ShardInfo:
    """What a shard's metadata says about its contents."""

    dtype: str
    d_model: int
    model: str
    layer: int
    num_rows: int


def shard_info(path: str | os.PathLike[str]) -> ShardInfo:
    """Read a shard's metadata without reading its data."""
    meta = pq.read_metadata(path)
    kv = {k.decode(): v.decode() for k, v in (meta.metadata or {}).items()}
    try:
        return ShardInfo(
            dtype=kv[f"{META_PREFIX}dtype"],
            d_model=int(kv[f"{META_PREFIX}d_model"]),
            model=kv[f"{META_PREFIX}model"],
            layer=int(kv[f"{META_PREFIX}layer"]),
            num_rows=meta.num_rows,
        )
    except KeyError as err:
        raise ValueError(f"{path}: not an activation shard (missing metadata key {err})") from None


class ShardWriter:
    """Streams activation rows into a shard, one row group at a time, written atomically.

    Use as a context manager; the file appears under its final name only when the
    block exits without an error. ``add`` takes one sequence's stored residues.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        d_model: int,
        dtype: str = "float16",
        model: str = "",
        layer: int = -1,
        row_group_rows: int | None = None,
    ) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"activation dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        self.path = Path(path)
        self.d_model = d_model
        self.np_dtype = DTYPES[dtype]
        self.schema = shard_schema(d_model, dtype, model, layer)
        row_bytes = d_model * self.np_dtype.itemsize
        self.row_group_rows = row_group_rows or max(1024, ROW_GROUP_BYTES // row_bytes)
        self._ids: list[str] = []
        self._pos: list[np.ndarray] = []
        self._x: list[np.ndarray] = []
        self._pending = 0
        self.rows_written = 0

    def __enter__(self) -> ShardWriter:
        self._file = AtomicParquetWriter(
            self.path,
            self.schema,
            compression="lz4",
            use_dictionary=["id"],
            write_statistics=["id", "pos"],
        )
        self._writer = self._file.writer
        return self

    def add(self, seq_id: str, positions: np.ndarray, vectors: np.ndarray) -> None:
        """Queue the vectors ``[n, d_model]`` of residues ``positions`` of sequence ``seq_id``."""
        vectors = np.ascontiguousarray(vectors, dtype=self.np_dtype)
        if vectors.ndim != 2 or vectors.shape[1] != self.d_model:
            raise ValueError(
                f"{self.path}: sequence {seq_id}: expected vectors of shape [n, {self.d_model}], "
                f"got {tuple(vectors.shape)}"
            )
        if len(positions) != len(vectors):
            raise ValueError(
                f"{self.path}: sequence {seq_id}: {len(positions)} positions for {len(vectors)} vectors"
            )
        self._ids.extend([seq_id] * len(vectors))
        self._pos.append(np.asarray(positions, dtype=np.int32))
        self._x.append(vectors)
        self._pending += len(vectors)
        if self._pending >= self.row_group_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        x = np.concatenate(self._x)
        width = self.schema.field("x").type.byte_width
        x_arr = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(width), len(x), [None, pa.py_buffer(x.tobytes())]
        )
        batch = pa.record_batch(
            [pa.array(self._ids, pa.string()), pa.array(np.concatenate(self._pos)), x_arr],
            schema=self.schema,
        )
        self._writer.write_batch(batch, row_group_size=len(x))
        self.rows_written += len(x)
        self._ids, self._pos, self._x, self._pending = [], [], [], 0

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._file.finish(exc_type is None, self._flush)


def decode_x(column: pa.Array | pa.ChunkedArray, d_model: int, dtype: str) -> np.ndarray:
    """View a ``fixed_size_binary`` column as a ``[rows, d_model]`` array (zero-copy per chunk)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    np_dtype = DTYPES[dtype]
    parts = []
    for chunk in chunks:
        if chunk.null_count:
            raise ValueError("activation column contains nulls")
        width = chunk.type.byte_width
        data = chunk.buffers()[1]
        arr = np.frombuffer(data, dtype=np.uint8, count=(chunk.offset + len(chunk)) * width)
        arr = arr[chunk.offset * width :].view(np_dtype).reshape(len(chunk), d_model)
        parts.append(arr)
    if not parts:
        return np.empty((0, d_model), dtype=np_dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


@dataclass
class ActivationBatch:
    """One row group's worth of activations."""

    ids: pa.Array
    pos: np.ndarray
    x: np.ndarray  # [rows, d_model] float16 or float32, read-only view


def iter_shard(
    path: str | os.PathLike[str],
    columns: tuple[str, ...] = ("id", "pos", "x"),
    row_groups: Iterable[int] | None = None,
) -> Iterator[ActivationBatch]:
    """Stream a shard row group by row group; memory is bounded by one row group.

    This is the one reader of activation shards in the project. ``row_groups`` reads only
    those row groups, in that order (random access for a shuffling, resumable reader).
    """
    info = shard_info(path)
    pf = pq.ParquetFile(path)
    for i in range(pf.num_row_groups) if row_groups is None else row_groups:
        table = pf.read_row_group(i, columns=list(columns))
        x = decode_x(table.column("x"), info.d_model, info.dtype) if "x" in columns else None
        ids = table.column("id").combine_chunks() if "id" in columns else None
        pos = table.column("pos").to_numpy() if "pos" in columns else None
        yield ActivationBatch(ids=ids, pos=pos, x=x)


@dataclass(frozen=True)
class ShardFormat:
    """What an activation shard stores: ``model_name`` (recorded in it), vectors as ``dtype``
    ("float16" or "float32"), at most ``tokens_per_sequence`` seeded random residues per
    sequence (None: all), ``seed`` drawing those positions and the order of the batches."""

    model_name: str
    dtype: str
    tokens_per_sequence: int | None = None
    seed: int = 0


def extract_shard(
    checkpoint: str | os.PathLike[str],
    records: Sequence[Record],
    out_path: str | os.PathLike[str],
    layer: int,
    shard: ShardFormat,
    forward: ForwardOptions,
    logger: logging.Logger | None = None,
) -> int:
    """Write layer ``layer``'s residue vectors of ``records`` to an activation shard; rows written.

    With ``shard.tokens_per_sequence`` only that many seeded random residues per sequence are
    stored (positions depend on id and seed, not on batching). Rows follow a seeded random order
    of length-sorted batches. ESM-2 runs as ``forward`` says: its device None means "auto", its
    ``loader_workers`` None means 0 on CPU and up to 4 on CUDA.
    """
    rows = extract_shard_layers(checkpoint, records, {layer: out_path}, shard, forward, logger)
    return rows[layer]


def _check_extraction(
    records: Sequence[Record], out_paths: Mapping[int, object], dtype: str, tokens: int | None
) -> None:
    if not out_paths:
        raise ValueError("no layers to extract: give at least one (layer: shard path)")
    if dtype not in DTYPES:
        raise ValueError(f"activation dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if tokens is not None and tokens < 1:
        raise ValueError(f"tokens_per_sequence must be positive or None, got {tokens}")
    ids = [seq_id for seq_id, _ in records]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        paths = ", ".join(str(p) for p in out_paths.values())
        raise ValueError(f"{paths}: sequence id {duplicate!r} appears more than once")


def extract_shard_layers(
    checkpoint: str | os.PathLike[str],
    records: Sequence[Record],
    out_paths: Mapping[int, str | os.PathLike[str]],
    shard: ShardFormat,
    forward: ForwardOptions,
    logger: logging.Logger | None = None,
) -> dict[int, int]:
    """Write the shard of every layer of ``out_paths`` (``{layer: path}``) from ONE ESM-2
    forward per batch that stops at the deepest layer; ``{layer: rows written}``.

    Each file is the one :func:`extract_shard` writes for its layer alone (same rows, positions
    and order). Every file appears only when all are complete: an error leaves none of them.
    """
    model_name, dtype, tokens_per_sequence, seed = (
        shard.model_name,
        shard.dtype,
        shard.tokens_per_sequence,
        shard.seed,
    )
    _check_extraction(records, out_paths, dtype, tokens_per_sequence)
    from protsae.device import resolve_device  # deferred: these import torch and fair-esm
    from protsae.esm import check_layer, check_records, load_model, multi_layer_representations

    check_records(records)
    logger = logger or get_logger()
    device = resolve_device("auto" if forward.device is None else forward.device)
    model, alphabet = load_model(checkpoint, device)
    for layer in out_paths:
        check_layer(model, layer)
    loader_workers = forward.loader_workers
    if loader_workers is None:
        loader_workers = min(4, max(0, (os.cpu_count() or 1) - 1)) if device.type == "cuda" else 0
    lengths = {seq_id: len(seq) for seq_id, seq in records}
    progress = Progress("extract", total=sum(lengths.values()), unit="tokens", logger=logger)
    representations = multi_layer_representations(
        model,
        alphabet,
        records,
        list(out_paths),
        replace(forward, device=device, loader_workers=loader_workers),
        batch_order_seed=seed,
    )
    with ExitStack() as stack:
        writers = {
            layer: stack.enter_context(ShardWriter(path, model.embed_dim, dtype, model_name, layer))
            for layer, path in sorted(out_paths.items())
        }
        for done, (seq_id, hidden) in enumerate(representations, start=1):
            positions = sample_positions(seq_id, lengths[seq_id], tokens_per_sequence, seed)
            for layer, writer in writers.items():
                writer.add(
                    seq_id,
                    positions,
                    _stored_vectors(writer, seq_id, layer, hidden[layer], positions),
                )
            progress.update(lengths[seq_id], sequences=f"{done}/{len(records)}")
    rows = {layer: writer.rows_written for layer, writer in writers.items()}
    progress.finish(sequences=f"{len(records)}/{len(records)}", rows=sum(rows.values()))
    return rows


def _stored_vectors(
    writer: ShardWriter, seq_id: str, layer: int, hidden: torch.Tensor, positions: np.ndarray
) -> np.ndarray:
    """The vectors of ``positions`` to store; refuses a value float16 cannot hold."""
    vectors = hidden.numpy()
    if len(positions) < len(vectors):
        vectors = vectors[positions]
    if writer.np_dtype == DTYPES["float16"] and len(vectors):
        peak = np.abs(vectors).max()
        if peak > _FLOAT16_MAX:
            raise ValueError(
                f"{writer.path}: sequence {seq_id!r}: layer {layer} activation "
                f"{peak:.3g} overflows float16; use dtype float32"
            )
    return vectors
