"""Encoding the evaluation set through ESM-2 and an SAE (:class:`protsae.sae.at_layer.EsmSae`):
the whole latent-stats stage (rule ``latent_stats``) and the concept counts (``latent_concepts``).

Kept apart from the rest of :mod:`protsae.latents` so that the classes, families and
summary steps never import torch or fair-esm.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from protsae.latents.collect import stream_latent_stats
from protsae.latents.concepts import (
    CONCEPTS_SCHEMA,
    concept_instances,
    stream_concepts,
    train_max_activations,
)
from protsae.latents.evaluation import iter_evaluation_set, representatives
from protsae.progress import get_logger
from protsae.sae.at_layer import EsmSae


def latent_stats_from_files(
    sae_path: str | os.PathLike[str],
    model_path: str | os.PathLike[str],
    swissprot_path: str | os.PathLike[str],
    clusters_path: str | os.PathLike[str],
    layer: int,
    top_examples: int,
    max_tokens_per_batch: int,
    seq_stats_path: str | os.PathLike[str],
    top_examples_path: str | os.PathLike[str],
    device: str | torch.device = "auto",
    chunk_size: int = 4096,
    batch_activations: int = 1 << 20,
    row_group_rows: int = 1 << 18,
) -> tuple[int, int]:
    """The whole stats stage: load ESM-2 and the SAE, stream the evaluation set, write both tables.

    ``device`` "auto" takes CUDA when there is one. Memory is bounded by ``chunk_size``
    sequences, ``batch_activations`` pending activations and ``row_group_rows`` pending
    ``seq_stats`` rows (plus the top-example heaps). Returns (sequences, seq_stats rows).
    """
    esm_sae = EsmSae.load(model_path, sae_path, layer, device)
    sae = esm_sae.sae
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
        iter_evaluation_set(swissprot_path, clusters_path, chunk_size, rep_split),
        esm_sae.encoder(max_tokens_per_batch),
        width=sae.cfg.width,
        top_examples=top_examples,
        seq_stats_path=seq_stats_path,
        top_examples_path=top_examples_path,
        total_sequences=len(rep_split),
        batch_activations=batch_activations,
        row_group_rows=row_group_rows,
    )


def concepts_from_files(
    sae_path: str | os.PathLike[str],
    model_path: str | os.PathLike[str],
    swissprot_path: str | os.PathLike[str],
    clusters_path: str | os.PathLike[str],
    features_path: str | os.PathLike[str],
    seq_stats_path: str | os.PathLike[str],
    layer: int,
    max_tokens_per_batch: int,
    fractions: Sequence[float],
    min_proteins: int,
    device: str | torch.device = "auto",
    chunk_size: int = 4096,
) -> pa.Table:
    """The concepts table of one SAE: the evaluation set encoded again (as in the stats stage),
    counted against the Swiss-Prot features; thresholds from the latents' train max in
    ``seq_stats``. Without any concept (no FT lines, or none frequent enough) the table is
    empty and nothing is encoded."""
    logger = get_logger()
    rep_split = representatives(clusters_path)
    instances = concept_instances(pq.read_table(features_path), rep_split, min_proteins)
    if not instances.concepts:
        logger.warning(
            "%s: no concept has %d train proteins (no FT lines, or too few): "
            "the concepts table is empty",
            features_path,
            min_proteins,
        )
        return CONCEPTS_SCHEMA.empty_table()
    esm_sae = EsmSae.load(model_path, sae_path, layer, device)
    sae = esm_sae.sae
    seq_stats = pq.read_table(seq_stats_path, columns=["latent", "split", "max_act"])
    logger.info(
        "concepts: %d concepts, %d train and %d test instances, SAE %s (width %d), device %s",
        len(instances.concepts),
        int(instances.n_instances[0].sum()),
        int(instances.n_instances[1].sum()),
        sae_path,
        sae.cfg.width,
        esm_sae.device,
    )
    return stream_concepts(
        iter_evaluation_set(swissprot_path, clusters_path, chunk_size, rep_split),
        esm_sae.encoder(max_tokens_per_batch),
        instances,
        train_max_activations(seq_stats, sae.cfg.width),
        fractions,
        total_sequences=len(rep_split),
    )
