"""FASTA streaming and the seeded UniRef50 sample.

UniRef50 is ~12 GB gzipped, so it is read once, block by block, and sampled with a seeded
reservoir whose memory depends on the sample size only.
"""

from __future__ import annotations

import gzip
import io
import logging
import math
import os
import queue
import random
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NamedTuple

import pyarrow as pa

from protsae.filetypes import sniff
from protsae.progress import Progress, get_logger
from protsae.sequences.common import InputError, esm_residue_letters, open_binary

BLOCK_BYTES = 1 << 20
_WHITESPACE = b" \t\r\n\v\f"

UNIREF50_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("sequence", pa.string()),
        pa.field("length", pa.int32()),
    ]
)


class FastaRecord(NamedTuple):
    id: str
    header: str
    sequence: str


@dataclass
class FastaStats:
    """What a FASTA pass saw besides the records it yielded."""

    records: int = 0
    duplicates: int = 0
    nonascii_headers: int = 0
    stop_stripped: list[str] = field(default_factory=list)
    """Ids of the records whose trailing ``*`` (a stop) was stripped."""


@dataclass(frozen=True)
class InMemoryFasta:
    """FASTA bytes already in memory (an archive's member), called ``name`` in messages."""

    data: bytes
    name: str

    def __str__(self) -> str:
        return self.name


def _read_ahead(path: str | os.PathLike[str] | InMemoryFasta, depth: int = 4) -> Iterator[bytes]:
    """The file's (decompressed) bytes in blocks, read ahead by a helper thread.

    zlib releases the GIL while it inflates, so on gzip input decompression in the helper
    overlaps with parsing here. At most ``depth`` blocks wait in the queue. Errors in the
    helper (truncated gzip, I/O) are raised here.
    """
    blocks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: bytes | BaseException) -> None:
        while not stop.is_set():
            try:
                blocks.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            source = path if not isinstance(path, InMemoryFasta) else None
            with open_binary(source) if source is not None else io.BytesIO(path.data) as fh:
                while not stop.is_set():
                    block = _read_block(fh, put)
                    put(block)  # b"" marks the end
                    if not block:
                        return
        except BaseException as exc:  # handed to the consumer, which raises it
            put(exc)

    helper = threading.Thread(target=produce, name="protsae-read-ahead", daemon=True)
    helper.start()
    try:
        while True:
            item = blocks.get()
            if isinstance(item, BaseException):
                raise item
            if not item:
                return
            yield item
    finally:
        stop.set()
        helper.join()


def _read_block(fh: IO[bytes], put: Callable[[bytes], None]) -> bytes:
    """Up to ``BLOCK_BYTES`` from ``fh`` in ``read1`` steps; on an error (a gzip stream cut
    short) the bytes read before it are handed on first, so the record reached is known."""
    block = bytearray()
    try:
        while len(block) < BLOCK_BYTES:
            chunk = fh.read1(BLOCK_BYTES - len(block))  # type: ignore[attr-defined]
            if not chunk:
                break
            block += chunk
    except BaseException:
        if block:
            put(bytes(block))
        raise
    return bytes(block)


