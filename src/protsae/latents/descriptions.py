"""One generated line per latent: its best family, its best residue concepts, how often it fires.

Never hand-written (method.md): every part comes from a table with its score, e.g.
``IPRZ00001 family (F1 0.94); MOTIF 'planted motif IPRZ00001.m2' residues (F1 0.81); active on
4% of residues``. The best family is the ``families`` row (the family of the latent's top test
sequence, test F1); the best concepts are the ``concepts`` rows with the highest test F1
(at most ``max_concepts``, those with a test F1 of at least ``min_concept_f1``).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from protsae.latents.evaluation import representatives

DESCRIPTIONS_SCHEMA = pa.schema(
    [pa.field("latent", pa.int32()), pa.field("description", pa.string())]
)


def concept_phrase(concept: str) -> str:
    """``MOTIF:planted motif 2`` -> ``MOTIF 'planted motif 2' residues``; ``TRANSMEM`` -> ``TRANSMEM residues``."""
    kind, _, name = concept.partition(":")
    return f"{kind} '{name}' residues" if name else f"{kind} residues"


def _percent(fraction: float) -> str:
    if fraction >= 0.01:
        return f"{fraction * 100:.0f}%"
    return f"{fraction * 100:.1g}%"


def describe(
    family: str | None,
    family_f1: float | None,
    concepts: list[tuple[str, float]],
    active_fraction: float,
) -> str:
    """The description of one latent from its scored parts."""
    if active_fraction <= 0:
        return "never active on the evaluation set"
    parts = []
    if family is not None and family_f1 is not None and not math.isnan(family_f1):
        parts.append(f"{family} family (F1 {family_f1:.2f})")
    parts += [f"{concept_phrase(c)} (F1 {f1:.2f})" for c, f1 in concepts]
    parts.append(f"active on {_percent(active_fraction)} of residues")
    return "; ".join(parts)


def active_fractions(seq_stats: pa.Table, width: int, n_residues: int) -> np.ndarray:
    """Per latent: active residues / all residues of the evaluation set."""
    counts = np.bincount(
        seq_stats["latent"].to_numpy().astype(np.int64),
        weights=seq_stats["n_active"].to_numpy().astype(np.float64),
        minlength=width,
    )
    return counts / max(n_residues, 1)


def descriptions_table(
    width: int,
    families: pa.Table,
    concepts: pa.Table,
    active: np.ndarray,
    max_concepts: int = 2,
    min_concept_f1: float = 0.1,
) -> pa.Table:
    """One row per latent ``0..width-1``."""
    fam = {
        r["latent"]: (r["family"], r["f1"])
        for r in families.select(["latent", "family", "f1"]).to_pylist()
    }
    best: dict[int, list[tuple[str, float]]] = {}
    good = concepts.filter(pc.greater_equal(concepts["f1_test"], min_concept_f1))
    good = good.sort_by(
        [("latent", "ascending"), ("f1_test", "descending"), ("concept", "ascending")]
    )
    for r in good.select(["latent", "concept", "f1_test"]).to_pylist():
        kept = best.setdefault(r["latent"], [])
        if len(kept) < max_concepts:
            kept.append((r["concept"], r["f1_test"]))
    rows = [
        describe(*fam.get(lat, (None, None)), best.get(lat, []), float(active[lat]))
        for lat in range(width)
    ]
    return pa.table(
        {"latent": np.arange(width, dtype=np.int32), "description": rows},
        schema=DESCRIPTIONS_SCHEMA,
    )


def descriptions_from_files(
    families_path: str | os.PathLike[str],
    concepts_path: str | os.PathLike[str],
    seq_stats_path: str | os.PathLike[str],
    swissprot_path: str | os.PathLike[str],
    clusters_path: str | os.PathLike[str],
    width: int,
) -> pa.Table:
    """``descriptions`` of one SAE from its families, concepts and seq_stats tables."""
    rep_split = representatives(clusters_path)
    lengths = pq.read_table(swissprot_path, columns=["accession", "length"])
    lengths = lengths.filter(pc.is_in(lengths["accession"], pa.array(list(rep_split), pa.string())))
    n_residues = int(pc.sum(lengths["length"]).as_py() or 0)
    seq_stats = pq.read_table(seq_stats_path, columns=["latent", "n_active"])
    return descriptions_table(
        width,
        pq.read_table(families_path),
        pq.read_table(concepts_path),
        active_fractions(seq_stats, width, n_residues),
    )
