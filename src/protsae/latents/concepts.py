"""Residue concepts per latent: how well a latent's active residues match a Swiss-Prot feature
(docs/method.md, "Residue concepts"; InterPLM's concept F1).

For each latent and concept, on the cluster split: a residue is predicted when the latent's
activation exceeds a threshold, a fraction of the latent's train max (``seq_stats``);
precision = labelled predicted residues / predicted residues; recall = annotation instances
with any predicted residue / instances (a domain counts once, however many of its residues
fire; a single-residue concept is recalled residue by residue). The threshold is the one with
the best train F1; the row reports test precision, recall and F1 there. ``n_train``/``n_test``
are the concept's annotation instances in each split (the recall denominators).

Everything is counted from the SAE's top-k codes: per batch of residues, the (residue, latent,
value) triples are joined with the labelled residues and the annotation instances, reduced to
the threshold level each value reaches, and added into count arrays of size
splits x width x concepts x thresholds. No dense residues x width array is ever formed; memory
is the count arrays plus one batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from protsae.latents.collect import SPLITS, Encoder, EvalRecord, checked_encodings
from protsae.progress import Progress, get_logger
from protsae.sequences.features import END_RESIDUE_TYPES

DEFAULT_CONCEPT_THRESHOLDS = (0.0, 0.15, 0.5, 0.6, 0.8)
CONCEPT_F1_THRESHOLD = 0.5  # concept-specific <=> test F1 above this (method.md)

CONCEPTS_SCHEMA = pa.schema(
    [
        pa.field("latent", pa.int32()),
        pa.field("concept", pa.string()),
        pa.field("threshold", pa.float64()),  # fraction of the latent's train max, as configured
        pa.field("precision", pa.float32()),
        pa.field("recall", pa.float32()),
        pa.field("f1_test", pa.float32()),
        pa.field("f1_train", pa.float32()),
        pa.field("n_train", pa.int32()),
        pa.field("n_test", pa.int32()),
    ]
)


@dataclass
class ConceptInstances:
    """The annotation instances of the evaluation set's proteins, by concept.

    ``by_protein[accession]``: int64 [n, 3] rows (concept index, start, end), 0-based
    half-open; ``n_instances``/``n_proteins``: [split, concept] counts.
    """

    concepts: list[str]
    by_protein: dict[str, np.ndarray]
    n_instances: np.ndarray
    n_proteins: np.ndarray


def concept_instances(
    features: pa.Table, rep_split: dict[str, str], min_proteins: int = 10
) -> ConceptInstances:
    """Instances of the concepts with at least ``min_proteins`` train proteins.

    Features without a concept or with an unknown (``?``) end are not instances; a feature
    whose concept names residues at its ends (DISULFID) gives one instance per end.
    Identical instances of one protein (same concept and residues) count once.
    """
    table = features.filter(
        pc.and_(
            pc.and_(pc.is_valid(features["concept"]), pc.is_valid(features["start"])),
            pc.and_(
                pc.is_valid(features["end"]),
                pc.is_in(features["accession"], pa.array(list(rep_split), pa.string())),
            ),
        )
    )
    found: dict[str, set[tuple[str, int, int]]] = {}
    for acc, kind, concept, start, end in zip(
        *(table[c].to_pylist() for c in ("accession", "type", "concept", "start", "end")),
        strict=True,
    ):
        spans = ((start, start), (end, end)) if kind in END_RESIDUE_TYPES else ((start, end),)
        found.setdefault(acc, set()).update((concept, s - 1, e) for s, e in spans)
    train_proteins: dict[str, int] = {}
    for acc, instances in found.items():
        if rep_split[acc] == "train":
            for concept in {c for c, _, _ in instances}:
                train_proteins[concept] = train_proteins.get(concept, 0) + 1
    concepts = sorted(c for c, n in train_proteins.items() if n >= min_proteins)
    index = {c: i for i, c in enumerate(concepts)}
    by_protein = {}
    n_instances = np.zeros((len(SPLITS), len(concepts)), np.int64)
    n_proteins = np.zeros_like(n_instances)
    for acc, instances in found.items():
        rows = sorted((index[c], s, e) for c, s, e in instances if c in index)
        if rows:
            arr = np.asarray(rows, np.int64)
            split = SPLITS.index(rep_split[acc])
            by_protein[acc] = arr
            np.add.at(n_instances[split], arr[:, 0], 1)
            n_proteins[split, np.unique(arr[:, 0])] += 1
    return ConceptInstances(concepts, by_protein, n_instances, n_proteins)


def _add_counts(target: np.ndarray, keys: np.ndarray) -> None:
    if len(keys):
        unique, counts = np.unique(keys, return_counts=True)
        target[unique] += counts


class ConceptCounts:
    """Counts per (split, latent, concept, threshold level), accumulated batch by batch.

    A value's *level* is how many thresholds it exceeds (``fractions`` ascending, times the
    latent's train max); counts are kept per level and summed from the top at the end, so
    "above threshold j" is "level > j".
    """

    def __init__(self, train_max: np.ndarray, n_concepts: int, fractions: Sequence[float]) -> None:
        self.configured = np.asarray(fractions, np.float64)
        fractions = self.configured.astype(np.float32)
        if len(fractions) == 0 or np.any(np.diff(fractions) <= 0) or fractions[0] < 0:
            raise ValueError(f"thresholds must be ascending fractions >= 0, got {fractions}")
        self.fractions = fractions
        self.width, self.n_concepts, self.n_levels = len(train_max), n_concepts, len(fractions)
        self.thresholds = np.asarray(train_max, np.float32)[:, None] * fractions[None, :]
        shape = len(SPLITS) * self.width * n_concepts * self.n_levels
        self.active = np.zeros(len(SPLITS) * self.width * self.n_levels, np.int64)
        self.labelled = np.zeros(shape, np.int32)  # bounded by width x concepts (x splits, levels)
        self.found = np.zeros(shape, np.int32)

    def _level(self, latent: np.ndarray, value: np.ndarray) -> np.ndarray:
        return (value[:, None] > self.thresholds[latent]).sum(1)

    def add(
        self,
        split: np.ndarray,
        values: np.ndarray,
        indices: np.ndarray,
        instances: np.ndarray,
    ) -> None:
        """One batch: ``split`` [R] per residue, top-k ``values``/``indices`` [R, k], and
        ``instances`` [n, 3] (concept, first residue, end residue), rows of this batch."""
        w, c, t = self.width, self.n_concepts, self.n_levels
        on = values > 0
        res, slot = np.nonzero(on)
        latent = indices[res, slot].astype(np.int64)
        level = self._level(latent, values[res, slot])
        keep = level > 0
        self.active += np.bincount(
            ((split[res] * w + latent) * t + level - 1)[keep], minlength=len(self.active)
        )
        if len(instances) == 0:
            return
        # Every (instance, residue) pair: instance i covers residues start_i .. end_i - 1.
        lengths = instances[:, 2] - instances[:, 1]
        inst = np.repeat(np.arange(len(instances)), lengths)
        offset = np.arange(len(inst)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        residue = instances[inst, 1] + offset
        concept = instances[inst, 0]

        # Labelled residues: each (residue, concept) once, joined with the residue's codes.
        pair = np.unique(residue * c + concept)
        p_res, p_con = pair // c, pair % c
        self._add_joined(self.labelled, split, values, indices, p_res, p_con, None)
        # Instances: the latent's max over the instance's residues, once per (instance, latent).
        self._add_joined(self.found, split, values, indices, residue, concept, inst)

    def _add_joined(
        self,
        target: np.ndarray,
        split: np.ndarray,
        values: np.ndarray,
        indices: np.ndarray,
        residue: np.ndarray,
        concept: np.ndarray,
        group: np.ndarray | None,
    ) -> None:
        w, c, t = self.width, self.n_concepts, self.n_levels
        v = values[residue]
        row, slot = np.nonzero(v > 0)
        latent = indices[residue[row], slot].astype(np.int64)
        value = v[row, slot]
        if group is not None and len(row):
            key = group[row] * w + latent
            order = np.argsort(key, kind="stable")
            key, value, row, latent = key[order], value[order], row[order], latent[order]
            starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
            value = np.maximum.reduceat(value, starts)
            row, latent = row[starts], latent[starts]
        level = self._level(latent, value)
        keep = level > 0
        s = split[residue[row]]
        _add_counts(target, (((s * w + latent) * c + concept[row]) * t + level - 1)[keep])

    def table(
        self, concepts: list[str], n_instances: np.ndarray, latents_per_chunk: int = 1024
    ) -> pa.Table:
        """One row per (latent, concept) with a labelled train residue above some threshold."""
        w, c, t = self.width, self.n_concepts, self.n_levels
        train, test = SPLITS.index("train"), SPLITS.index("test")
        active = _at_least(self.active.reshape(len(SPLITS), w, t))
        labelled = self.labelled.reshape(len(SPLITS), w, c, t)
        found = self.found.reshape(len(SPLITS), w, c, t)
        parts = []
        for first in range(0, w, latents_per_chunk):
            lat = slice(first, min(first + latents_per_chunk, w))
            lab, fnd = _at_least(labelled[:, lat]), _at_least(found[:, lat])
            precision = _ratio(lab, active[:, lat, None, :])
            recall = _ratio(fnd, n_instances[:, None, :, None])
            f1 = _ratio(2 * precision * recall, precision + recall)
            best = np.argmax(f1[train], axis=-1)  # first max: the lowest threshold
            rows_l, rows_c = np.nonzero(lab[train].max(-1) > 0)
            pick = (test, rows_l, rows_c, best[rows_l, rows_c])
            parts.append(
                {
                    "latent": (rows_l + first).astype(np.int32),
                    "concept": pa.array(concepts, pa.string()).take(pa.array(rows_c)),
                    "threshold": self.configured[best[rows_l, rows_c]],
                    "precision": precision[pick].astype(np.float32),
                    "recall": recall[pick].astype(np.float32),
                    "f1_test": f1[pick].astype(np.float32),
                    "f1_train": f1[(train, *pick[1:])].astype(np.float32),
                    "n_train": n_instances[train, rows_c].astype(np.int32),
                    "n_test": n_instances[test, rows_c].astype(np.int32),
                }
            )
        if not parts:
            return CONCEPTS_SCHEMA.empty_table()
        return pa.concat_tables([pa.table(p, schema=CONCEPTS_SCHEMA) for p in parts])


def _at_least(per_level: np.ndarray) -> np.ndarray:
    """Counts at each level -> counts above each threshold (level > j), along the last axis."""
    return np.flip(np.cumsum(np.flip(per_level, -1), -1), -1).astype(np.float64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.broadcast_arrays(num, den)
    return np.divide(num, den, out=np.zeros(num.shape), where=den > 0)


class ConceptCollector:
    """Buffers sequences' top-k codes and feeds them to :class:`ConceptCounts` in batches."""

    def __init__(
        self, counts: ConceptCounts, instances: ConceptInstances, batch_residues: int = 1 << 16
    ) -> None:
        self.counts = counts
        self.instances = instances
        self.batch_residues = batch_residues
        self._reset()

    def _reset(self) -> None:
        self._split: list[np.ndarray] = []
        self._values: list[np.ndarray] = []
        self._indices: list[np.ndarray] = []
        self._inst: list[np.ndarray] = []
        self._residues = 0

    def add(self, seq_id: str, split: str, values: np.ndarray, indices: np.ndarray) -> None:
        """One sequence's top-k ``values``/``indices`` [length, k]."""
        inst = self.instances.by_protein.get(seq_id)
        if inst is not None and len(inst):
            if inst[:, 2].max() > len(values):
                raise ValueError(
                    f"sequence {seq_id}: an annotation runs past its {len(values)} residues"
                )
            self._inst.append(inst + np.array([0, self._residues, self._residues]))
        self._split.append(np.full(len(values), SPLITS.index(split), np.int64))
        self._values.append(values)
        self._indices.append(indices)
        self._residues += len(values)
        if self._residues >= self.batch_residues:
            self.flush()

    def flush(self) -> None:
        if not self._residues:
            return
        self.counts.add(
            np.concatenate(self._split),
            np.concatenate(self._values),
            np.concatenate(self._indices),
            np.concatenate(self._inst) if self._inst else np.empty((0, 3), np.int64),
        )
        self._reset()


