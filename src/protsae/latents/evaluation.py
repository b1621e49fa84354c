"""The Swiss-Prot evaluation set: cluster representatives of both splits.

Evaluation sequences are the cluster representatives of ``swissprot_clusters.parquet``
(rows with ``accession == cluster``), both splits, with sequences from
``swissprot.parquet``. Swiss-Prot is streamed in record batches, so only one chunk of
sequences is held at a time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from protsae.latents.collect import SPLITS, EvalRecord


def _require_columns(path: str | os.PathLike[str], columns: Sequence[str]) -> None:
    names = pq.read_schema(path).names
    missing = [c for c in columns if c not in names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; has {names}")


def representatives(clusters_path: str | os.PathLike[str]) -> dict[str, str]:
    """Map each cluster representative's accession to its split ('train' | 'test')."""
    _require_columns(clusters_path, ["accession", "cluster", "split"])
    table = pq.read_table(clusters_path, columns=["accession", "cluster", "split"])
    bad = pc.invert(pc.is_in(table["split"], pa.array(SPLITS)))
    if pc.any(bad).as_py():
        i = pc.index(bad, True).as_py()
        raise ValueError(
            f"{clusters_path}: row {i} (accession {table['accession'][i].as_py()}): "
            f"split must be one of {SPLITS}, got {table['split'][i].as_py()!r}"
        )
    reps = table.filter(pc.equal(table["accession"], table["cluster"]))
    rep_split = dict(zip(reps["accession"].to_pylist(), reps["split"].to_pylist(), strict=True))
    if len(rep_split) != len(reps):
        raise ValueError(f"{clusters_path}: a representative accession occurs twice")
    clusters = set(pc.unique(table["cluster"]).to_pylist())
    orphans = clusters.difference(rep_split)
    if orphans:
        raise ValueError(
            f"{clusters_path}: {len(orphans)} cluster(s) have no row with accession == cluster, "
            f"e.g. {sorted(orphans)[0]}"
        )
    return rep_split


def iter_evaluation_set(
    swissprot_path: str | os.PathLike[str],
    clusters_path: str | os.PathLike[str],
    chunk_size: int = 4096,
    rep_split: dict[str, str] | None = None,
) -> Iterator[list[EvalRecord]]:
    """Yield the evaluation set in chunks of ``chunk_size`` records, in Swiss-Prot file order.

    ``rep_split``: :func:`representatives` of ``clusters_path`` when the caller has it already.
    Raises if a representative has no Swiss-Prot entry or an accession occurs twice.
    """
    if rep_split is None:
        rep_split = representatives(clusters_path)
    _require_columns(swissprot_path, ["accession", "sequence"])
    wanted = pa.array(list(rep_split), pa.string())
    seen: set[str] = set()
    chunk: list[EvalRecord] = []
    pf = pq.ParquetFile(swissprot_path)
    for batch in pf.iter_batches(batch_size=65536, columns=["accession", "sequence"]):
        batch = batch.filter(pc.is_in(batch.column("accession"), wanted))
        for acc, seq in zip(
            batch.column("accession").to_pylist(), batch.column("sequence").to_pylist(), strict=True
        ):
            if acc in seen:
                raise ValueError(f"{swissprot_path}: accession {acc} occurs more than once")
            if not seq:
                raise ValueError(f"{swissprot_path}: accession {acc} has an empty sequence")
            seen.add(acc)
            chunk.append(EvalRecord(acc, seq, rep_split[acc]))
            if len(chunk) == chunk_size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk
    missing = len(rep_split) - len(seen)
    if missing:
        example = next(a for a in rep_split if a not in seen)
        raise ValueError(
            f"{swissprot_path}: {missing} cluster representative(s) from {clusters_path} "
            f"have no entry, e.g. {example}"
        )