# Upper-cases and drops line breaks in one C-level pass over a record's sequence lines.
_UPPER = bytes.maketrans(b"abcdefghijklmnopqrstuvwxyz", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _record_batches(
    path: str | os.PathLike[str] | InMemoryFasta,
    stops: list[bytes] | None = None,
    allow_empty: bool = False,
) -> Iterator[list[tuple[bytes, bytes]]]:
    """Yield lists of ``(header, cleaned sequence)`` as bytes, one list per block read.

    Reads blocks and cuts them at the last ``\\n>`` so records are split in C rather
    than line by line in Python; memory holds a block or two plus the longest record.
    Every piece handed to ``split`` after the first starts right after a header's ``>``.
    Sequences come back upper-cased without line breaks or a trailing stop ``*``; with
    ``stops`` the headers of the records that had one are appended to it. An empty sequence
    is an error unless ``allow_empty``.
    """
    number = 0  # records returned so far
    last_header = b""
    first = True

    def split(data: bytes) -> list[tuple[bytes, bytes]]:
        nonlocal number, last_header, first
        if first:
            first = False
            start = data.find(b">")
            if start < 0 or data[:start].strip():
                if data.strip():
                    found = sniff(data[:4096])
                    raise InputError(
                        f"{path}: it is {found}, not a FASTA file"
                        if found
                        else f"{path}: sequence data before the first '>' header"
                    )
                return []
            data = data[start + 1 :]
        batch = []
        for chunk in data.split(b"\n>"):
            header, _, body = chunk.partition(b"\n")
            cleaned = body.translate(_UPPER, _WHITESPACE)
            sequence = cleaned.rstrip(b"*")
            if stops is not None and len(sequence) != len(cleaned):
                stops.append(header)
            if not sequence and not allow_empty:
                name = header.decode("utf-8", "replace").split(maxsplit=1)
                raise InputError(
                    f"{path}: record #{number + len(batch) + 1} "
                    f"({name[0] if name else 'no header'!r}) has an empty sequence"
                )
            batch.append((header.rstrip(), sequence))
        if batch:
            number += len(batch)
            last_header = batch[-1][0]
        return batch

    pending: list[bytes] = []
    try:
        for block in _read_ahead(path):
            cut = block.rfind(b"\n>")
            if cut < 0:
                pending.append(block)
                continue
            pending.append(block[: cut + 1])
            data = b"".join(pending)
            pending = [block[cut + 2 :]]  # from just after the '>' of the next header
            yield split(data)
        yield split(b"".join(pending))
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        data = b"".join(pending)
        cut = data.rfind(b"\n>")
        if cut >= 0:
            yield split(data[: cut + 1])  # the whole records before the damage
        last = last_header.decode("utf-8", "replace").split(maxsplit=1)
        raise InputError(
            f"{path}: truncated or corrupt gzip data ({exc}) after record #{number}"
            + (f" ({last[0]!r})" if last else "")
        ) from exc


def _decode_header(header: bytes, stats: FastaStats | None) -> str:
    if header.isascii():
        return header.decode("ascii")
    if stats is not None:
        stats.nonascii_headers += 1
    return header.decode("utf-8", "replace")


def read_fasta(
    path: str | os.PathLike[str] | InMemoryFasta,
    stats: FastaStats | None = None,
    unique_ids: bool = True,
    logger: logging.Logger | None = None,
    allow_empty: bool = False,
) -> Iterator[FastaRecord]:
    """Stream ``(id, header, sequence)`` records from a plain or gzipped FASTA file (or FASTA
    bytes in memory). A record with an empty sequence is an error naming it, or with
    ``allow_empty`` a record whose sequence is ``""`` (for readers that name it better).

    ``id`` is the header's first word; sequences are upper-cased and lose a trailing
    ``*``. Non-ASCII header bytes are decoded leniently and counted. With
    ``unique_ids`` a repeated id is dropped (the first record wins) and counted; that
    keeps a set of all ids, so switch it off for inputs too large to remember.
    """
    logger = logger or get_logger()
    stats = stats if stats is not None else FastaStats()
    seen: set[str] = set()
    stops: list[bytes] = []
    batches = _record_batches(path, stops, allow_empty)
    records = (record for batch in batches for record in batch)
    for number, (raw_header, raw_sequence) in enumerate(records, start=1):
        header = _decode_header(raw_header, stats)
        words = header.split(maxsplit=1)
        if not words:
            raise InputError(f"{path}: record #{number} has an empty header")
        record_id = words[0]
        if unique_ids:
            if record_id in seen:
                stats.duplicates += 1
                if stats.duplicates <= 10:
                    logger.warning("%s: duplicate id %r dropped (first kept)", path, record_id)
                continue
            seen.add(record_id)
        if not raw_sequence.isascii():
            byte = next(b for b in raw_sequence if b > 127)
            raise InputError(
                f"{path}: record #{number} ({record_id!r}) has the byte 0x{byte:02x} in its "
                "sequence (not a residue letter; not ASCII)"
            )
        stats.records += 1
        yield FastaRecord(record_id, header, raw_sequence.decode("ascii"))
    if stops:
        stats.stop_stripped = [_decode_header(h, FastaStats()).split(maxsplit=1)[0] for h in stops]
        logger.info(
            "%s: a trailing '*' (stop) stripped from %d record(s), ESM-2 has no stop token: %s%s",
            path,
            len(stops),
            ", ".join(stats.stop_stripped[:10]),
            ", ..." if len(stops) > 10 else "",
        )
    if stats.duplicates or stats.nonascii_headers:
        logger.warning(
            "%s: %d duplicate ids dropped, %d headers with non-ASCII bytes",
            path,
            stats.duplicates,
            stats.nonascii_headers,
        )


class Reservoir:
    """Chooses ``size`` items uniformly from a stream of unknown length (Li's Algorithm L).

    The caller offers items one by one; :meth:`offer` says which slot (if any) the
    item takes, so items that are not kept never need to be built. Algorithm L draws
    random numbers only when an item is kept, about ``size * log(n / size)`` times.
    """

    def __init__(self, size: int, seed: int) -> None:
        if size < 1:
            raise ValueError(f"reservoir size must be at least 1, got {size}")
        self.size = size
        self.offered = 0
        self._rng = random.Random(seed)
        self._w = 1.0
        self._next = size  # index of the next stream item to keep, once the reservoir is full
        self._advance()

    def _uniform(self) -> float:
        """A uniform number in (0, 1): log() of it is finite."""
        while True:
            u = self._rng.random()
            if u > 0.0:
                return u

    def _advance(self) -> None:
        self._w *= math.exp(math.log(self._uniform()) / self.size)
        if self._w >= 1.0:
            self._next += 1
            return
        skip = math.floor(math.log(self._uniform()) / math.log1p(-self._w))
        self._next += skip + 1 if self.offered >= self.size else skip

    def offer(self) -> int:
        """Count one more stream item; return the slot it replaces, or -1 to drop it."""
        index = self.offered
        self.offered += 1
        if index < self.size:
            return index
        if index < self._next:
            return -1
        slot = self._rng.randrange(self.size)
        self._advance()
        return slot


def sample_uniref50(
    path: str | os.PathLike[str],
    sample_size: int,
    max_length: int,
    seed: int,
    logger: logging.Logger | None = None,
) -> pa.Table:
    """A seeded uniform sample of the records with length <= ``max_length``, in one pass.

    Records with letters ESM has no token for are skipped and counted. Rows come back in
    file order. Memory depends on ``sample_size``, not on the file: ids are not
    remembered, so a repeated id is caught (and dropped) only when it is drawn while its
    first record is in the sample (UniRef50 ids are unique by construction). While the
    sample fills, a repeated id takes no place, so the sample is full whenever the file
    has ``sample_size`` distinct eligible ids. The first ids of each reason to drop a
    record are logged with the counts.
    """
    logger = logger or get_logger()
    allowed = esm_residue_letters().encode()
    reservoir = Reservoir(sample_size, seed)
    kept: list[tuple[int, bytes, bytes] | None] = [None] * sample_size  # (order, id, sequence)
    slot_of: dict[bytes, int] = {}
    seen = too_long = invalid = duplicates = drawn_duplicates = nonascii = 0
    bad_letters: Counter[str] = Counter()
    dropped: dict[str, list[str]] = {"too long": [], "letters": [], "repeated": []}
    progress = Progress(f"sample {Path(path).name}", None, "records", logger, interval=30.0)

    for batch in _record_batches(path):
        seen += len(batch)
        for index, (header, sequence) in enumerate(batch):
            if not header.isascii():
                nonascii += 1
            if len(sequence) > max_length:
                too_long += 1
                _name_dropped(dropped["too long"], header)
                continue
            outside = sequence.translate(None, allowed)
            if outside:
                invalid += 1
                bad_letters.update(outside.decode("latin-1"))
                _name_dropped(dropped["letters"], header)
                continue
            filling = reservoir.offered < sample_size
            slot = -1 if filling else reservoir.offer()
            if not filling and slot < 0:
                continue
            record_id = _record_id(header, path, seen - len(batch) + index + 1)
            if record_id in slot_of:  # its first record is in the sample: keep that one
                duplicates += 1
                drawn_duplicates += not filling
                _name_dropped(dropped["repeated"], header)
                continue
            slot = reservoir.offer() if filling else slot
            previous = kept[slot]
            if previous is not None:
                del slot_of[previous[1]]
            kept[slot] = (reservoir.offered, record_id, sequence)  # offered: file order
            slot_of[record_id] = slot
        progress.update(len(batch))
    progress.finish()
    rows = sorted(item for item in kept if item is not None)
    counts = {
        "seen": seen,
        "eligible": reservoir.offered - drawn_duplicates,
        "kept": len(rows),
        "too_long": too_long,
        "invalid_letters": invalid,
        "repeated_ids": duplicates,
        "nonascii_headers": nonascii,
    }
    _log_sample(path, counts, max_length, sample_size, bad_letters, logger)
    named = "; ".join(f"{why}: {', '.join(ids)}" for why, ids in dropped.items() if ids)
    if named:
        logger.info("%s: first dropped ids (up to %d per reason): %s", path, MAX_NAMED, named)
    return _sample_table(rows, counts)


MAX_NAMED = 5


def _name_dropped(names: list[str], header: bytes) -> None:
    """Remember the id of a dropped record, for the first ``MAX_NAMED`` of a reason."""
    if len(names) < MAX_NAMED:
        words = header.split(None, 1)
        names.append(words[0].decode("utf-8", "replace") if words else "(empty header)")


def _record_id(header: bytes, path: str | os.PathLike[str], number: int) -> bytes:
    words = header.split(None, 1)
    if not words:
        raise InputError(f"{path}: record #{number} has an empty header")
    return words[0]


def _log_sample(
    path: str | os.PathLike[str],
    counts: dict[str, int],
    max_length: int,
    sample_size: int,
    bad_letters: Counter[str],
    logger: logging.Logger,
) -> None:
    logger.info(
        "%s: seen %d records, eligible %d, kept %d; skipped %d longer than %d, "
        "%d with letters outside the ESM alphabet%s, %d repeated ids; "
        "%d headers with non-ASCII bytes",
        path,
        counts["seen"],
        counts["eligible"],
        counts["kept"],
        counts["too_long"],
        max_length,
        counts["invalid_letters"],
        f" ({dict(bad_letters.most_common(10))})" if bad_letters else "",
        counts["repeated_ids"],
        counts["nonascii_headers"],
    )
    if counts["eligible"] < sample_size:
        logger.warning(
            "%s: only %d eligible records for a sample of %d; all kept",
            path,
            counts["eligible"],
            sample_size,
        )


def _sample_table(rows: list[tuple[int, bytes, bytes]], counts: dict[str, int]) -> pa.Table:
    """The sample's rows (in file order) with the pass's counts as ``protsae.*`` metadata."""
    sequences = [seq.decode("ascii") for _, _, seq in rows]
    table = pa.table(
        {
            "id": [rid.decode("utf-8", "replace") for _, rid, _ in rows],
            "sequence": sequences,
            "length": pa.array([len(s) for s in sequences], pa.int32()),
        },
        schema=UNIREF50_SCHEMA,
    )
    return table.replace_schema_metadata({f"protsae.{k}": str(v) for k, v in counts.items()})
