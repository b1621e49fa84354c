"""Steering one latent from files: its conservation table in, one row per (sequence, multiplier,
position) out, with the original, unsteered and steered residues beside the family's consensus."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from protsae.esm import ForwardOptions
from protsae.io import write_parquet
from protsae.progress import get_logger
from protsae.sae.at_layer import EsmSae
from protsae.steering.clamp import steered_sequences
from protsae.steering.homologs import (
    CONSERVATION_SCHEMA,
    META_FAMILY,
    META_LATENT,
    META_MAX,
    META_SKIP,
)

LATENT_SCHEMA = pa.schema(
    [
        pa.field("latent", pa.int32()),
        pa.field("family", pa.string()),
        pa.field("id", pa.string()),
        pa.field("multiplier", pa.float64()),
        pa.field("clamp_value", pa.float32()),
        pa.field("pos", pa.int32()),
        pa.field("original", pa.string()),
        pa.field("baseline", pa.string()),
        pa.field("steered", pa.string()),
        pa.field("consensus", pa.string()),
        pa.field("conservation", pa.float32()),
        pa.field("entropy", pa.float32()),
        pa.field("n_homologs", pa.int32()),
    ]
)


def read_conservation(path: str | os.PathLike[str]) -> tuple[pa.Table, dict[bytes, bytes]]:
    """A conservation table sorted by (id, pos), and its metadata (latent, family, max activation)."""
    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    missing = [k.decode() for k in (META_LATENT, META_FAMILY, META_MAX) if k not in meta]
    if missing or table.schema.remove_metadata() != CONSERVATION_SCHEMA:
        raise ValueError(f"{path}: not a steering conservation table (metadata lacks {missing})")
    return table.sort_by([("id", "ascending"), ("pos", "ascending")]), dict(meta)


def conserved_records(table: pa.Table) -> list[tuple[str, str]]:
    """``(id, sequence)`` of each sequence in a sorted conservation table."""
    ids = table["id"].to_pylist()
    residues = table["residue"].to_pylist()
    records: dict[str, list[str]] = {}
    for seq_id, residue in zip(ids, residues, strict=True):
        records.setdefault(seq_id, []).append(residue)
    return [(seq_id, "".join(chars)) for seq_id, chars in records.items()]


def _chars(predictions: dict[str, list[str]], ids: Sequence[str], which: int) -> pa.Array:
    return pa.array(list("".join(predictions[seq_id][which] for seq_id in ids)), pa.string())


def steering_table(
    conservation: pa.Table,
    predictions: dict[str, list[str]],
    multipliers: Sequence[float],
    max_activation: float,
) -> pa.Table:
    """The per-latent output from a sorted conservation table and, per id, the unsteered
    prediction followed by one steered prediction per multiplier."""
    ids = [seq_id for seq_id, _ in conserved_records(conservation)]
    n = conservation.num_rows
    parts = []
    for i, multiplier in enumerate(multipliers):
        columns = {
            "latent": conservation["latent"],
            "family": conservation["family"],
            "id": conservation["id"],
            "multiplier": pa.array(np.full(n, float(multiplier))),
            "clamp_value": pa.array(np.full(n, multiplier * max_activation, np.float32)),
            "pos": conservation["pos"],
            "original": conservation["residue"],
            "baseline": _chars(predictions, ids, 0),
            "steered": _chars(predictions, ids, i + 1),
        }
        for name in ("consensus", "conservation", "entropy", "n_homologs"):
            columns[name] = conservation[name]
        parts.append(pa.table(columns, schema=LATENT_SCHEMA))
    return pa.concat_tables(parts) if parts else LATENT_SCHEMA.empty_table()


def steer_latent_from_files(
    conservation_path: str | os.PathLike[str],
    sae_path: str | os.PathLike[str],
    model_path: str | os.PathLike[str],
    layer: int,
    multipliers: Sequence[float],
    out_path: str | os.PathLike[str],
    only_where_active: bool = False,
    forward: ForwardOptions | None = None,
) -> int:
    """Steer the latent of one conservation table; write the per-latent table; rows written.

    ESM-2 runs as ``forward`` says (default: 4096 tokens per batch, device "auto"). A skipped
    latent (its reason in the conservation table's metadata) gets an empty table carrying the
    same reason, and no model is loaded.
    """
    logger = get_logger()
    forward = forward or ForwardOptions()
    conservation, meta = read_conservation(conservation_path)
    latent, max_activation = int(meta[META_LATENT]), float(meta[META_MAX])
    if META_SKIP in meta or conservation.num_rows == 0:
        logger.warning("latent %d skipped: %s", latent, meta.get(META_SKIP, b"no rows").decode())
        write_parquet(LATENT_SCHEMA.empty_table().replace_schema_metadata(meta), out_path)
        return 0
    esm_sae = EsmSae.load(model_path, sae_path, layer, forward.device or "auto")
    records = conserved_records(conservation)
    values = [None] + [m * max_activation for m in multipliers]
    logger.info(
        "latent %d (%s): %d sequences, %d residues, clamp values %s (max activation %.4g), "
        "only where active: %s",
        latent,
        meta[META_FAMILY].decode(),
        len(records),
        conservation.num_rows,
        [round(v, 4) for v in values[1:]],
        max_activation,
        only_where_active,
    )
    predictions = steered_sequences(
        esm_sae, records, latent, values, only_where_active, forward.max_tokens_per_batch
    )
    table = steering_table(conservation, predictions, multipliers, max_activation)
    for multiplier in multipliers:
        rows = table.filter(pc.equal(table["multiplier"], float(multiplier)))
        same = pc.sum(pc.equal(rows["steered"], rows["original"]).cast(pa.int64())).as_py()
        logger.info("multiplier %g: %d of %d residues unchanged", multiplier, same, rows.num_rows)
    write_parquet(table.replace_schema_metadata(meta), out_path)
    return table.num_rows