def stream_concepts(
    chunks: Iterable[Sequence[EvalRecord]],
    encode: Encoder,
    instances: ConceptInstances,
    train_max: np.ndarray,
    fractions: Sequence[float] = DEFAULT_CONCEPT_THRESHOLDS,
    total_sequences: int | None = None,
    batch_residues: int = 1 << 16,
) -> pa.Table:
    """Encode the evaluation set chunk by chunk and count every latent against every concept.

    ``train_max`` [width]: each latent's max activation on the train split (``seq_stats``).
    """
    logger = get_logger()
    counts = ConceptCounts(train_max, len(instances.concepts), fractions)
    collector = ConceptCollector(counts, instances, batch_residues)
    progress = Progress("concepts", total_sequences, "sequences", logger)
    for record, values, indices in checked_encodings(chunks, encode):
        collector.add(record.id, record.split, values, indices)
        progress.update(1)
    collector.flush()
    table = counts.table(instances.concepts, instances.n_instances)
    progress.finish(rows=table.num_rows)
    return table


def train_max_activations(seq_stats: pa.Table, width: int) -> np.ndarray:
    """Each latent's max activation over the train split (0 where it never fires there)."""
    train = seq_stats.filter(pc.equal(seq_stats["split"], "train"))
    out = np.zeros(width, np.float32)
    latent = train["latent"].to_numpy().astype(np.int64)
    if len(latent) and (latent.min() < 0 or latent.max() >= width):
        raise ValueError(f"seq_stats latent out of range [0, {width})")
    np.maximum.at(out, latent, train["max_act"].to_numpy())
    return out


def concept_specific_latents(concepts: pa.Table, f1_threshold: float = CONCEPT_F1_THRESHOLD) -> int:
    """How many latents have a concept with test F1 above ``f1_threshold``."""
    specific = concepts.filter(pc.greater(concepts["f1_test"], f1_threshold))
    return len(pc.unique(specific["latent"]))
