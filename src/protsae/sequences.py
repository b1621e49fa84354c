"""The sequences stage: FASTA streaming, the UniRef50 sample, Swiss-Prot entries, MMseqs2 clusters.

UniRef50 is ~12 GB gzipped, so it is read once, block by block, and sampled with a
seeded reservoir whose memory depends on the sample size only. Swiss-Prot is parsed
with Biopython behind a guard that names the file and record when the input is broken.
Clustering shells out to ``mmseqs easy-cluster`` and splits clusters train/test.
"""

from __future__ import annotations

import functools
import gzip
import logging
import math
import os
import queue
import random
import shutil
import subprocess
import tempfile
import threading
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple

import pyarrow as pa

from protsae.progress import Progress, get_logger

GZIP_MAGIC = b"\x1f\x8b"
BLOCK_BYTES = 1 << 20
_WHITESPACE = b" \t\r\n\v\f"

UNIREF50_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("sequence", pa.string()),
        pa.field("length", pa.int32()),
    ]
)
SWISSPROT_SCHEMA = pa.schema(
    [
        pa.field("accession", pa.string()),
        pa.field("entry_name", pa.string()),
        pa.field("sequence", pa.string()),
        pa.field("length", pa.int32()),
        pa.field("interpro", pa.list_(pa.string())),
        pa.field("families", pa.list_(pa.string())),
    ]
)
CLUSTERS_SCHEMA = pa.schema(
    [
        pa.field("accession", pa.string()),
        pa.field("cluster", pa.string()),
        pa.field("split", pa.string()),
    ]
)
ENTRY_LIST_HEADER = ["ENTRY_AC", "ENTRY_TYPE", "ENTRY_NAME"]


class InputError(ValueError):
    """An input file is malformed; the message names the file, the record and the problem."""


@functools.cache
def esm_residue_letters() -> str:
    """The 25 residue letters ESM-2 has tokens for (its alphabet's standard tokens minus gaps)."""
    from esm.data import Alphabet  # deferred: importing esm imports torch

    tokens = Alphabet.from_architecture("ESM-1b").standard_toks
    return "".join(t for t in tokens if len(t) == 1 and t.isalpha())


