"""Encoding the evaluation set through ESM-2 and an SAE: the whole latent-stats stage.

Kept apart from the rest of :mod:`protsae.latents` so that the classes, families and
summary steps never import torch or fair-esm.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from protsae.device import resolve_device
from protsae.esm import layer_representations, load_model
from protsae.latents.collect import Encoder, stream_latent_stats
from protsae.latents.concepts import (
    CONCEPTS_SCHEMA,
    concept_instances,
    stream_concepts,
    train_max_activations,
)
from protsae.latents.evaluation import iter_evaluation_set, representatives
from protsae.progress import get_logger
from protsae.sae import TopKSAE, load_sae


def load_sae_for_model(
    sae_path: str | os.PathLike[str],
    model: torch.nn.Module,
    model_path: str | os.PathLike[str],
    layer: int,
    device: str | torch.device,
) -> TopKSAE:
    """The SAE at ``sae_path``, checked against the ESM-2 it will encode: its layer and d_model."""
    sae = load_sae(sae_path, device=device)
    if sae.cfg.layer >= 0 and sae.cfg.layer != layer:
        raise ValueError(f"{sae_path}: the SAE was trained on layer {sae.cfg.layer}, not {layer}")
    if sae.cfg.d_model != model.embed_dim:
        raise ValueError(
            f"{sae_path}: SAE d_model {sae.cfg.d_model} != {model_path} embed_dim {model.embed_dim}"
        )
    return sae


def esm_sae_encoder(
    model: torch.nn.Module,
    alphabet: object,
    sae: TopKSAE,
    layer: int,
    max_tokens_per_batch: int,
    device: str | torch.device,
) -> Encoder:
    """An :data:`Encoder`: ESM-2 up to ``layer`` (early exit), then the SAE's top-k encoder.

    Activations follow the SAE's ``activation_convention`` (:mod:`protsae.conventions`); only
    residues are encoded and reported, whatever positions the SAE was trained on.
    Residues of consecutive sequences are concatenated up to ``max_tokens_per_batch`` rows
    per SAE call, so the SAE runs on batches, not on one sequence at a time.
    """

    def encode_rows(
        pending: list[tuple[str, torch.Tensor]],
    ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        x = torch.cat([rep for _, rep in pending]).to(device, non_blocking=True)
        with torch.inference_mode():
            top = sae.encode(x)
        values = top.values.float().cpu().numpy()
        indices = top.indices.to(torch.int32).cpu().numpy()
        start = 0
        for seq_id, rep in pending:
            end = start + len(rep)
            yield seq_id, values[start:end], indices[start:end]
            start = end

    def encode(records: Sequence[tuple[str, str]]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        pending: list[tuple[str, torch.Tensor]] = []
        n_rows = 0
        for seq_id, rep in layer_representations(
            model,
            alphabet,
            records,
            layer,
            max_tokens_per_batch,
            device,
            convention=sae.cfg.activation_convention,
        ):
            pending.append((seq_id, rep))
            n_rows += len(rep)
            if n_rows >= max_tokens_per_batch:
                yield from encode_rows(pending)
                pending, n_rows = [], 0
        if pending:
            yield from encode_rows(pending)

    return encode


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
    device = resolve_device(device)
    model, alphabet = load_model(model_path, device)
    sae = load_sae_for_model(sae_path, model, model_path, layer, device)
    rep_split = representatives(clusters_path)
    get_logger().info(
        "latent stats: %d evaluation sequences, SAE %s (width %d, k %d), layer %d, device %s",
        len(rep_split),
        sae_path,
        sae.cfg.width,
        sae.cfg.k,
        layer,
        device,
    )
    return stream_latent_stats(
        iter_evaluation_set(swissprot_path, clusters_path, chunk_size, rep_split),
        esm_sae_encoder(model, alphabet, sae, layer, max_tokens_per_batch, device),
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
    device = resolve_device(device)
    model, alphabet = load_model(model_path, device)
    sae = load_sae_for_model(sae_path, model, model_path, layer, device)
    seq_stats = pq.read_table(seq_stats_path, columns=["latent", "split", "max_act"])
    logger.info(
        "concepts: %d concepts, %d train and %d test instances, SAE %s (width %d), device %s",
        len(instances.concepts),
        int(instances.n_instances[0].sum()),
        int(instances.n_instances[1].sum()),
        sae_path,
        sae.cfg.width,
        device,
    )
    return stream_concepts(
        iter_evaluation_set(swissprot_path, clusters_path, chunk_size, rep_split),
        esm_sae_encoder(model, alphabet, sae, layer, max_tokens_per_batch, device),
        instances,
        train_max_activations(seq_stats, sae.cfg.width),
        fractions,
        total_sequences=len(rep_split),
    )
