"""Readers for the probe data sets in their published formats (method.md, "Linear probes").

- secondary structure: FLIP ``splits.zip`` (``sequences.fasta``, ``sampled.fasta`` H/E/C per
  residue, ``mask.fasta`` 0/1 per residue, headers ``>id SET=train|test VALIDATION=True|False``)
  or TAPE ``secondary_structure.tar.gz`` (JSON lists with ``primary``, ``ss3`` 0=H 1=E 2=C,
  ``valid_mask``), told apart by the file's magic bytes;
- localization: DeepLoc 1.0 FASTA (``>ACC Location-M|S|U [test]``);
- thermostability: FLIP meltome ``splits.zip`` (CSV ``sequence,target,set,validation``);
- expression: a CSV with a ``Status`` column (Pass / Fail...) and a sequence column.

Every reader raises :class:`~protsae.sequences.InputError` naming the file, the record and the
problem for a bad label, and counts what it drops.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tarfile
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from protsae.filetypes import describe
from protsae.probes.tasks import (
    ProbeRecord,
    TaskData,
    bad_residues,
    clean_sequence,
)
from protsae.sequences import InMemoryFasta, InputError, read_fasta

SS_CLASSES = ["H", "E", "C"]
DEEPLOC_LOCATIONS = [
    "Nucleus",
    "Cytoplasm",
    "Extracellular",
    "Mitochondrion",
    "Cell.membrane",
    "Endoplasmic.reticulum",
    "Plastid",
    "Golgi.apparatus",
    "Lysosome/Vacuole",
    "Peroxisome",
]
DEEPLOC_DROPPED = "Cytoplasm-Nucleus"
MEMBRANE_CODES = frozenset("MSU")
EXPRESSION_CLASSES = ["not_expressed", "expressed"]
MELTOME_SPLITS = ("mixed_split", "human", "human_cell")
TAPE_TEST_SETS = ("cb513", "ts115", "casp12")
_SS_CODE = np.full(256, -1, np.int8)
for _i, _c in enumerate(SS_CLASSES):
    _SS_CODE[ord(_c)] = _i


def _fasta_pairs(source: str | os.PathLike[str] | InMemoryFasta) -> list[tuple[str, str]]:
    """(header, sequence) of every record, in order, through the one FASTA reader: repeated
    ids kept, an empty sequence passed on as "" (the task readers name the record)."""
    records = read_fasta(source, unique_ids=False, allow_empty=True)
    return [(record.header, record.sequence) for record in records]


def _in_member(path: str | os.PathLike[str], member: str) -> str:
    """Where a record of an archive member is: ``<archive>, member <name>``."""
    return f"{path}, member {member}"


def _open_zip(path: Path, what: str) -> zipfile.ZipFile:
    """The archive, or an :class:`InputError` saying what the file is instead."""
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        found = describe(path) or "text"
        raise InputError(f"{path}: not {what} (a zip archive); the file is {found}") from err


def _usable(sequence: str, record: str, where: str, counts: Counter) -> bool:
    if not sequence:
        raise InputError(f"{where}: record {record!r}: empty sequence")
    if bad_residues(sequence):
        counts["dropped_bad_residues"] += 1
        return False
    return True


# --------------------------------------------------------------------------- secondary structure


def _header_fields(header: str) -> tuple[str, dict[str, str]]:
    name, *rest = header.split()
    return name, dict(part.split("=", 1) for part in rest if "=" in part)


def _flip_member(archive: zipfile.ZipFile, name: str, path: Path) -> tuple[str, bytes]:
    matches = [m for m in archive.namelist() if m.rsplit("/", 1)[-1] == name]
    if len(matches) != 1:
        raise InputError(
            f"{path}: expected one member named {name} in the FLIP splits.zip, found "
            f"{len(matches)} (members: {', '.join(archive.namelist()) or 'none'})"
        )
    return matches[0], archive.read(matches[0])


def _flip_split(fields: dict[str, str], where: str, record: str) -> str:
    split, validation = fields.get("SET"), fields.get("VALIDATION", "False")
    if split not in ("train", "test") or validation not in ("True", "False"):
        raise InputError(
            f"{where}: record {record!r}: header needs SET=train|test and VALIDATION=True|False"
        )
    return "valid" if split == "train" and validation == "True" else split


def read_flip_secondary_structure(path: str | os.PathLike[str]) -> TaskData:
    """FLIP's secondary-structure ``splits.zip``: the three FASTA files, ids in the same order."""
    path = Path(path)
    with _open_zip(path, "FLIP's secondary-structure splits.zip") as archive:
        files = {
            name: _flip_member(archive, f"{name}.fasta", path)
            for name in ("sequences", "sampled", "mask")
        }
    parsed = {
        name: _fasta_pairs(InMemoryFasta(data, _in_member(path, member)))
        for name, (member, data) in files.items()
    }
    ids = {name: [_header_fields(h)[0] for h, _ in recs] for name, recs in parsed.items()}
    for name in ("sampled", "mask"):
        if ids[name] != ids["sequences"]:
            raise InputError(
                f"{path}:{files[name][0]}: record ids differ from {files['sequences'][0]} "
                "(the three files must list the same chains in the same order)"
            )
    data = TaskData("secondary_structure", [], list(SS_CLASSES))
    for (seq_header, raw), (lab_header, labels), (mask_header, mask) in zip(
        parsed["sequences"], parsed["sampled"], parsed["mask"], strict=True
    ):
        data.counts["read"] += 1
        name, fields = _header_fields(seq_header)
        for header in (lab_header, mask_header):
            fields.update(_header_fields(header)[1])
        split = _flip_split(fields, _in_member(path, files["sampled"][0]), name)
        sequence = clean_sequence(raw)
        residue_labels = _ss_letters(
            labels, len(sequence), _in_member(path, files["sampled"][0]), name
        )
        resolved = _mask_digits(mask, len(sequence), _in_member(path, files["mask"][0]), name)
        if _usable(sequence, name, _in_member(path, files["sequences"][0]), data.counts):
            data.records.append(ProbeRecord(name, sequence, split, None, residue_labels, resolved))
    return data


