"""Probe data sets: one record type for the four tasks, splits, length policy, the table on disk.

The format readers live in :mod:`protsae.probes.formats`; this module holds what they share:
:class:`ProbeRecord`, :class:`TaskData` (records plus counts of what was read and dropped),
the seeded validation / test carve, cropping or dropping sequences ESM-2 cannot take, and
the ``probes/data/{task}.parquet`` table every probe job reads.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from protsae.io import write_json, write_parquet
from protsae.sequences import InputError, esm_residue_letters

#: Residue-level and regression tasks among protsae.probes.config.TASKS (method.md, "Linear probes").
RESIDUE_TASKS = frozenset({"secondary_structure"})
REGRESSION_TASKS = frozenset({"thermostability"})
SPLITS = ("train", "valid", "test")
#: Longest sequence ESM-2 embeds (1024 positions minus BOS and EOS).
MAX_RESIDUES = 1022
LENGTH_POLICIES = ("crop", "drop")


@dataclass
class ProbeRecord:
    """One protein of a probe data set.

    ``label`` is a class index (into :attr:`TaskData.classes`) or a regression target for the
    protein-level tasks and None for secondary structure, whose per-residue class indices are
    ``residue_labels`` with ``mask`` True where a residue is resolved (and used).
    """

    id: str
    sequence: str
    split: str
    label: float | int | None = None
    residue_labels: np.ndarray | None = None
    mask: np.ndarray | None = None


@dataclass
class TaskData:
    """The records a loader kept, the class names (None for regression) and its counts."""

    task: str
    records: list[ProbeRecord]
    classes: list[str] | None
    counts: Counter = field(default_factory=Counter)

    def split_counts(self) -> dict[str, int]:
        found = Counter(r.split for r in self.records)
        return {split: found.get(split, 0) for split in SPLITS}


def clean_sequence(raw: str) -> str:
    """Upper-case, whitespace removed, a trailing ``*`` stripped."""
    return "".join(raw.split()).upper().rstrip("*")


def bad_residues(sequence: str) -> str:
    """Letters ESM-2 has no token for (empty when the sequence is usable)."""
    return "".join(sorted(set(sequence) - set(esm_residue_letters())))


def apply_length_policy(data: TaskData, policy: str, max_residues: int = MAX_RESIDUES) -> None:
    """Crop sequences (labels and mask too) to ``max_residues`` or drop them; counted."""
    if policy not in LENGTH_POLICIES:
        raise ValueError(f"long-sequence policy must be one of {LENGTH_POLICIES}, got {policy!r}")
    kept = []
    for record in data.records:
        if len(record.sequence) <= max_residues:
            kept.append(record)
        elif policy == "drop":
            data.counts["dropped_too_long"] += 1
        else:
            record.sequence = record.sequence[:max_residues]
            if record.residue_labels is not None:
                record.residue_labels = record.residue_labels[:max_residues]
                record.mask = record.mask[:max_residues]
            data.counts["cropped"] += 1
            kept.append(record)
    data.records = kept


def drop_unlabelled_chains(data: TaskData) -> None:
    """Residue-level records with no resolved residue left carry no training signal: dropped."""
    kept = [r for r in data.records if r.mask is None or r.mask.any()]
    data.counts["dropped_no_resolved_residue"] += len(data.records) - len(kept)
    data.records = kept


def carve_split(
    records: list[ProbeRecord],
    source: str,
    target: str,
    fraction: float,
    seed: int,
    groups: Mapping[str, str] | None = None,
) -> int:
    """Move a seeded ``fraction`` of the ``source``-split records to ``target``; return how many.

    Only done when the data name no ``target`` record of their own; at least one record moves
    when there are two or more to choose from, so a grid always has something to score on.
    With ``groups`` (record id -> cluster), whole clusters move: a ``fraction`` of the clusters
    (seeded, at least one, never all), so no cluster straddles the two splits.
    """
    if any(r.split == target for r in records):
        return 0
    pool = [i for i, r in enumerate(records) if r.split == source]
    if groups is not None:
        from protsae.sequences.clusters import split_clusters

        chosen_clusters = split_clusters([groups[records[i].id] for i in pool], fraction, seed)
        moved = [i for i in pool if groups[records[i].id] in chosen_clusters]
        for i in moved:
            records[i].split = target
        return len(moved)
    count = round(fraction * len(pool))
    count = min(max(count, 1), len(pool) - 1) if len(pool) >= 2 else 0
    chosen = np.random.default_rng(seed).choice(len(pool), size=count, replace=False)
    for i in chosen:
        records[pool[int(i)]].split = target
    return count


def finish_splits(
    data: TaskData,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    groups: Mapping[str, str] | None = None,
) -> None:
    """Carve test (when the data give none) and validation (likewise) out of train, seeded;
    by whole clusters when ``groups`` maps record ids to clusters."""
    data.counts["carved_test"] = carve_split(
        data.records, "train", "test", test_fraction, seed, groups
    )
    data.counts["carved_valid"] = carve_split(
        data.records, "train", "valid", validation_fraction, seed + 1, groups
    )
    for split, count in data.split_counts().items():
        data.counts[split] = count
        if split != "valid" and count == 0:
            raise InputError(f"{data.task}: no {split} records left after loading")
    data.counts["kept"] = len(data.records)


def _split_labels(data: TaskData, split: str) -> list:
    """The labels a probe is fitted or scored on in ``split``: one per protein, or one per
    resolved residue for a residue-level task."""
    labels: list = []
    for record in data.records:
        if record.split != split:
            continue
        if record.residue_labels is not None:
            labels.extend(record.residue_labels[record.mask].tolist())
        else:
            labels.append(record.label)
    return labels


def check_classes(data: TaskData) -> None:
    """Stop at the data, not in the fit, when a classification probe could not be fitted or
    scored: it needs two classes in train and in test, and every class scored in test must be
    seen in train. Validation is not checked: with a class missing there, selection falls back
    to cross-validation. Regression tasks (``classes`` None) pass.
    """
    if data.classes is None:
        return
    per_split = {split: _split_labels(data, split) for split in ("train", "test")}
    task = f"probe task {data.task}"
    names = data.classes
    unit = "residues" if data.task in RESIDUE_TASKS else "records"
    every = Counter(_split_labels(data, "valid")) + Counter(
        label for labels in per_split.values() for label in labels
    )
    if len(every) < 2:
        (only,) = every
        raise InputError(
            f"{task}: every labelled {unit[:-1]} has class {names[only]!r} "
            f"({every[only]} {unit}); a probe needs at least two classes"
        )
    for split, labels in per_split.items():
        found = Counter(labels)
        if len(found) < 2:
            (only,) = found
            raise InputError(
                f"{task}: the {split} split has one class, {names[only]!r} ({found[only]} {unit}); "
                "a probe needs at least two classes in train and in test"
            )
    unseen = sorted(set(per_split["test"]) - set(per_split["train"]))
    if unseen:
        counts = Counter(per_split["test"])
        listed = ", ".join(f"{names[c]!r} ({counts[c]} {unit})" for c in unseen)
        raise InputError(
            f"{task}: the train split has no example of {listed} that the test split scores; "
            "the probe cannot learn a class it never sees"
        )


# --------------------------------------------------------------------------- the table on disk


def _schema(regression: bool) -> pa.Schema:
    return pa.schema(
        [
            ("id", pa.string()),
            ("sequence", pa.string()),
            ("split", pa.string()),
            ("label", pa.float64() if regression else pa.int32()),
            ("residue_labels", pa.list_(pa.int8())),
            ("mask", pa.list_(pa.bool_())),
        ]
    )


def identity_clusters(
    records: list[ProbeRecord], min_seq_id: float, seed: int = 0
) -> dict[str, str]:
    """Record id -> cluster representative by ``mmseqs easy-cluster`` at ``min_seq_id``
    (coverage 0.8, sensitivity 7.5): the paper's 40%-identity split for a source without one."""
    from protsae.progress import get_logger
    from protsae.sequences.clusters import _easy_cluster

    pairs = [(r.id, r.sequence) for r in records]
    clusters = _easy_cluster(pairs, min_seq_id, 0.8, 7.5, 1, None, get_logger())
    missing = [r.id for r in records if r.id not in clusters]
    if missing:
        raise RuntimeError(f"mmseqs easy-cluster returned no cluster for {missing[:3]}")
    return clusters


