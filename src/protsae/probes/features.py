"""Probe features: ESM-2 layer-L embeddings or the latents of that layer's SAE, per record.

Residue-level tasks (secondary structure) get one row per resolved residue (masked residues
never become rows); protein-level tasks one row per protein, the mean over its residues
(for the SAE, of the latent activations: pooled after encoding). Records go through ESM-2 in
chunks, so memory is bounded by a chunk and the output, never by the whole task; a dense
residue-level matrix can live in a memory-mapped file.

The ESM-2 forward is :func:`protsae.esm.layer_representations` and the SAE path is
:func:`protsae.sae.at_layer.esm_sae_encoder`: no second encoding loop here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from protsae.probes.tasks import RESIDUE_TASKS, SPLITS, TaskData

#: Per sequence: a dense ``[length, d]`` array, or the SAE's ``(values, indices)`` ``[length, k]``.
Rows = np.ndarray | tuple[np.ndarray, np.ndarray]
RowEncoder = Callable[[Sequence[tuple[str, str]]], Iterator[tuple[str, Rows]]]


@dataclass
class FeatureMatrix:
    """Rows of features with their labels and splits.

    ``X`` is dense ``float32`` (possibly a ``np.memmap``) or a CSR matrix; ``y`` holds class
    indices (int64) or targets (float64); ``split`` the split of each row; ``n_records`` how many
    records of each split produced rows.
    """

    X: np.ndarray | sp.csr_matrix
    y: np.ndarray
    split: np.ndarray
    n_records: dict[str, int]
    record: np.ndarray | None = None
    """Index of each row's record (the bootstrap's and the CV folds' unit); None: row i is record i."""
    position: np.ndarray | None = None
    """Residue position of each row (0-based); None: protein rows (position -1)."""

    def __post_init__(self) -> None:
        n = self.X.shape[0]
        if self.record is None:
            self.record = np.arange(n, dtype=np.int64)
        if self.position is None:
            self.position = np.full(n, -1, dtype=np.int32)

    def rows(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)


def feature_name(sae_k: int | None = None, sae_width: int | None = None) -> str:
    """``esm`` or ``sae-k{k}-w{width}``: the ``{features}`` part of a probe's path."""
    return "esm" if sae_k is None else f"sae-k{sae_k}-w{sae_width}"


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _pool(rows: Rows, n_features: int) -> np.ndarray:
    if isinstance(rows, tuple):
        values, indices = rows
        pooled = np.bincount(
            indices.ravel(), weights=values.ravel().astype(np.float64), minlength=n_features
        )
        return (pooled / len(values)).astype(np.float32)
    return rows.mean(axis=0, dtype=np.float64).astype(np.float32)


def _encode_in_chunks(
    data: TaskData, encode: RowEncoder, chunk_records: int
) -> Iterator[tuple[int, Rows]]:
    """(record index, rows) for every record, ESM-2 run on ``chunk_records`` records at a time."""
    indices = list(range(len(data.records)))
    for chunk in _chunks(indices, chunk_records):
        pairs = [(str(i), data.records[i].sequence) for i in chunk]
        seen = 0
        for key, rows in encode(pairs):
            seen += 1
            yield int(key), rows
        if seen != len(chunk):
            raise RuntimeError(f"the encoder returned {seen} of {len(chunk)} sequences")


def protein_features(
    data: TaskData, encode: RowEncoder, n_features: int, chunk_records: int = 256
) -> FeatureMatrix:
    """One mean-pooled row per record (labels from ``record.label``)."""
    X = np.zeros((len(data.records), n_features), dtype=np.float32)
    for index, rows in _encode_in_chunks(data, encode, chunk_records):
        X[index] = _pool(rows, n_features)
    regression = data.classes is None
    y = np.array([r.label for r in data.records], dtype=np.float64 if regression else np.int64)
    split = np.array([r.split for r in data.records])
    return FeatureMatrix(X, y, split, _record_counts(data.records))


def _record_counts(records: Iterable) -> dict[str, int]:
    records = list(records)
    return {s: sum(r.split == s for r in records) for s in SPLITS}