def _ss_letters(labels: str, length: int, where: str, record: str) -> np.ndarray:
    labels = labels.strip().upper()
    if len(labels) != length:
        raise InputError(
            f"{where}: record {record!r}: label line has {len(labels)} letters, "
            f"the sequence has {length} residues"
        )
    bad = set(labels) - set(SS_CLASSES)
    if bad:
        raise InputError(
            f"{where}: record {record!r}: label letters {''.join(sorted(bad))!r}, expected H, E or C"
        )
    codes = np.frombuffer(labels.encode("ascii"), np.uint8)
    return _SS_CODE[codes]


def _mask_digits(mask: str, length: int, where: str, record: str) -> np.ndarray:
    mask = mask.strip()
    if len(mask) != length:
        raise InputError(
            f"{where}: record {record!r}: mask has {len(mask)} digits, "
            f"the sequence has {length} residues"
        )
    if set(mask) - {"0", "1"}:
        raise InputError(f"{where}: record {record!r}: mask holds characters other than 0 and 1")
    return np.array([c == "1" for c in mask], dtype=bool)


def _tape_member(names: list[str], suffix: str, path: Path) -> str:
    matches = [n for n in names if n.endswith(f"_{suffix}.json")]
    if len(matches) != 1:
        raise InputError(
            f"{path}: expected one member ending in _{suffix}.json, found {len(matches)}"
        )
    return matches[0]