def write_task_data(
    data: TaskData,
    table_path: str | os.PathLike[str],
    counts_path: str | os.PathLike[str],
) -> None:
    """The records as ``probes/data/{task}.parquet`` and the counts as its JSON sidecar."""
    regression = data.classes is None
    residue = data.task in RESIDUE_TASKS
    columns = {
        "id": [r.id for r in data.records],
        "sequence": [r.sequence for r in data.records],
        "split": [r.split for r in data.records],
        "label": [None if residue else r.label for r in data.records],
        "residue_labels": [r.residue_labels.tolist() if residue else None for r in data.records],
        "mask": [r.mask.tolist() if residue else None for r in data.records],
    }
    meta = {"protsae.task": data.task, "protsae.classes": json.dumps(data.classes)}
    table = pa.table(columns, schema=_schema(regression).with_metadata(meta))
    write_parquet(table, table_path)
    write_json(
        {"task": data.task, "classes": data.classes, "counts": dict(sorted(data.counts.items()))},
        counts_path,
    )


def read_task_data(path: str | os.PathLike[str]) -> TaskData:
    """Read back what :func:`write_task_data` wrote."""
    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    try:
        task = meta[b"protsae.task"].decode()
        classes = json.loads(meta[b"protsae.classes"])
    except KeyError:
        raise InputError(f"{path}: not a probe data table (no protsae.task metadata)") from None
    records = []
    regression = classes is None
    for row in table.to_pylist():
        residue = row["residue_labels"] is not None
        records.append(
            ProbeRecord(
                id=row["id"],
                sequence=row["sequence"],
                split=row["split"],
                label=None if residue else (float if regression else int)(row["label"]),
                residue_labels=np.asarray(row["residue_labels"], np.int8) if residue else None,
                mask=np.asarray(row["mask"], bool) if residue else None,
            )
        )
    data = TaskData(task, records, classes)
    for split, count in data.split_counts().items():
        data.counts[split] = count
    return data
