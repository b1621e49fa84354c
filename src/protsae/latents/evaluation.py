"""The Swiss-Prot evaluation set, and encoding it through ESM-2 and an SAE.

Evaluation sequences are the cluster representatives of ``swissprot_clusters.parquet``
(rows with ``accession == cluster``), both splits, with sequences from
``swissprot.parquet``. Swiss-Prot is streamed in record batches, so only one chunk of
sequences is held at a time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from protsae.latents.stats import SPLITS, Encoder, EvalRecord, stream_latent_stats
from protsae.progress import get_logger


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
) -> Iterator[list[EvalRecord]]:
    """Yield the evaluation set in chunks of ``chunk_size`` records, in Swiss-Prot file order.

    Raises if a representative has no Swiss-Prot entry or an accession occurs twice.
    """
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


def esm_sae_encoder(
    model: object,
    alphabet: object,
    sae: object,
    layer: int,
    max_tokens_per_batch: int,
    device: str,
) -> Encoder:
    """An :data:`Encoder` that runs ESM-2 up to ``layer`` and the SAE's top-k encoder."""
    import torch

    from protsae.esm import layer_representations

    def encode(records: Sequence[tuple[str, str]]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        reps = layer_representations(model, alphabet, records, layer, max_tokens_per_batch, device)
        for seq_id, x in reps:
            with torch.no_grad():
                top = sae.encode(x.to(device))
            yield (
                seq_id,
                top.values.float().cpu().numpy(),
                top.indices.to(torch.int32).cpu().numpy(),
            )

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
    device: str | None = None,
    chunk_size: int = 4096,
) -> tuple[int, int]:
    """The whole stats stage: load ESM-2 and the SAE, stream the evaluation set, write both tables."""
    import torch

    from protsae.esm import load_model
    from protsae.sae import load_sae

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    logger = get_logger()
    sae = load_sae(sae_path)
    sae_layer = getattr(sae.cfg, "layer", layer)
    if sae_layer is not None and int(sae_layer) != int(layer):
        raise ValueError(f"{sae_path}: SAE was trained on layer {sae_layer}, asked for {layer}")
    if hasattr(sae, "to"):
        sae = sae.to(device)
    if hasattr(sae, "eval"):
        sae.eval()
    model, alphabet = load_model(model_path, device)
    n_eval = len(representatives(clusters_path))
    logger.info(
        "latent stats: %d evaluation sequences, SAE %s (width %d, k %d), layer %d, device %s",
        n_eval,
        Path(sae_path),
        sae.cfg.width,
        sae.cfg.k,
        layer,
        device,
    )
    return stream_latent_stats(
        iter_evaluation_set(swissprot_path, clusters_path, chunk_size),
        esm_sae_encoder(model, alphabet, sae, layer, max_tokens_per_batch, device),
        width=sae.cfg.width,
        top_examples=top_examples,
        seq_stats_path=seq_stats_path,
        top_examples_path=top_examples_path,
        total_sequences=n_eval,
    )
