"""Swiss-Prot entries with their InterPro accessions, parsed by Biopython behind a guard.

The guard names the file and record when the input is broken (a missing ``//``, a record
Biopython cannot read). An entry without a sequence, or with letters ESM-2 has no token for
(bytes that are not UTF-8 included), is an error naming its accession and line, or with
``invalid="skip"`` is left out and named in the log. A file without entries is an error:
the evaluation set would be empty.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pyarrow as pa

from protsae.progress import Progress, get_logger
from protsae.sequences.common import InputError, esm_residue_letters, open_text
from protsae.sequences.features import FeatureError, FeatureTableParser, features_table
from protsae.sequences.interpro import read_entry_list

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


class _GuardedLines:
    """Feeds Biopython's Swiss-Prot parser and notices records without ``//``.

    Biopython reports a missing terminator as an unknown ``ID`` keyword or an
    unexpected end of stream; this names the file, the record and where it began.
    With ``on_feature_error`` set, ``FT`` lines go to this record's own
    :class:`FeatureTableParser` (``self.features``) instead of Biopython.
    """

    def __init__(
        self,
        fh: IO[str],
        path: str | os.PathLike[str],
        on_feature_error: Callable[[FeatureError, _GuardedLines], None] | None = None,
    ) -> None:
        self.fh = fh
        self.path = path
        self.line_number = 0
        self.record_number = 0
        self.record_start = 0
        self.accession: str | None = None
        self.in_record = False
        self.on_feature_error = on_feature_error
        self.features: FeatureTableParser | None = None

    def _feature_error(self, error: FeatureError) -> None:
        assert self.on_feature_error is not None
        self.on_feature_error(error, self)

    def read(self, size: int = -1) -> str:  # Biopython probes read(0) to tell text from bytes
        return "" if size == 0 else self.fh.read(size)

    def __iter__(self) -> _GuardedLines:
        return self

    def describe(self) -> str:
        name = f"accession {self.accession}" if self.accession else "no accession read"
        return f"record #{self.record_number} ({name}, from line {self.record_start})"

    def __next__(self) -> str:
        line = self.fh.readline()
        while self.features is not None and line.startswith("FT") and self.in_record:
            self.line_number += 1
            self.features.add(line, self.line_number)
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
            if self.on_feature_error is not None:
                self.features = FeatureTableParser(self._feature_error)
        elif line.startswith("AC   ") and self.accession is None:
            self.accession = line[5:].split(";")[0].strip() or None
        elif line.startswith("//"):
            self.in_record = False
        return line


def iter_swissprot(path: str | os.PathLike[str]) -> Iterator:
    """Biopython ``SwissProt.Record`` objects, with errors that name the file and the record."""
    for record, _, _ in _records_and_lines(path):
        yield record


def _records_and_lines(
    path: str | os.PathLike[str],
    on_feature_error: Callable[[FeatureError, _GuardedLines], None] | None = None,
) -> Iterator[tuple]:
    """(Biopython record, line number where it starts, the guard) for each entry of the file.

    With ``on_feature_error``, the guard's ``features`` holds the record's own FT parser.
    """
    from Bio import SwissProt

    with open_text(path) as fh:
        lines = _GuardedLines(fh, path, on_feature_error)
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
            yield record, lines.record_start, lines


MAX_NAMED = 10


def _sequence_problem(sequence: str, allowed: frozenset[str]) -> str | None:
    """Why a sequence cannot go through ESM-2, or None."""
    if not sequence:
        return "has no sequence (no SQ block)"
    outside = sorted(set(sequence) - allowed)
    if not outside:
        return None
    if "\ufffd" in outside:
        return "has bytes that are not UTF-8 in its sequence"
    return f"has letters outside the ESM-2 alphabet in its sequence: {''.join(outside)!r}"


def parse_swissprot(
    dat_path: str | os.PathLike[str],
    entry_list_path: str | os.PathLike[str],
    logger: logging.Logger | None = None,
    invalid: str = "error",
) -> pa.Table:
    """One row per Swiss-Prot entry with its InterPro accessions and the Family ones among them.

    ``invalid`` says what an entry ESM-2 cannot read does: ``"error"`` (an
    :class:`InputError` naming it) or ``"skip"`` (left out, named in the log).
    """
    return parse_swissprot_with_features(dat_path, entry_list_path, logger, invalid)[0]


def _log_named(logger: logging.Logger, what: str, named: list[str]) -> None:
    """A warning with how many, naming the first ``MAX_NAMED``; nothing when none."""
    if named:
        more = "; ..." if len(named) > MAX_NAMED else ""
        logger.warning(what + ": %s%s", len(named), "; ".join(named[:MAX_NAMED]), more)


def _log_features(
    logger: logging.Logger, dat_path: str | os.PathLike[str], rows: list[dict], skipped: list[str]
) -> None:
    _log_named(logger, f"{dat_path}: left out %d features that cannot be read", skipped)
    if not rows:
        logger.warning(
            "%s: no FT lines: the features table is empty, so every concepts table will be",
            dat_path,
        )
        return
    logger.info(
        "%s: %d features (%d with a residue concept) on %d entries",
        dat_path,
        len(rows),
        sum(1 for row in rows if row["concept"] is not None),
        len({row["accession"] for row in rows}),
    )


def parse_swissprot_with_features(
    dat_path: str | os.PathLike[str],
    entry_list_path: str | os.PathLike[str],
    logger: logging.Logger | None = None,
    invalid: str = "error",
) -> tuple[pa.Table, pa.Table]:
    """``swissprot`` and ``swissprot_features`` (:mod:`protsae.sequences.features`) in one pass.

    ``invalid`` also covers the feature table: an FT line that cannot be read, or a location
    past the sequence, stops the parse naming the entry and the line, or with ``"skip"`` its
    feature is left out and named in the log.
    """
    if invalid not in ("error", "skip"):
        raise ValueError(f"invalid must be 'error' or 'skip', got {invalid!r}")
    logger = logger or get_logger()
    entries = read_entry_list(entry_list_path)
    columns: dict[str, list] = {name: [] for name in SWISSPROT_SCHEMA.names}
    feature_rows: list[dict] = []
    unknown: set[str] = set()
    skipped: list[str] = []
    skipped_features: list[str] = []

    def on_feature_error(error: FeatureError, guard: _GuardedLines) -> None:
        where = f"entry {guard.accession} (record #{guard.record_number}) FT {error}"
        if invalid == "error":
            raise InputError(
                f"{dat_path}: {where}; set sequences.swissprot_invalid: skip to leave such "
                "features out"
            )
        skipped_features.append(where)

    allowed = frozenset(esm_residue_letters())
    progress = Progress(f"parse {Path(dat_path).name}", None, "entries", logger, interval=30.0)
    for record, line, guard in _records_and_lines(dat_path, on_feature_error):
        if not record.accessions:
            raise InputError(f"{dat_path}: entry {record.entry_name!r} has no AC line")
        problem = _sequence_problem(record.sequence, allowed)
        if problem:
            where = f"entry {record.accessions[0]} (line {line}) {problem}"
            if invalid == "error":
                raise InputError(
                    f"{dat_path}: {where}; set sequences.swissprot_invalid: skip to leave such entries out"
                )
            skipped.append(where)
            continue
        feature_rows.extend(guard.features.rows(record.accessions[0], len(record.sequence)))
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
    _log_named(logger, f"{dat_path}: skipped %d entries ESM-2 cannot read", skipped)
    if not columns["accession"]:
        raise InputError(
            f"{dat_path}: no Swiss-Prot entries"
            + (f" left after skipping {len(skipped)}" if skipped else "")
            + "; the evaluation set would be empty"
        )
    features = features_table(feature_rows)
    _log_features(logger, dat_path, feature_rows, skipped_features)
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
    return table, features