def open_binary(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open plain or gzipped input, told apart by the gzip magic bytes rather than the name."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == GZIP_MAGIC:
        return gzip.open(path, "rb")
    return open(path, "rb")


# ---------------------------------------------------------------------------------------
# FASTA


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


def _read_ahead(path: str | os.PathLike[str], depth: int = 4) -> Iterator[bytes]:
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
            with open_binary(path) as fh:
                while not stop.is_set():
                    block = fh.read(BLOCK_BYTES)
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


# Upper-cases and drops line breaks in one C-level pass over a record's sequence lines.
_UPPER = bytes.maketrans(b"abcdefghijklmnopqrstuvwxyz", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _record_batches(path: str | os.PathLike[str]) -> Iterator[list[tuple[bytes, bytes]]]:
    """Yield lists of ``(header, cleaned sequence)`` as bytes, one list per block read.

    Reads blocks and cuts them at the last ``\\n>`` so records are split in C rather
    than line by line in Python; memory holds a block or two plus the longest record.
    Every piece handed to ``split`` after the first starts right after a header's ``>``.
    Sequences come back upper-cased without line breaks or a trailing stop ``*``.
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
                    raise InputError(f"{path}: sequence data before the first '>' header")
                return []
            data = data[start + 1 :]
        batch = []
        for chunk in data.split(b"\n>"):
            header, _, body = chunk.partition(b"\n")
            sequence = body.translate(_UPPER, _WHITESPACE).rstrip(b"*")
            if not sequence:
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
    path: str | os.PathLike[str],
    stats: FastaStats | None = None,
    unique_ids: bool = True,
    logger: logging.Logger | None = None,
) -> Iterator[FastaRecord]:
    """Stream ``(id, header, sequence)`` records from a plain or gzipped FASTA file.

    ``id`` is the header's first word; sequences are upper-cased and lose a trailing
    ``*``. Non-ASCII header bytes are decoded leniently and counted. With
    ``unique_ids`` a repeated id is dropped (the first record wins) and counted; that
    keeps a set of all ids, so switch it off for inputs too large to remember.
    """
    logger = logger or get_logger()
    stats = stats if stats is not None else FastaStats()
    seen: set[str] = set()
    records = (record for batch in _record_batches(path) for record in batch)
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
        stats.records += 1
        yield FastaRecord(record_id, header, raw_sequence.decode("latin-1"))
    if stats.duplicates or stats.nonascii_headers:
        logger.warning(
            "%s: %d duplicate ids dropped, %d headers with non-ASCII bytes",
            path,
            stats.duplicates,
            stats.nonascii_headers,
        )


# ---------------------------------------------------------------------------------------
# Reservoir sampling


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
    first record is in the sample (UniRef50 ids are unique by construction).
    """
    logger = logger or get_logger()
    allowed = esm_residue_letters().encode()
    reservoir = Reservoir(sample_size, seed)
    kept: list[tuple[int, bytes, bytes] | None] = [None] * sample_size  # (order, id, sequence)
    slot_of: dict[bytes, int] = {}
    seen = too_long = invalid = duplicates = nonascii = 0
    bad_letters: Counter[str] = Counter()
    progress = Progress(f"sample {Path(path).name}", None, "records", logger, interval=30.0)

    for batch in _record_batches(path):
        seen += len(batch)
        for header, sequence in batch:
            if not header.isascii():
                nonascii += 1
            if len(sequence) > max_length:
                too_long += 1
                continue
            outside = sequence.translate(None, allowed)
            if outside:
                invalid += 1
                bad_letters.update(outside.decode("latin-1"))
                continue
            slot = reservoir.offer()
            if slot < 0:
                continue
            words = header.split(None, 1)
            if not words:
                number = seen - len(batch) + batch.index((header, sequence)) + 1
                raise InputError(f"{path}: record #{number} has an empty header")
            record_id = words[0]
            if record_id in slot_of:  # its first record is in the sample: keep that one
                duplicates += 1
                continue
            previous = kept[slot]
            if previous is not None:
                del slot_of[previous[1]]
            kept[slot] = (reservoir.offered, record_id, sequence)  # offered: file order
            slot_of[record_id] = slot
        progress.update(len(batch))
    progress.finish()
    rows = sorted(item for item in kept if item is not None)
    eligible = reservoir.offered - duplicates
    logger.info(
        "%s: seen %d records, eligible %d, kept %d; skipped %d longer than %d, "
        "%d with letters outside the ESM alphabet%s, %d repeated ids; "
        "%d headers with non-ASCII bytes",
        path,
        seen,
        eligible,
        len(rows),
        too_long,
        max_length,
        invalid,
        f" ({dict(bad_letters.most_common(10))})" if bad_letters else "",
        duplicates,
        nonascii,
    )
    if eligible < sample_size:
        logger.warning(
            "%s: only %d eligible records for a sample of %d; all kept", path, eligible, sample_size
        )
    sequences = [seq.decode("ascii") for _, _, seq in rows]
    table = pa.table(
        {
            "id": [rid.decode("utf-8", "replace") for _, rid, _ in rows],
            "sequence": sequences,
            "length": pa.array([len(s) for s in sequences], pa.int32()),
        },
        schema=UNIREF50_SCHEMA,
    )
    counts = {
        "seen": seen,
        "eligible": eligible,
        "kept": len(rows),
        "too_long": too_long,
        "invalid_letters": invalid,
        "repeated_ids": duplicates,
        "nonascii_headers": nonascii,
    }
    return table.replace_schema_metadata({f"protsae.{k}": str(v) for k, v in counts.items()})


# ---------------------------------------------------------------------------------------
# Swiss-Prot and InterPro


def _open_text(path: str | os.PathLike[str]) -> IO[str]:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == GZIP_MAGIC:
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def read_entry_list(path: str | os.PathLike[str]) -> dict[str, tuple[str, str]]:
    """InterPro's ``entry.list``: accession -> (ENTRY_TYPE, ENTRY_NAME)."""
    entries: dict[str, tuple[str, str]] = {}
    with _open_text(path) as fh:
        header = fh.readline().rstrip("\r\n")
        if header.split("\t")[:3] != ENTRY_LIST_HEADER:
            raise InputError(
                f"{path}: line 1 must be the tab-separated header "
                f"{' '.join(ENTRY_LIST_HEADER)}, found {header[:80]!r}"
            )
        for number, line in enumerate(fh, start=2):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) < 3 or not fields[0]:
                raise InputError(
                    f"{path}: line {number}: expected ENTRY_AC, ENTRY_TYPE and ENTRY_NAME "
                    f"separated by tabs, found {line.strip()[:80]!r}"
                )
            entries.setdefault(fields[0], (fields[1], fields[2]))
    return entries


class _GuardedLines:
    """Feeds Biopython's Swiss-Prot parser and notices records without ``//``.

    Biopython reports a missing terminator as an unknown ``ID`` keyword or an
    unexpected end of stream; this names the file, the record and where it began.
    """

    def __init__(self, fh: IO[str], path: str | os.PathLike[str]) -> None:
        self.fh = fh
        self.path = path
        self.line_number = 0
        self.record_number = 0
        self.record_start = 0
        self.accession: str | None = None
        self.in_record = False

    def read(self, size: int = -1) -> str:  # Biopython probes read(0) to tell text from bytes
        return "" if size == 0 else self.fh.read(size)

    def __iter__(self) -> _GuardedLines:
        return self

    def describe(self) -> str:
        name = f"accession {self.accession}" if self.accession else "no accession read"
        return f"record #{self.record_number} ({name}, from line {self.record_start})"

    def __next__(self) -> str:
        line = self.fh.readline()
        if not line:
            if self.in_record:
                raise InputError(
                    f"{self.path}: {self.describe()} has no '//' terminator before the end of file"
                )
            raise StopIteration
        self.line_number += 1
        if line.startswith("ID   "):
            if self.in_record:
                raise InputError(
                    f"{self.path}: {self.describe()} has no '//' terminator before the next "
                    f"ID line (line {self.line_number})"
                )
            self.in_record = True
            self.record_number += 1
            self.record_start = self.line_number
            self.accession = None
        elif line.startswith("AC   ") and self.accession is None:
            self.accession = line[5:].split(";")[0].strip() or None
        elif line.startswith("//"):
            self.in_record = False
        return line


def iter_swissprot(path: str | os.PathLike[str]) -> Iterator:
    """Biopython ``SwissProt.Record`` objects, with errors that name the file and the record."""
    from Bio import SwissProt

    with _open_text(path) as fh:
        lines = _GuardedLines(fh, path)
        records = SwissProt.parse(lines)
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except InputError:
                raise
            except Exception as exc:  # Biopython raises ValueError, AssertionError, its own types
                raise InputError(
                    f"{path}: cannot parse {lines.describe()} at line {lines.line_number}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            yield record


def parse_swissprot(
    dat_path: str | os.PathLike[str],
    entry_list_path: str | os.PathLike[str],
    logger: logging.Logger | None = None,
) -> pa.Table:
    """One row per Swiss-Prot entry with its InterPro accessions and the Family ones among them."""
    logger = logger or get_logger()
    entries = read_entry_list(entry_list_path)
    columns: dict[str, list] = {name: [] for name in SWISSPROT_SCHEMA.names}
    unknown: set[str] = set()
    progress = Progress(f"parse {Path(dat_path).name}", None, "entries", logger, interval=30.0)
    for record in iter_swissprot(dat_path):
        if not record.accessions:
            raise InputError(f"{dat_path}: entry {record.entry_name!r} has no AC line")
        interpro = [ref[1] for ref in record.cross_references if ref[0] == "InterPro"]
        unknown.update(acc for acc in interpro if acc not in entries)
        columns["accession"].append(record.accessions[0])
        columns["entry_name"].append(record.entry_name)
        columns["sequence"].append(record.sequence)
        columns["length"].append(len(record.sequence))
        columns["interpro"].append(interpro)
        columns["families"].append(
            [acc for acc in interpro if entries.get(acc, ("",))[0] == "Family"]
        )
        progress.update(1)
    table = pa.table(columns, schema=SWISSPROT_SCHEMA)
    with_families = sum(1 for f in columns["families"] if f)
    logger.info(
        "%s: %d entries, %d with an InterPro family; %d InterPro accessions missing from %s",
        dat_path,
        table.num_rows,
        with_families,
        len(unknown),
        entry_list_path,
    )
    return table


# ---------------------------------------------------------------------------------------
# MMseqs2 clustering and the train/test split


def _mmseqs() -> str:
    binary = shutil.which("mmseqs")
    if binary is None:
        raise RuntimeError(
            "mmseqs (MMseqs2) was not found on PATH; install it, e.g. `apt-get install mmseqs2` "
            "(Debian/Ubuntu) or `conda install -c bioconda mmseqs2`"
        )
    return binary


def split_clusters(representatives: list[str], test_fraction: float, seed: int) -> set[str]:
    """The representatives whose clusters form the test split (seeded, exact count).

    With at least two clusters and 0 < test_fraction < 1 both splits get one or more.
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be within [0, 1], got {test_fraction}")
    reps = sorted(set(representatives))
    n_test = round(test_fraction * len(reps))
    if len(reps) >= 2 and 0.0 < test_fraction < 1.0:
        n_test = min(max(n_test, 1), len(reps) - 1)
    return set(random.Random(seed).sample(reps, n_test))


def cluster_sequences(
    table: pa.Table,
    min_seq_id: float = 0.3,
    coverage: float = 0.9,
    sensitivity: float = 8.0,
    max_length: int = 1022,
    threads: int = 1,
    test_fraction: float = 0.1,
    seed: int = 0,
    workdir: str | os.PathLike[str] | None = None,
    logger: logging.Logger | None = None,
) -> pa.Table:
    """Cluster ``accession``/``sequence`` rows with MMseqs2 and split clusters train/test.

    Entries longer than ``max_length`` are left out. Each row names its cluster's
    representative accession; a cluster's members share its split. MMseqs2's
    temporary files live in a directory under ``workdir`` (default: the system's), removed
    afterwards.
    """
    logger = logger or get_logger()
    accessions = table.column("accession").to_pylist()
    sequences = table.column("sequence").to_pylist()
    repeated = [acc for acc, n in Counter(accessions).items() if n > 1]
    if repeated:
        raise InputError(f"accessions occur more than once: {repeated[:5]}")
    chosen = [(a, s) for a, s in zip(accessions, sequences, strict=True) if len(s) <= max_length]
    logger.info(
        "clustering %d of %d entries (%d longer than %d left out)",
        len(chosen),
        len(accessions),
        len(accessions) - len(chosen),
        max_length,
    )
    if not chosen:
        return CLUSTERS_SCHEMA.empty_table()
    binary = _mmseqs()
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mmseqs-", dir=workdir) as tmp:
        tmpdir = Path(tmp)
        fasta = tmpdir / "input.fasta"
        fasta.write_text("".join(f">{a}\n{s}\n" for a, s in chosen))
        command = [
            binary,
            "easy-cluster",
            str(fasta),
            str(tmpdir / "out"),
            str(tmpdir / "tmp"),
            "--min-seq-id",
            str(min_seq_id),
            "-c",
            str(coverage),
            "-s",
            str(sensitivity),
            "--max-seqs",
            "1000000",
            "--cluster-mode",
            "1",
            "--threads",
            str(threads),
        ]
        logger.info("running %s", " ".join(command[1:2] + command[5:]))
        run = subprocess.run(command, capture_output=True, text=True, errors="replace")
        if run.returncode != 0:
            tail = (run.stdout + run.stderr).strip().splitlines()[-20:]
            raise RuntimeError(
                f"mmseqs easy-cluster failed with exit status {run.returncode}; output ends:\n"
                + "\n".join(tail)
            )
        representative: dict[str, str] = {}
        tsv = tmpdir / "out_cluster.tsv"
        with open(tsv) as fh:
            for number, line in enumerate(fh, start=1):
                fields = line.split()
                if len(fields) != 2:
                    raise InputError(f"{tsv}: line {number}: expected 2 columns, found {line!r}")
                representative[fields[1]] = fields[0]
    missing = [a for a, _ in chosen if a not in representative]
    if missing:
        raise RuntimeError(f"mmseqs output lacks {len(missing)} entries, e.g. {missing[:5]}")
    test = split_clusters(list(representative.values()), test_fraction, seed)
    members = [a for a, _ in chosen]
    clusters = [representative[a] for a in members]
    splits = ["test" if c in test else "train" for c in clusters]
    logger.info(
        "%d entries in %d clusters; %d test clusters (%d entries), seed %d",
        len(members),
        len(set(clusters)),
        len(test),
        splits.count("test"),
        seed,
    )
    return pa.table(
        {"accession": members, "cluster": clusters, "split": splits}, schema=CLUSTERS_SCHEMA
    )