def residue_features(
    data: TaskData,
    encode: RowEncoder,
    n_features: int,
    sparse_k: int | None = None,
    chunk_records: int = 256,
    memmap_path: str | os.PathLike[str] | None = None,
) -> FeatureMatrix:
    """One row per resolved residue (``mask`` True); masked residues never become rows.

    With ``sparse_k`` (the SAE's k) the rows are a CSR matrix with k stored entries each;
    otherwise dense ``float32``, in ``memmap_path`` when given.
    """
    counts = np.array([int(r.mask.sum()) for r in data.records])
    starts = np.concatenate([[0], np.cumsum(counts)])
    total = int(starts[-1])
    if sparse_k is not None:
        values = np.zeros(total * sparse_k, dtype=np.float32)
        columns = np.zeros(total * sparse_k, dtype=np.int32)
    elif memmap_path is not None:
        dense = np.lib.format.open_memmap(
            memmap_path, mode="w+", dtype=np.float32, shape=(total, n_features)
        )
    else:
        dense = np.zeros((total, n_features), dtype=np.float32)
    for index, rows in _encode_in_chunks(data, encode, chunk_records):
        mask = data.records[index].mask
        start, stop = starts[index], starts[index + 1]
        if sparse_k is not None:
            vals, idx = rows
            values[start * sparse_k : stop * sparse_k] = vals[mask].ravel()
            columns[start * sparse_k : stop * sparse_k] = idx[mask].ravel()
        else:
            dense[start:stop] = rows[mask]
    if sparse_k is not None:
        indptr = np.arange(0, total * sparse_k + 1, sparse_k, dtype=np.int64)
        X = sp.csr_matrix((values, columns, indptr), shape=(total, n_features))
        X.sum_duplicates()
    else:
        X = dense
    y = np.concatenate([r.residue_labels[r.mask] for r in data.records]).astype(np.int64)
    split = np.repeat(np.array([r.split for r in data.records]), counts)
    record = np.repeat(np.arange(len(data.records), dtype=np.int64), counts)
    position = np.concatenate([np.flatnonzero(r.mask) for r in data.records]).astype(np.int32)
    return FeatureMatrix(X, y, split, _record_counts(data.records), record, position)


# --------------------------------------------------------------------------- encoders


def esm_encoder(
    model: object, alphabet: object, layer: int, max_tokens_per_batch: int, device: object
) -> RowEncoder:
    """ESM-2's layer-``layer`` output per residue (fair-esm convention) as numpy arrays."""
    from protsae.esm import ForwardOptions, layer_representations

    def encode(records: Sequence[tuple[str, str]]) -> Iterator[tuple[str, Rows]]:
        options = ForwardOptions(max_tokens_per_batch, device)
        for seq_id, rep in layer_representations(model, alphabet, records, layer, options):
            yield seq_id, rep.numpy()

    return encode


def sae_encoder(
    model: object,
    alphabet: object,
    sae: object,
    layer: int,
    max_tokens_per_batch: int,
    device: object,
) -> RowEncoder:
    """The SAE's top-k latents of every residue, via ``esm_sae_encoder``.

    That encoder computes the ESM-2 activations in the SAE's own ``activation_convention``
    (an imported InterProt SAE gets InterProt's vectors), so the probe sees what the SAE saw.
    """
    from protsae.sae.at_layer import esm_sae_encoder

    inner = esm_sae_encoder(model, alphabet, sae, layer, max_tokens_per_batch, device)

    def encode(records: Sequence[tuple[str, str]]) -> Iterator[tuple[str, Rows]]:
        for seq_id, values, indices in inner(records):
            yield seq_id, (values, indices)

    return encode


def composition_features(data: TaskData) -> FeatureMatrix:
    """The control features of method.md: the 20 amino-acid frequencies of each protein, or for
    residue-level tasks the one-hot residue of each resolved position. No language model."""
    letters = "ACDEFGHIKLMNPQRSTVWY"
    lookup = np.full(128, -1, dtype=np.int64)
    lookup[np.frombuffer(letters.encode(), dtype=np.uint8)] = np.arange(20)

    def codes(sequence: str) -> np.ndarray:
        return lookup[np.frombuffer(sequence.encode("ascii", "replace"), dtype=np.uint8) & 127]

    if data.task in RESIDUE_TASKS:

        def encode(records: Sequence[tuple[str, str]]) -> Iterator[tuple[str, Rows]]:
            for key, sequence in records:
                c = codes(sequence)
                rows = np.zeros((len(c), 20), dtype=np.float32)
                rows[np.flatnonzero(c >= 0), c[c >= 0]] = 1.0
                yield key, rows

        return residue_features(data, encode, 20)

    X = np.zeros((len(data.records), 20), dtype=np.float32)
    for i, record in enumerate(data.records):
        c = codes(record.sequence)
        X[i] = np.bincount(c[c >= 0], minlength=20) / max(len(c), 1)
    regression = data.classes is None
    y = np.array([r.label for r in data.records], dtype=np.float64 if regression else np.int64)
    split = np.array([r.split for r in data.records])
    return FeatureMatrix(X, y, split, _record_counts(data.records))


def task_features(
    data: TaskData,
    encode: RowEncoder,
    n_features: int,
    sparse_k: int | None = None,
    chunk_records: int = 256,
    memmap_path: str | os.PathLike[str] | None = None,
) -> FeatureMatrix:
    """Residue rows for residue-level tasks, mean-pooled protein rows for the rest."""
    if data.task in RESIDUE_TASKS:
        return residue_features(data, encode, n_features, sparse_k, chunk_records, memmap_path)
    return protein_features(data, encode, n_features, chunk_records)
