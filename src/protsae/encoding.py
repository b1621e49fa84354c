"""Your own proteins through a trained SAE: per-residue latents, annotated with what the grid learned.

:func:`encode` reads a FASTA file, runs ESM-2 up to the SAE's layer and the SAE's top-k encoder
(the same :func:`protsae.latents.encode.esm_sae_encoder` the latent-statistics stage uses), and
writes ``OUT.parquet`` (one row per sequence, residue and active latent), ``OUT.tsv`` (each
sequence's strongest latents with their pattern class, family, F1 and generated description when the latent tables of
the SAE exist) and, on request, one static HTML page per sequence under ``OUT/``.

Everything that can be checked is checked before any compute: the SAE folder, the ESM-2 weights
and every FASTA record. Each output file is written atomically.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from protsae.io import AtomicParquetWriter, write_text
from protsae.progress import Progress, get_logger
from protsae.sequences import InputError, esm_residue_letters, read_fasta

if TYPE_CHECKING:
    from protsae.latents.stats import Encoder

#: Longest sequence ESM-2 takes (1024 positions minus BOS and EOS).
MAX_RESIDUES = 1022
ENCODED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("position", pa.int32()),
        ("latent", pa.int32()),
        ("value", pa.float32()),
    ]
)
SUMMARY_COLUMNS = [
    "id",
    "length",
    "rank",
    "latent",
    "max_value",
    "argmax",
    "n_active",
    "pattern_class",
    "family",
    "f1",
    "family_specific",
    "description",
]
_CHUNK_SEQUENCES = 256


@dataclass(frozen=True)
class SaeFolder:
    """A trained or imported SAE folder and where it sits in a results tree."""

    path: Path
    model: str
    layer: int
    k: int
    width: int
    results: Path | None

    @property
    def name(self) -> str:
        return f"k{self.k}-w{self.width}"

    @property
    def latents_dir(self) -> Path | None:
        """``results/latents/{model}/L{layer}/k{k}-w{width}`` (None outside a results tree)."""
        if self.results is None:
            return None
        return self.results / "latents" / self.model / f"L{self.layer}" / self.name

    @property
    def browser_page(self) -> Path | None:
        """The feature browser's latent page (``results/browser/latent.html``, see README)."""
        if self.results is None:
            return None
        return self.results / "browser" / "latent.html"


@dataclass
class SequenceLatents:
    """One encoded sequence: its residues and its sparse (position, latent, value) triples."""

    id: str
    sequence: str
    positions: np.ndarray
    latents: np.ndarray
    values: np.ndarray

    def strongest(self) -> pa.Table:
        """Per active latent: max value, first argmax position and active residues, strongest first."""
        if len(self.latents) == 0:
            return pa.table({"latent": [], "max_value": [], "argmax": [], "n_active": []})
        order = np.lexsort((self.positions, -self.values, self.latents))
        lat = self.latents[order]
        starts = np.flatnonzero(np.r_[True, lat[1:] != lat[:-1]])
        counts = np.diff(np.r_[starts, len(lat)])
        table = pa.table(
            {
                "latent": lat[starts].astype(np.int32),
                "max_value": self.values[order][starts].astype(np.float32),
                "argmax": self.positions[order][starts].astype(np.int32),
                "n_active": counts.astype(np.int32),
            }
        )
        return table.sort_by([("max_value", "descending"), ("latent", "ascending")])

    def track(self, latent: int) -> np.ndarray:
        """The latent's activation at every residue (zeros where inactive)."""
        out = np.zeros(len(self.sequence), dtype=np.float32)
        hit = self.latents == latent
        out[self.positions[hit]] = self.values[hit]
        return out


@dataclass
class EncodeResult:
    """What :func:`encode` wrote."""

    parquet: Path
    tsv: Path
    html_dir: Path | None
    n_sequences: int
    n_rows: int
    skipped: list[str] = field(default_factory=list)
    cropped: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- inputs


def sae_folder(
    path: str | os.PathLike[str], results: str | os.PathLike[str] | None = None
) -> SaeFolder:
    """Check that ``path`` is an SAE folder (``sae.json`` + ``sae.safetensors``) and read its identity.

    ``results`` defaults to the folder three levels above ``sae/`` when ``path`` has the
    workflow's ``.../sae/{model}/L{layer}/k{k}-w{width}`` shape.
    """
    import json

    folder = Path(path)
    if folder.is_file() and folder.name == "sae.safetensors":
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{folder}: SAE folder not found")
    missing = [name for name in ("sae.json", "sae.safetensors") if not (folder / name).is_file()]
    if missing:
        raise InputError(
            f"{folder}: not an SAE folder (no {' or '.join(missing)}; expected "
            "results/sae/{model}/L{layer}/k{k}-w{width})"
        )
    try:
        cfg = json.loads((folder / "sae.json").read_text())
        k, width = int(cfg["k"]), int(cfg["width"])
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{folder / 'sae.json'}: not a valid SAE config ({err})") from err
    layer = int(cfg.get("layer", -1))
    if layer < 0 and folder.parent.name[:1] == "L" and folder.parent.name[1:].isdigit():
        layer = int(folder.parent.name[1:])
    if layer < 0:
        raise InputError(f"{folder / 'sae.json'}: no layer, and the folder is not under L<layer>/")
    model = str(cfg.get("model") or folder.parent.parent.name)
    if results is None and len(folder.parents) > 3 and folder.parents[2].name == "sae":
        results = folder.parents[3]
    return SaeFolder(folder, model, layer, k, width, Path(results) if results is not None else None)


