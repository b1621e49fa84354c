"""Predicted structures of the sequences a browser page shows: fetched from a URL template
(AlphaFold DB by default) through :func:`protsae.sources.fetch`, or copied from a local folder.

Every file is checked before it is kept: it must parse as PDB or mmCIF (Biopython) and one of
its chains must have exactly the Swiss-Prot sequence. What fails is skipped and named (the
index's ``status`` and ``reason``, and the log), never half-written: the folder is built
beside its destination and renamed into place. A model the server does not have (HTTP 404)
is recorded in the download cache and not asked for again.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa

from protsae.filetypes import is_html, sniff
from protsae.io import atomic_dir, write_parquet
from protsae.progress import get_logger
from protsae.sources import DownloadError, NotFoundError, Retry, fetch

ALPHAFOLD_URL = "https://alphafold.ebi.ac.uk/files/AF-{accession}-F1-model_v6.cif"
FORMATS = {".cif": "cif", ".mmcif": "cif", ".pdb": "pdb", ".ent": "pdb"}
INDEX_SCHEMA = pa.schema(
    [
        pa.field("accession", pa.string()),
        pa.field("source", pa.string()),
        pa.field("path", pa.string()),  # file name inside the structures folder; null if none
        pa.field("format", pa.string()),  # cif | pdb
        pa.field("status", pa.string()),  # ok | not_found | missing | mismatch | unreadable | error
        pa.field("reason", pa.string()),
    ]
)


class StructureError(ValueError):
    """A structure file that cannot be used; the message says why."""


def structure_format(name: str) -> str:
    """``cif`` or ``pdb`` from a file name's extension (StructureError for others)."""
    suffix = Path(name).suffix.lower()
    if suffix not in FORMATS:
        raise StructureError(f"{name}: not a structure file name (.cif, .mmcif, .pdb or .ent)")
    return FORMATS[suffix]


def chain_sequences(path: str | os.PathLike[str], fmt: str) -> list[str]:
    """One-letter sequences of the polymer chains of the first model of a PDB/mmCIF file."""
    from Bio.PDB import MMCIFParser, PDBParser
    from Bio.PDB.PDBExceptions import PDBConstructionWarning
    from Bio.SeqUtils import seq1

    head = Path(path).read_bytes()[:4096]
    if is_html(head):
        raise StructureError("an HTML page, not a structure")
    kind = sniff(head)
    if kind is not None:
        raise StructureError(f"{kind}, not a structure")
    parser = MMCIFParser(QUIET=True) if fmt == "cif" else PDBParser(QUIET=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PDBConstructionWarning)
            structure = parser.get_structure("s", str(path))
    except Exception as exc:  # Biopython raises many types on malformed files
        raise StructureError(f"does not parse as {fmt}: {type(exc).__name__}: {exc}") from exc
    models = list(structure)
    if not models:
        raise StructureError(f"no model in the file (not a {fmt} structure?)")
    chains = []
    for chain in models[0]:
        residues = [r for r in chain if r.id[0] == " "]
        if residues:
            chains.append("".join(seq1(r.get_resname()) for r in residues))
    if not chains:
        raise StructureError(f"no amino-acid residues (not a {fmt} structure, or cut short?)")
    return chains


def check_structure(path: str | os.PathLike[str], fmt: str, sequence: str) -> None:
    """StructureError unless a chain of the file has exactly ``sequence``."""
    chains = chain_sequences(path, fmt)
    if sequence.upper() not in chains:
        longest = max(chains, key=len)
        raise StructureError(
            f"its residue sequence ({len(longest)} aa, starting {longest[:12]}) differs from "
            f"the Swiss-Prot sequence ({len(sequence)} aa, starting {sequence[:12]})"
        )


def _row(accession: str, source: str, status: str, reason: str | None = None, **kw) -> dict:
    return dict(
        accession=accession,
        source=source,
        path=kw.get("path"),
        format=kw.get("format"),
        status=status,
        reason=reason,
    )


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link to a downloaded model (one copy on disk), a copy across file systems."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _from_folder(accession: str, folder: Path) -> tuple[Path | None, str | None]:
    for suffix in FORMATS:
        candidate = folder / f"{accession}{suffix}"
        if candidate.is_file():
            return candidate, FORMATS[suffix]
    return None, None


