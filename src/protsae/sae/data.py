"""A shuffled, resumable, memory-bounded stream of activation batches for SAE training.

Shuffling works in two levels, both seeded, so the stream is a pure function of
(shards, seed, batch size, buffer size) and its position is three integers:

1. each epoch visits every (shard, row group) in a seeded random order;
2. consecutive row groups in that order are read into a buffer of at least
   ``shuffle_buffer_tokens`` tokens, whose rows are emitted in a seeded random permutation.

Memory is bounded by the buffer plus one row group, never by the data size. A checkpoint
stores (epoch, first row group of the buffer, offset in the buffer); restoring re-reads that
one buffer and regenerates its permutation, so a resumed run sees exactly the batches an
uninterrupted run would have seen.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch

from protsae.activations import DTYPES, iter_shard, shard_info
from protsae.progress import get_logger


@dataclass(frozen=True)
class _RowGroup:
    shard: int
    row_group: int
    rows: int


def _check_finite(x: np.ndarray, ids: Any, pos: np.ndarray, where: str) -> None:
    """Raise naming the first token whose vector holds a NaN or Inf."""
    # Fast path: NaN propagates through min/max, an Inf becomes the min or the max.
    low, high = torch.aminmax(torch.from_numpy(x))
    if math.isfinite(float(low)) and math.isfinite(float(high)):
        return
    bad_rows = np.flatnonzero(~np.isfinite(x).all(axis=1))
    row = int(bad_rows[0])
    column = int(np.flatnonzero(~np.isfinite(x[row]))[0])
    raise ValueError(
        f"{where}: row {row} (sequence {ids[row].as_py()}, position {int(pos[row])}): activation "
        f"dimension {column} is {x[row, column]} ({bad_rows.size} non-finite rows in this row group)"
    )


class ActivationStream:
    """Endless iterator of float32 ``[batch_tokens, d_model]`` batches over activation shards.

    Loops over the data again (a new epoch, logged) whenever the consumer wants more tokens
    than the shards hold. ``state_dict``/``load_state_dict`` checkpoint the position.
    ``float32=False`` yields the shards' own dtype (float16 halves a host-to-GPU copy; the
    GPU converts faster than the CPU).
    """

    def __init__(
        self,
        shard_paths: Sequence[str | os.PathLike[str]],
        batch_tokens: int,
        shuffle_buffer_tokens: int,
        seed: int = 0,
        logger: logging.Logger | None = None,
        float32: bool = True,
    ) -> None:
        if batch_tokens <= 0 or shuffle_buffer_tokens <= 0:
            raise ValueError(
                f"batch_tokens and shuffle_buffer_tokens must be positive, got {batch_tokens}, "
                f"{shuffle_buffer_tokens}"
            )
        if not shard_paths:
            raise ValueError("no activation shards given")
        self.paths = [Path(p) for p in shard_paths]
        self.batch_tokens = batch_tokens
        self.shuffle_buffer_tokens = shuffle_buffer_tokens
        self.seed = seed
        self.logger = logger or get_logger()
        self.float32 = float32

        infos = [shard_info(p) for p in self.paths]
        first = infos[0]
        for path, info in zip(self.paths, infos, strict=True):
            if (info.d_model, info.dtype) != (first.d_model, first.dtype):
                raise ValueError(
                    f"{path}: activations are {info.d_model}-d {info.dtype}, but {self.paths[0]} "
                    f"holds {first.d_model}-d {first.dtype}; all shards of one SAE must agree"
                )
        self.d_model = first.d_model
        self.dtype = first.dtype
        self.model = first.model
        self.layer = first.layer
        self.row_groups: list[_RowGroup] = []
        for index, path in enumerate(self.paths):
            meta = pq.read_metadata(path)
            for rg in range(meta.num_row_groups):
                rows = meta.row_group(rg).num_rows
                if rows:
                    self.row_groups.append(_RowGroup(index, rg, rows))
        self.tokens_per_epoch = sum(rg.rows for rg in self.row_groups)
        if not self.tokens_per_epoch:
            raise ValueError(f"activation shards hold no tokens: {', '.join(map(str, self.paths))}")

        self.epoch = 0
        self._buffer_start = 0  # index into this epoch's row-group order
        self._offset = 0  # rows of the buffer already emitted
        self._buffer: np.ndarray | None = None
        self._buffer_end = 0
        self._permutation: np.ndarray | None = None
        self._order = self._epoch_order(0)

    # -- position ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, int]:
        """The stream's position; plain ints, so ``torch.load(weights_only=True)`` reads it."""
        return {
            "epoch": self.epoch,
            "buffer_start": self._buffer_start,
            "offset": self._offset,
            "seed": self.seed,
            "batch_tokens": self.batch_tokens,
            "shuffle_buffer_tokens": self.shuffle_buffer_tokens,
            "tokens_per_epoch": self.tokens_per_epoch,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a position saved by :meth:`state_dict` over the same shards and settings."""
        for key in ("seed", "batch_tokens", "shuffle_buffer_tokens", "tokens_per_epoch"):
            if state[key] != getattr(self, key):
                raise ValueError(
                    f"stream position was saved with {key}={state[key]}, this stream has "
                    f"{getattr(self, key)}: not the same data or settings"
                )
        self.epoch = int(state["epoch"])
        self._order = self._epoch_order(self.epoch)
        self._buffer_start = int(state["buffer_start"])
        self._offset = int(state["offset"])
        self._buffer = None  # re-read lazily on the next batch

    @property
    def buffered_tokens(self) -> int:
        """Tokens held in memory now (bounded by the buffer size plus one row group)."""
        return 0 if self._buffer is None else len(self._buffer)

    # -- iteration --------------------------------------------------------------------------
    def __iter__(self) -> ActivationStream:
        return self

    def __next__(self) -> np.ndarray:
        parts = []
        need = self.batch_tokens
        while need:
            if self._buffer is None:
                self._fill_buffer()
            assert self._buffer is not None and self._permutation is not None
            take = min(need, len(self._permutation) - self._offset)
            if take == 0:
                self._next_buffer()
                continue
            rows = self._permutation[self._offset : self._offset + take]
            parts.append(self._buffer[rows])
            self._offset += take
            need -= take
        batch = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return batch.astype(np.float32, copy=False) if self.float32 else batch

    def _epoch_order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.row_groups))

    def _next_buffer(self) -> None:
        self._buffer_start = self._buffer_end
        self._offset = 0
        self._buffer = None
        if self._buffer_start >= len(self.row_groups):
            self.epoch += 1
            self._buffer_start = 0
            self._order = self._epoch_order(self.epoch)
            # Debug only: reading ahead (the prefetcher, b_dec's sample) also gets here. Whether
            # training itself sees tokens twice is logged once by train_sae, with its epochs.
            self.logger.debug(
                "activation stream: epoch %d begins (the shards hold %s tokens)",
                self.epoch + 1,
                f"{self.tokens_per_epoch:,}",
            )

    def _fill_buffer(self) -> None:
        # Row counts are in the metadata: choose the row groups first, then fill one array.
        end = self._buffer_start
        rows = 0
        while end < len(self.row_groups) and (rows < self.shuffle_buffer_tokens or rows == 0):
            rows += self.row_groups[self._order[end]].rows
            end += 1
        buffer = np.empty((rows, self.d_model), dtype=DTYPES[self.dtype])
        filled = 0
        for position in range(self._buffer_start, end):
            unit = self.row_groups[self._order[position]]
            path = self.paths[unit.shard]
            (batch,) = iter_shard(path, row_groups=[unit.row_group])
            if len(batch.x) != unit.rows:
                raise ValueError(
                    f"{path}: row group {unit.row_group} has {len(batch.x)} rows, its metadata "
                    f"says {unit.rows}: the file changed while training"
                )
            block = buffer[filled : filled + unit.rows]
            block[:] = batch.x  # a writable copy, so torch can check it without a warning
            _check_finite(block, batch.ids, batch.pos, f"{path}: row group {unit.row_group}")
            filled += unit.rows
        self._buffer = buffer
        self._buffer_end = end
        rng = np.random.default_rng([self.seed, self.epoch, self._buffer_start])
        self._permutation = rng.permutation(rows)


class Prefetcher:
    """Reads a stream's next batches in a background thread while the caller trains.

    Parquet decoding and numpy copies release the GIL, so reading overlaps the training step.
    :meth:`state_dict` is the stream's position after the last batch handed out (not after
    the ones read ahead), so checkpoints stay exact. Errors in the reader (e.g. a NaN in a
    shard) are raised by the ``next()`` that would have returned the batch.
    """

    def __init__(self, stream: ActivationStream, depth: int = 2) -> None:
        self.stream = stream
        self._position = stream.state_dict()
        self._queue: queue.Queue[tuple[Any, Any]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="activation-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item: tuple[Any, Any]) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _read(self) -> None:
        try:
            while not self._stop.is_set():
                batch = next(self.stream)
                self._put((batch, self.stream.state_dict()))
        except BaseException as err:  # handed to the consumer, raised there
            self._put((err, None))

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self) -> np.ndarray:
        batch, position = self._queue.get()
        if isinstance(batch, BaseException):
            raise batch
        self._position = position
        return batch

    def state_dict(self) -> dict[str, int]:
        return dict(self._position)

    def close(self) -> None:
        """Stop the reader thread (it finishes the batch it is reading, then exits)."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(timeout=0.1)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
