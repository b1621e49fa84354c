"""Homologs of a steered sequence: blastp against Swiss-Prot, kept within the latent's InterPro
family, aligned with Clustal Omega.

The tools are found and run through :mod:`protsae.tools` (which also holds the Clustal Omega
wrapper, shared with the feature browser).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from protsae.progress import get_logger
from protsae.tools import find_tool, run_tool, write_fasta

Record = tuple[str, str]

#: Files of a protein BLAST database that exist in every database version (v4 and v5).
BLAST_DB_SUFFIXES = (".phr", ".pin", ".psq")


# ---- the database ------------------------------------------------------------------------


def build_blast_db(
    table: pa.Table, prefix: str | os.PathLike[str], logger: logging.Logger | None = None
) -> list[Path]:
    """A protein BLAST database of the ``accession``/``sequence`` rows at ``prefix``.

    Built in a temporary folder beside ``prefix`` and moved into place when complete, the
    ``.pin`` index last, so a failed build leaves no database that looks finished.
    """
    logger = logger or get_logger()
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    accessions = table.column("accession").to_pylist()
    sequences = table.column("sequence").to_pylist()
    with tempfile.TemporaryDirectory(prefix="makeblastdb-", dir=prefix.parent) as tmp:
        fasta = Path(tmp) / "sequences.fasta"
        write_fasta(fasta, list(zip(accessions, sequences, strict=True)))
        command = [find_tool("makeblastdb"), "-in", str(fasta), "-dbtype", "prot"]
        command += ["-out", str(Path(tmp) / prefix.name), "-title", prefix.name]
        logger.info("makeblastdb: %d sequences -> %s", len(accessions), prefix)
        run_tool(command, "makeblastdb")
        built = sorted(p for p in Path(tmp).iterdir() if p.name.startswith(prefix.name + "."))
        built.sort(key=lambda p: p.suffix == ".pin")
        for path in built:
            os.replace(path, prefix.parent / path.name)
    return [prefix.parent / p.name for p in built]


# ---- blastp ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """The best HSP of one database sequence for one query."""

    subject: str
    evalue: float
    bitscore: float


def blastp(
    queries: Sequence[Record],
    db_prefix: str | os.PathLike[str],
    evalue: float,
    max_hits: int,
    threads: int = 1,
    workdir: str | os.PathLike[str] | None = None,
) -> dict[str, list[Hit]]:
    """``{query id: hits}``, best first (e-value, then bit score), one per subject.

    ``max_hits`` is blastp's ``-max_target_seqs``: the query itself and hits outside the
    family count towards it.
    """
    names = {f"q{i}": seq_id for i, (seq_id, _) in enumerate(queries)}
    hits: dict[str, dict[str, Hit]] = {seq_id: {} for seq_id, _ in queries}
    if not queries:
        return {}
    with tempfile.TemporaryDirectory(prefix="blastp-", dir=workdir) as tmp:
        query_file, out = Path(tmp) / "queries.fasta", Path(tmp) / "hits.tsv"
        write_fasta(query_file, [(f"q{i}", seq) for i, (_, seq) in enumerate(queries)])
        command = [find_tool("blastp"), "-query", str(query_file), "-db", str(db_prefix)]
        command += ["-outfmt", "6 qseqid stitle evalue bitscore", "-out", str(out)]
        command += ["-evalue", repr(float(evalue)), "-max_target_seqs", str(max_hits)]
        command += ["-num_threads", str(threads)]
        run_tool(command, "blastp")
        with open(out) as fh:
            for number, line in enumerate(fh, start=1):
                fields = line.rstrip("\n").split("\t")
                if len(fields) != 4 or fields[0] not in names or not fields[1].split():
                    raise RuntimeError(f"blastp output line {number} unreadable: {line!r}")
                subject = fields[1].split()[0]
                hit = Hit(subject, float(fields[2]), float(fields[3]))
                found = hits[names[fields[0]]]
                if subject not in found or (hit.evalue, -hit.bitscore) < (
                    found[subject].evalue,
                    -found[subject].bitscore,
                ):
                    found[subject] = hit
    return {
        seq_id: sorted(found.values(), key=lambda h: (h.evalue, -h.bitscore, h.subject))
        for seq_id, found in hits.items()
    }


def family_hits(
    hits: Sequence[Hit],
    query_id: str,
    family: str,
    families_of: Mapping[str, Collection[str]],
) -> list[Hit]:
    """The hits in ``family`` other than the query itself, in their order."""
    return [h for h in hits if h.subject != query_id and family in families_of.get(h.subject, ())]
