"""Homologs of a steered sequence: blastp against Swiss-Prot, kept within the latent's InterPro
family, aligned with Clustal Omega.

The tools come from PATH (a Debian package or the rule's conda env); :func:`tool_versions`
reports what was found so every log names the versions that made its alignments.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from protsae.progress import get_logger

Record = tuple[str, str]

#: Install hints per tool, for the error when one is missing.
_PACKAGES = {
    "makeblastdb": "ncbi-blast+ (Debian) or bioconda blast",
    "blastp": "ncbi-blast+ (Debian) or bioconda blast",
    "clustalo": "clustalo (Debian) or bioconda clustalo",
}
#: The flag that prints each tool's version.
_VERSION_FLAGS = {"makeblastdb": "-version", "blastp": "-version", "clustalo": "--version"}
#: Files of a protein BLAST database that exist in every database version (v4 and v5).
BLAST_DB_SUFFIXES = (".phr", ".pin", ".psq")


def find_tool(name: str) -> str:
    """The path of external tool ``name``; a clear error saying how to get it when it is absent."""
    binary = shutil.which(name)
    if binary is None:
        raise RuntimeError(
            f"{name} was not found on PATH; install {_PACKAGES.get(name, name)} "
            "(or run snakemake with --software-deployment-method conda)"
        )
    return binary


def tool_versions(names: Sequence[str]) -> dict[str, str]:
    """``{tool: first line of its version output}`` for each tool."""
    versions = {}
    for name in names:
        run = _run([find_tool(name), _VERSION_FLAGS[name]], f"{name} version")
        versions[name] = (run.stdout.strip().splitlines() or ["?"])[0]
    return versions


def _run(command: list[str], what: str) -> subprocess.CompletedProcess:
    run = subprocess.run(command, capture_output=True, text=True, errors="replace")
    if run.returncode != 0:
        tail = (run.stdout + run.stderr).strip().splitlines()[-20:]
        raise RuntimeError(
            f"{what} failed with exit status {run.returncode}; output ends:\n" + "\n".join(tail)
        )
    return run


def _write_fasta(path: Path, records: Sequence[Record]) -> None:
    with open(path, "w") as fh:
        fh.writelines(f">{name}\n{sequence}\n" for name, sequence in records)


def _read_fasta(path: Path) -> dict[str, str]:
    records: dict[str, list[str]] = {}
    current: list[str] | None = None
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line.startswith(">"):
                current = records.setdefault(line[1:].split()[0], [])
            elif line and current is not None:
                current.append(line)
    return {name: "".join(parts) for name, parts in records.items()}


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
        _write_fasta(fasta, list(zip(accessions, sequences, strict=True)))
        command = [find_tool("makeblastdb"), "-in", str(fasta), "-dbtype", "prot"]
        command += ["-out", str(Path(tmp) / prefix.name), "-title", prefix.name]
        logger.info("makeblastdb: %d sequences -> %s", len(accessions), prefix)
        _run(command, "makeblastdb")
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
        _write_fasta(query_file, [(f"q{i}", seq) for i, (_, seq) in enumerate(queries)])
        command = [find_tool("blastp"), "-query", str(query_file), "-db", str(db_prefix)]
        command += ["-outfmt", "6 qseqid stitle evalue bitscore", "-out", str(out)]
        command += ["-evalue", repr(float(evalue)), "-max_target_seqs", str(max_hits)]
        command += ["-num_threads", str(threads)]
        _run(command, "blastp")
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


# ---- Clustal Omega -----------------------------------------------------------------------


def clustal_align(
    records: Sequence[Record], threads: int = 1, workdir: str | os.PathLike[str] | None = None
) -> dict[str, str]:
    """``{id: aligned row}`` of ``records`` (two or more) aligned by Clustal Omega."""
    if len(records) < 2:
        raise ValueError(f"an alignment needs two or more sequences, got {len(records)}")
    with tempfile.TemporaryDirectory(prefix="clustalo-", dir=workdir) as tmp:
        source, out = Path(tmp) / "in.fasta", Path(tmp) / "out.fasta"
        _write_fasta(source, [(f"s{i}", seq) for i, (_, seq) in enumerate(records)])
        command = [find_tool("clustalo"), "-i", str(source), "-o", str(out), "--outfmt=fa"]
        command += ["--seqtype=Protein", f"--threads={threads}", "--force"]
        _run(command, "clustalo")
        aligned = _read_fasta(out)
    missing = [seq_id for i, (seq_id, _) in enumerate(records) if f"s{i}" not in aligned]
    if missing:
        raise RuntimeError(f"clustalo output lacks sequences {missing[:5]}")
    return {seq_id: aligned[f"s{i}"] for i, (seq_id, _) in enumerate(records)}
