"""Your own proteins through a trained SAE: per-residue latents, annotated with what the grid learned.

:func:`encode` reads a FASTA file, runs ESM-2 up to the SAE's layer and the SAE's top-k encoder
(the same :func:`protsae.sae.at_layer.esm_sae_encoder` the latent-statistics stage uses), and
writes ``OUT.parquet`` (one row per sequence, residue and active latent), ``OUT.tsv`` (each
sequence's strongest latents, ranked by their value as a fraction of the latent's own train
maximum, with pattern class, family, F1, the family threshold and whether the value passes it,
when the latent tables of the SAE exist) and, on request, one static HTML page per sequence
under ``OUT/``, shaded on each latent's own scale with a switcher between latents.

Everything that can be checked is checked before any compute: the SAE folder, the ESM-2 weights
and every FASTA record (:mod:`.inputs`). Each output file is written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from protsae.encoding.inputs import (
    find_checkpoint,
    ranked_latents,
    read_annotations,
    read_records,
    sae_folder,
)
from protsae.encoding.pages import HtmlPages
from protsae.encoding.types import (
    ENCODED_SCHEMA,
    SUMMARY_COLUMNS,
    EncodeOptions,
    EncodeResult,
    SaeFolder,
    SequenceLatents,
)
from protsae.io import AtomicParquetWriter, write_text
from protsae.progress import Progress, get_logger
from protsae.sequences import InputError

if TYPE_CHECKING:
    from protsae.latents.collect import Encoder

_CHUNK_SEQUENCES = 256


def _in_input_order(
    encoder: Encoder, records: Sequence[tuple[str, str]]
) -> Iterator[SequenceLatents]:
    """Encode chunk by chunk and yield in the FASTA's order (the encoder yields longest first)."""
    for start in range(0, len(records), _CHUNK_SEQUENCES):
        chunk = records[start : start + _CHUNK_SEQUENCES]
        done = {}
        for seq_id, values, indices in encoder(chunk):
            pos, col = np.nonzero(values > 0)
            done[seq_id] = (pos.astype(np.int32), indices[pos, col], values[pos, col])
        for seq_id, seq in chunk:
            pos, lat, val = done[seq_id]
            yield SequenceLatents(seq_id, seq, pos, lat.astype(np.int32), val.astype(np.float32))


def encode_records(
    records: Sequence[tuple[str, str]],
    sae: SaeFolder,
    checkpoint: str | os.PathLike[str],
    device: str = "auto",
    max_tokens_per_batch: int = 4096,
) -> Iterator[SequenceLatents]:
    """Yield each record's active latents, in input order, with progress (sequences/s) on stderr."""
    from protsae.esm import load_model, resolve_device
    from protsae.sae import load_sae
    from protsae.sae.at_layer import esm_sae_encoder

    logger = get_logger()
    dev = resolve_device(device)
    model_sae = load_sae(sae.path / "sae.safetensors", device=dev)
    model, alphabet = load_model(checkpoint, dev)
    if model_sae.cfg.d_model != model.embed_dim:
        raise InputError(
            f"{sae.path}: SAE d_model {model_sae.cfg.d_model} != {checkpoint} embed_dim "
            f"{model.embed_dim}: wrong ESM-2 model for this SAE"
        )
    if sae.layer > model.num_layers:
        raise InputError(
            f"{sae.path}: layer {sae.layer} is deeper than {checkpoint} ({model.num_layers} layers)"
        )
    logger.info(
        "encode: %d sequences through %s layer %d and SAE %s (k %d, width %d) on %s",
        len(records),
        checkpoint,
        sae.layer,
        sae.path,
        sae.k,
        sae.width,
        dev,
    )
    encoder = esm_sae_encoder(model, alphabet, model_sae, sae.layer, max_tokens_per_batch, dev)
    progress = Progress("encode", len(records), "sequences", logger, interval=5.0)
    for item in _in_input_order(encoder, records):
        progress.update(1)
        yield item
    progress.finish()


def _summary_rows(item: SequenceLatents, top: int, notes: dict[int, dict]) -> list[dict]:
    return [
        {"id": item.id, "length": len(item.sequence), "rank": rank, **row}
        for rank, row in enumerate(ranked_latents(item, notes)[:top])
    ]


def _format_tsv(rows: list[dict]) -> str:
    def cell(value: object) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return ""
        if isinstance(value, float):
            return f"{value:.6g}"
        return str(value).replace("\t", " ").replace("\n", " ")

    lines = ["\t".join(SUMMARY_COLUMNS)]
    lines += ["\t".join(cell(row[c]) for c in SUMMARY_COLUMNS) for row in rows]
    return "\n".join(lines) + "\n"


def encode(
    fasta: str | os.PathLike[str],
    sae: str | os.PathLike[str],
    out: str | os.PathLike[str],
    options: EncodeOptions | None = None,
    **flags: object,
) -> EncodeResult:
    """Encode the proteins of ``fasta`` with the SAE folder ``sae``; write ``out``.parquet/.tsv
    (and ``out``/ HTML pages with ``html``). See the module docstring and the README.

    ``options`` (default :class:`EncodeOptions`) or, one by one, ``flags`` (its field names:
    ``protsae.encode(fasta, sae, out, html=True, device="cpu")``) say how; not both.
    """
    if options is not None and flags:
        raise TypeError("give encode() an EncodeOptions or keyword flags, not both")
    o = options or EncodeOptions(**flags)  # an unknown flag is a TypeError naming it
    results, model, force_model, html = o.results, o.model, o.force_model, o.html
    html_latent, skip_long, top = o.html_latent, o.skip_long, o.top
    device, max_tokens_per_batch = o.device, o.max_tokens_per_batch

    if top < 1:
        raise ValueError(f"top must be positive, got {top}")
    logger = get_logger()
    folder = sae_folder(sae, results)
    checkpoint = find_checkpoint(folder, model, force_model, logger)
    records, skipped, cropped = read_records(fasta, skip_long, logger)
    annotations = read_annotations(folder)
    notes = {} if annotations is None else {r["latent"]: r for r in annotations.to_pylist()}
    out = Path(out)
    parquet, tsv = out.with_name(out.name + ".parquet"), out.with_name(out.name + ".tsv")
    pages = HtmlPages(out, folder, notes, html_latent) if html else None
    writer = AtomicParquetWriter(parquet, ENCODED_SCHEMA)
    ok, n_rows, summary = False, 0, []
    try:
        for item in encode_records(records, folder, checkpoint, device, max_tokens_per_batch):
            writer.writer.write_table(
                pa.table(
                    {
                        "id": [item.id] * len(item.latents),
                        "position": item.positions,
                        "latent": item.latents,
                        "value": item.values,
                    },
                    schema=ENCODED_SCHEMA,
                )
            )
            n_rows += len(item.latents)
            summary += _summary_rows(item, top, notes)
            if pages is not None:
                pages.add(item)
        write_text(_format_tsv(summary), tsv)
        if pages is not None:
            pages.commit()
        ok = True
    finally:
        writer.finish(ok)
        if pages is not None and not ok:
            pages.discard()
    logger.info("encode: wrote %s (%d rows), %s", parquet, n_rows, tsv)
    return EncodeResult(parquet, tsv, out if html else None, len(records), n_rows, skipped, cropped)