def read_tape_secondary_structure(
    path: str | os.PathLike[str], test_set: str = "cb513"
) -> TaskData:
    """TAPE's ``secondary_structure.tar.gz``: train, valid and ``test_set`` JSON files."""
    path = Path(path)
    if test_set not in TAPE_TEST_SETS:
        raise ValueError(f"TAPE test set must be one of {TAPE_TEST_SETS}, got {test_set!r}")
    data = TaskData("secondary_structure", [], list(SS_CLASSES))
    with tarfile.open(path, "r:*") as archive:
        names = [m.name for m in archive.getmembers() if m.isfile()]
        for split, suffix in (("train", "train"), ("valid", "valid"), ("test", test_set)):
            member = _tape_member(names, suffix, path)
            where = _in_member(path, member)
            try:
                entries = json.load(archive.extractfile(member))
            except json.JSONDecodeError as err:
                raise InputError(f"{where}: not valid JSON ({err})") from None
            for index, entry in enumerate(entries):
                data.counts["read"] += 1
                record = _tape_record(entry, split, where, index, data.counts)
                if record is not None:
                    data.records.append(record)
    return data


def _tape_record(
    entry: dict, split: str, where: str, index: int, counts: Counter
) -> ProbeRecord | None:
    name = str(entry.get("id", f"{split}-{index}"))
    try:
        primary, ss3, valid = entry["primary"], entry["ss3"], entry["valid_mask"]
    except (KeyError, TypeError):
        raise InputError(f"{where}: record {name!r}: needs primary, ss3 and valid_mask") from None
    sequence = clean_sequence(primary if isinstance(primary, str) else "".join(primary))
    if len(ss3) != len(sequence):
        raise InputError(
            f"{where}: record {name!r}: ss3 has {len(ss3)} labels, the sequence has {len(sequence)} residues"
        )
    if len(valid) != len(sequence):
        raise InputError(
            f"{where}: record {name!r}: valid_mask has {len(valid)} entries, "
            f"the sequence has {len(sequence)} residues"
        )
    labels = np.asarray(ss3)
    if labels.size and (
        labels.min() < 0 or labels.max() > 2 or not np.issubdtype(labels.dtype, np.integer)
    ):
        raise InputError(f"{where}: record {name!r}: ss3 labels must be 0 (H), 1 (E) or 2 (C)")
    if not _usable(sequence, name, where, counts):
        return None
    return ProbeRecord(name, sequence, split, None, labels.astype(np.int8), np.asarray(valid, bool))


def read_secondary_structure(path: str | os.PathLike[str], test_set: str = "cb513") -> TaskData:
    """A FLIP ``splits.zip`` or a TAPE tarball, told apart by the file's first bytes."""
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic.startswith(b"PK"):
        return read_flip_secondary_structure(path)
    if magic.startswith(b"\x1f\x8b") or tarfile.is_tarfile(path):
        return read_tape_secondary_structure(path, test_set)
    raise InputError(
        f"{path}: neither a FLIP splits.zip nor a TAPE secondary_structure tarball (first bytes {magic!r})"
    )


# --------------------------------------------------------------------------- localization


def _deeploc_label(header: str, where: str) -> tuple[str, str | None, str]:
    """(accession, location or None for Cytoplasm-Nucleus, split) of one DeepLoc header."""
    fields = header.split()
    if len(fields) not in (2, 3) or (len(fields) == 3 and fields[2] != "test"):
        raise InputError(
            f"{where}: record {fields[0] if fields else header!r}: header must be "
            "'ACC Location-M|S|U' with an optional 'test'"
        )
    accession, label = fields[0], fields[1]
    location, _, membrane = label.rpartition("-")
    if membrane not in MEMBRANE_CODES:
        location = label
    split = "test" if len(fields) == 3 else "train"
    if location == DEEPLOC_DROPPED:
        return accession, None, split
    if location not in DEEPLOC_LOCATIONS:
        raise InputError(
            f"{where}: record {accession!r}: unknown location {location!r} "
            f"(DeepLoc's are {', '.join(DEEPLOC_LOCATIONS)})"
        )
    return accession, location, split


