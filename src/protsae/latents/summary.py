"""Per-SAE summary of the latent analysis: class counts, family- and concept-specific latents."""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from protsae.latents.classes import PATTERN_CLASSES
from protsae.latents.concepts import CONCEPT_F1_THRESHOLD, concept_specific_latents
from protsae.latents.families import family_specific_latents


def summarize(classes: pa.Table, families_path: str | os.PathLike[str]) -> dict[str, Any]:
    """``summary.json`` content: every class key (0 when empty), latent count, family-specific latents.

    ``family_specific_latents`` is ordered like :func:`family_specific_latents` (test F1
    descending, then latent id).
    """
    counts = dict.fromkeys(PATTERN_CLASSES, 0)
    for name in classes["pattern_class"].to_pylist():
        if name not in counts:
            raise ValueError(f"classes table: unknown pattern class {name!r}")
        counts[name] += 1
    specific = family_specific_latents(families_path)
    return {
        "n_latents": len(classes),
        "class_counts": counts,
        "n_family_specific": len(specific),
        "family_specific_latents": specific,
    }


def summary_from_files(
    classes_path: str | os.PathLike[str],
    families_path: str | os.PathLike[str],
    concepts_path: str | os.PathLike[str] | None = None,
    concept_f1_threshold: float = CONCEPT_F1_THRESHOLD,
) -> dict[str, Any]:
    """Summarize one SAE from its ``classes.parquet`` and ``families.parquet``; with
    ``concepts_path``, also ``n_concept_specific`` (latents with a concept of test F1 above
    ``concept_f1_threshold``)."""
    summary = summarize(pq.read_table(classes_path, columns=["pattern_class"]), families_path)
    if concepts_path is not None:
        concepts = pq.read_table(concepts_path, columns=["latent", "f1_test"])
        summary["n_concept_specific"] = concept_specific_latents(concepts, concept_f1_threshold)
    n_families = pq.read_metadata(families_path).num_rows
    if n_families != summary["n_latents"]:
        raise ValueError(
            f"{classes_path} has {summary['n_latents']} latents but {families_path} has "
            f"{n_families} rows"
        )
    return summary
