"""Encoding the evaluation set through ESM-2 and an SAE (:class:`protsae.sae.at_layer.EsmSae`):
the whole latent-stats stage (rule ``latent_stats``) and the concept counts (``latent_concepts``).

Kept apart from the rest of :mod:`protsae.latents` so that the classes, families and
summary steps never import torch or fair-esm.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from protsae.esm import ForwardOptions
from protsae.latents.collect import EvalRecord, StreamBounds, stream_latent_stats
from protsae.latents.concepts import (
    CONCEPTS_SCHEMA,
    concept_instances,
    stream_concepts,
    train_max_activations,
)
from protsae.latents.evaluation import iter_evaluation_set, representatives
from protsae.progress import get_logger
from protsae.sae.at_layer import EsmSaeFiles


@dataclass(frozen=True)
class EvaluationSet:
    """The evaluation set's files: Swiss-Prot's table and the cluster table whose
    representatives it is, read ``chunk_size`` sequences at a time."""

    swissprot_path: str | os.PathLike[str]
    clusters_path: str | os.PathLike[str]
    chunk_size: int = 4096

    def chunks(self, rep_split: dict[str, str]) -> Iterator[list[EvalRecord]]:
        """:func:`iter_evaluation_set` over these files."""
        return iter_evaluation_set(
            self.swissprot_path, self.clusters_path, self.chunk_size, rep_split
        )


def latent_stats_from_files(
    files: EsmSaeFiles,
    evaluation: EvaluationSet,
    top_examples: int,
    seq_stats_path: str | os.PathLike[str],
    top_examples_path: str | os.PathLike[str],
    forward: ForwardOptions | None = None,
    bounds: StreamBounds | None = None,
) -> tuple[int, int]:
    """The whole stats stage: load ESM-2 and the SAE, stream the evaluation set, write both tables.

    ESM-2 runs as ``forward`` says (default: 4096 tokens per batch, device "auto": CUDA when
    there is one). Memory is bounded by ``evaluation.chunk_size`` sequences and ``bounds``.
    Returns (sequences, seq_stats rows).
    """
    forward = forward or ForwardOptions()
    esm_sae = files.load(forward.device)
    sae, sae_path, layer = esm_sae.sae, files.sae_path, files.layer
    clusters_path = evaluation.clusters_path
    rep_split = representatives(clusters_path)
    get_logger().info(
        "latent stats: %d evaluation sequences, SAE %s (width %d, k %d), layer %d, device %s",
        len(rep_split),
        sae_path,
        sae.cfg.width,
        sae.cfg.k,
        layer,
        esm_sae.device,
    )
    return stream_latent_stats(
        evaluation.chunks(rep_split),
        esm_sae.encoder(forward.max_tokens_per_batch),
        width=sae.cfg.width,
        top_examples=top_examples,
        seq_stats_path=seq_stats_path,
        top_examples_path=top_examples_path,
        total_sequences=len(rep_split),
        bounds=bounds,
    )


def concepts_from_files(
    files: EsmSaeFiles,
    evaluation: EvaluationSet,
    features_path: str | os.PathLike[str],
    seq_stats_path: str | os.PathLike[str],
    fractions: Sequence[float],
    min_proteins: int,
    forward: ForwardOptions | None = None,
) -> pa.Table:
    """The concepts table of one SAE: the evaluation set encoded again (as in the stats stage),
    counted against the Swiss-Prot features; thresholds from the latents' train max in
    ``seq_stats``. Without any concept (no FT lines, or none frequent enough) the table is
    empty and nothing is encoded. ESM-2 runs as ``forward`` says (as in the stats stage)."""
    logger = get_logger()
    forward = forward or ForwardOptions()
    rep_split = representatives(evaluation.clusters_path)
    instances = concept_instances(pq.read_table(features_path), rep_split, min_proteins)
    if not instances.concepts:
        logger.warning(
            "%s: no concept has %d train proteins (no FT lines, or too few): "
            "the concepts table is empty",
            features_path,
            min_proteins,
        )
        return CONCEPTS_SCHEMA.empty_table()
    esm_sae = files.load(forward.device)
    sae = esm_sae.sae
    seq_stats = pq.read_table(seq_stats_path, columns=["latent", "split", "max_act"])
    logger.info(
        "concepts: %d concepts, %d train and %d test instances, SAE %s (width %d), device %s",
        len(instances.concepts),
        int(instances.n_instances[0].sum()),
        int(instances.n_instances[1].sum()),
        files.sae_path,
        sae.cfg.width,
        esm_sae.device,
    )
    return stream_concepts(
        evaluation.chunks(rep_split),
        esm_sae.encoder(forward.max_tokens_per_batch),
        instances,
        train_max_activations(seq_stats, sae.cfg.width),
        fractions,
        total_sequences=len(rep_split),
    )