def read_deeploc(path: str | os.PathLike[str]) -> TaskData:
    """DeepLoc 1.0 FASTA; ``Cytoplasm-Nucleus`` records are dropped and counted."""
    data = TaskData("localization", [], list(DEEPLOC_LOCATIONS))
    for header, raw in _fasta_pairs(path):
        data.counts["read"] += 1
        accession, location, split = _deeploc_label(header, str(path))
        if location is None:
            data.counts["dropped_cytoplasm_nucleus"] += 1
            continue
        sequence = clean_sequence(raw)
        if _usable(sequence, accession, str(path), data.counts):
            label = DEEPLOC_LOCATIONS.index(location)
            data.records.append(ProbeRecord(accession, sequence, split, label))
    return data


# --------------------------------------------------------------------------- CSV tasks


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _csv_rows(
    text: str, where: str, required: list[str], hint: str = ""
) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [c.strip() for c in reader.fieldnames or []]
    reader.fieldnames = columns
    missing = [c for c in required if c not in columns]
    if missing:
        raise InputError(
            f"{where}: line 1: no column {', '.join(map(repr, missing))} (columns: {columns}){hint}"
        )
    for row in reader:
        yield reader.line_num, row


def read_meltome(path: str | os.PathLike[str], split_name: str = "mixed_split") -> TaskData:
    """FLIP's meltome ``splits.zip``: the CSV ``split_name`` (``sequence,target,set,validation``)."""
    path = Path(path)
    with _open_zip(path, "FLIP's meltome splits.zip") as archive:
        members = [m for m in archive.namelist() if m.endswith(".csv")]
        chosen = [m for m in members if Path(m).stem == split_name]
        if len(chosen) != 1:
            raise InputError(
                f"{path}: no single {split_name}.csv in the meltome splits.zip "
                f"(CSV members: {', '.join(members) or 'none'})"
            )
        text = _decode(archive.read(chosen[0]))
    where = _in_member(path, chosen[0])
    data = TaskData("thermostability", [], None)
    for line, row in _csv_rows(text, where, ["sequence", "target", "set", "validation"]):
        data.counts["read"] += 1
        record = f"line {line}"
        try:
            target = float(row["target"])
        except (TypeError, ValueError):
            target = math.nan
        if not math.isfinite(target):
            raise InputError(f"{where}: {record}: target {row['target']!r} is not a number")
        split = (row["set"] or "").strip()
        validation = (row["validation"] or "").strip()
        if split not in ("train", "test") or validation not in ("True", "False", ""):
            raise InputError(
                f"{where}: {record}: set must be train|test and validation True|False|empty, "
                f"got {split!r}, {validation!r}"
            )
        split = "valid" if split == "train" and validation == "True" else split
        sequence = clean_sequence(row["sequence"] or "")
        if _usable(sequence, record, where, data.counts):
            data.records.append(ProbeRecord(f"{chosen[0]}:{line}", sequence, split, target))
    return data


def read_expression(
    path: str | os.PathLike[str], sequence_column: str = "Construct.seq..aa."
) -> TaskData:
    """The CHO expression CSV: ``Status`` Pass -> expressed, Fail... -> not; else dropped."""
    where = str(path)
    text = _decode(Path(path).read_bytes())
    data = TaskData("expression", [], list(EXPRESSION_CLASSES))
    hint = "; probes.expression_column names the sequence column"
    for line, row in _csv_rows(text, where, ["Status", sequence_column], hint):
        data.counts["read"] += 1
        status = (row["Status"] or "").strip()
        if status == "Pass":
            label = 1
        elif status.startswith("Fail"):
            label = 0
        else:
            data.counts["dropped_status"] += 1
            continue
        sequence = clean_sequence(row[sequence_column] or "")
        if not sequence:
            data.counts["dropped_no_sequence"] += 1
            continue
        if _usable(sequence, f"line {line}", where, data.counts):
            data.records.append(ProbeRecord(f"line-{line}", sequence, "train", label))
    return data