def _from_url(
    accession: str, template: str, cache: Path, logger: logging.Logger, retries: int
) -> tuple[Path | None, str | None, dict | None]:
    """The cached download of ``accession`` (fetched when not cached), or a row saying why not."""
    url = template.format(accession=accession)
    fmt = structure_format(url.split("?")[0])
    dest = cache / f"{accession}.{fmt}"
    absent = cache / f"{accession}.{fmt}.not-found"
    if absent.exists():
        return None, None, _row(accession, "alphafold", "not_found", absent.read_text().strip())
    if not dest.exists():
        try:
            fetch(url, dest, retry=Retry(retries), logger=logger, kind="text", label="structures")
        except NotFoundError as exc:
            reason = f"no model at {url} (HTTP {exc.code}; not asked again)"
            absent.parent.mkdir(parents=True, exist_ok=True)
            absent.write_text(reason + "\n")
            return None, None, _row(accession, "alphafold", "not_found", reason)
        except DownloadError as exc:
            return None, None, _row(accession, "alphafold", "error", str(exc))
    return dest, fmt, None


def collect_structures(
    sequences: Mapping[str, str],
    out_dir: str | os.PathLike[str],
    source: str,
    url: str = ALPHAFOLD_URL,
    folder: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    retries: int = 3,
    logger: logging.Logger | None = None,
) -> pa.Table:
    """Write ``out_dir`` with one checked structure file per accession of ``sequences``
    (accession -> Swiss-Prot sequence) and ``index.parquet`` (:data:`INDEX_SCHEMA`); return
    the index. ``source``: ``alphafold`` (``url`` with ``{accession}``, downloads cached in
    ``cache_dir``), ``dir`` (files ``<accession>.cif|.pdb`` in ``folder``) or ``none``."""
    logger = logger or get_logger("protsae.structures")
    if source not in ("alphafold", "dir", "none"):
        raise ValueError(f"structures.source must be alphafold, dir or none, not {source!r}")
    if source == "dir" and (folder is None or not Path(folder).is_dir()):
        raise FileNotFoundError(f"structures.dir {folder}: no such folder")
    if source == "alphafold":
        if "{accession}" not in url:
            raise ValueError(f"structures.url {url!r} has no {{accession}} to fill in")
        if cache_dir is None:
            raise ValueError("a cache folder is needed for downloaded structures")
    rows = []
    with atomic_dir(out_dir) as work:
        for accession in sorted(sequences):
            if source == "none":
                rows.append(_row(accession, source, "none", "no structure source configured"))
                continue
            if source == "dir":
                path, fmt = _from_folder(accession, Path(folder))
                if path is None:
                    rows.append(_row(accession, source, "missing", f"no {accession}.cif or .pdb"))
                    continue
            else:
                path, fmt, failed = _from_url(accession, url, Path(cache_dir), logger, retries)
                if failed is not None:
                    logger.warning("structure of %s skipped: %s", accession, failed["reason"])
                    rows.append(failed)
                    continue
            try:
                check_structure(path, fmt, sequences[accession])
            except StructureError as exc:
                reason = f"{path.name}: {exc}"
                logger.warning("structure of %s skipped: %s", accession, reason)
                status = "mismatch" if "differs" in str(exc) else "unreadable"
                rows.append(_row(accession, source, status, reason))
                if source == "alphafold" and status == "unreadable":
                    path.unlink(missing_ok=True)  # a broken download is fetched again next time
                continue
            name = f"{accession}.{fmt}"
            _link_or_copy(path, work / name)
            rows.append(_row(accession, source, "ok", path=name, format=fmt))
        index = pa.Table.from_pylist(rows, INDEX_SCHEMA)
        write_parquet(index, work / "index.parquet")
    ok = sum(r["status"] == "ok" for r in rows)
    logger.info("structures: %d of %d accessions kept in %s", ok, len(rows), out_dir)
    return index