def find_checkpoint(sae: SaeFolder, model: str | os.PathLike[str] | None = None) -> Path:
    """The ESM-2 weights for ``sae``: ``model`` when given (a path, or a fair-esm name looked up
    like the SAE's own), else ``{model}.pt`` where the workflow's download stage puts it
    (``resources/downloads/`` beside the results folder or the working directory) or in
    torch hub's checkpoint cache."""
    if model is not None and (Path(model).is_file() or str(model).endswith(".pt")):
        if not Path(model).is_file():
            raise InputError(f"{model}: ESM-2 checkpoint not found")
        return Path(model)
    name = str(model) if model is not None else sae.model
    roots = [Path.cwd()]
    if sae.results is not None:
        roots = [sae.results.resolve(), *sae.results.resolve().parents, *roots]
    candidates = [root / "resources" / "downloads" / f"{name}.pt" for root in roots]
    try:
        import torch.hub

        candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / f"{name}.pt")
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    for candidate in dict.fromkeys(candidates):
        if candidate.is_file():
            return candidate
    raise InputError(
        f"{sae.path}: ESM-2 weights of model {name!r} not found (looked for {name}.pt in "
        f"{', '.join(str(c.parent) for c in dict.fromkeys(candidates))}); pass --model PATH"
    )


def read_records(
    fasta: str | os.PathLike[str], skip_long: bool = False, logger: logging.Logger | None = None
) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """Every record of ``fasta`` checked for ESM-2: returns (records, skipped ids, cropped ids).

    Empty records and residues outside ESM-2's alphabet are errors naming the record; a
    sequence longer than 1022 residues is cropped to its first 1022 with a warning, or
    skipped with ``skip_long``.
    """
    logger = logger or get_logger()
    letters = frozenset(esm_residue_letters())
    records, skipped, cropped = [], [], []
    if not Path(fasta).is_file():
        raise InputError(f"{fasta}: FASTA file not found")
    for number, record in enumerate(read_fasta(fasta, logger=logger), start=1):
        seq = record.sequence
        bad = set(seq) - letters
        if bad:
            raise InputError(
                f"{fasta}: record #{number} ({record.id!r}) has characters outside ESM-2's "
                f"alphabet: {''.join(sorted(bad))!r}"
            )
        if len(seq) > MAX_RESIDUES:
            if skip_long:
                logger.warning(
                    "%s: %r has %d residues > %d: skipped", fasta, record.id, len(seq), MAX_RESIDUES
                )
                skipped.append(record.id)
                continue
            logger.warning(
                "%s: %r has %d residues > %d: cropped to the first %d",
                fasta,
                record.id,
                len(seq),
                MAX_RESIDUES,
                MAX_RESIDUES,
            )
            cropped.append(record.id)
            seq = seq[:MAX_RESIDUES]
        records.append((record.id, seq))
    if not records:
        raise InputError(f"{fasta}: no sequences to encode")
    return records, skipped, cropped


def read_annotations(sae: SaeFolder) -> pa.Table | None:
    """``latent, pattern_class, family, f1, family_specific, description`` from the SAE's latent
    tables (those that exist), or None."""
    folder = sae.latents_dir
    if folder is None:
        return None
    tables = []
    for name, columns in (
        ("classes.parquet", ["latent", "pattern_class"]),
        ("families.parquet", ["latent", "family", "f1", "family_specific"]),
        ("descriptions.parquet", ["latent", "description"]),
    ):
        if (folder / name).is_file():
            tables.append(pq.read_table(folder / name, columns=columns))
    if not tables:
        return None
    joined = tables[0]
    for table in tables[1:]:
        joined = joined.join(table, "latent", join_type="full outer")
    return joined


# --------------------------------------------------------------------------- encoding


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
    from protsae.latents.encode import esm_sae_encoder
    from protsae.sae import load_sae

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
    rows = []
    for rank, row in enumerate(item.strongest().slice(0, top).to_pylist()):
        note = notes.get(row["latent"], {})
        rows.append(
            {
                "id": item.id,
                "length": len(item.sequence),
                "rank": rank,
                **row,
                "pattern_class": note.get("pattern_class"),
                "family": note.get("family"),
                "f1": note.get("f1"),
                "family_specific": note.get("family_specific"),
                "description": note.get("description"),
            }
        )
    return rows


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
    *,
    results: str | os.PathLike[str] | None = None,
    model: str | os.PathLike[str] | None = None,
    html: bool = False,
    html_latent: int | None = None,
    skip_long: bool = False,
    top: int = 10,
    device: str = "auto",
    max_tokens_per_batch: int = 4096,
) -> EncodeResult:
    """Encode the proteins of ``fasta`` with the SAE folder ``sae``; write ``out``.parquet/.tsv
    (and ``out``/ HTML pages with ``html``). See the module docstring and the README.

    ``results`` is the results folder whose ``latents/`` annotate the latents (default: the one
    holding ``sae``); ``model`` a checkpoint path or fair-esm name overriding ``sae.json``'s model;
    ``html_latent`` the latent that colours every page (default: each sequence's strongest);
    ``top`` the latents per sequence in the TSV.
    """
    from protsae.encoding_html import HtmlPages

    if top < 1:
        raise ValueError(f"top must be positive, got {top}")
    logger = get_logger()
    folder = sae_folder(sae, results)
    checkpoint = find_checkpoint(folder, model)
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
