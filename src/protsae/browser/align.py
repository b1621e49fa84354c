"""Multiple sequence alignment of a latent's top sequences with Clustal Omega."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path


class AlignmentError(RuntimeError):
    """clustalo is missing or failed."""


def clustalo_binary() -> str:
    """Path of the ``clustalo`` executable, or a clear error saying how to get it."""
    found = shutil.which("clustalo")
    if not found:
        raise AlignmentError(
            "clustalo (Clustal Omega) not found on PATH: install it (Debian: apt-get install "
            "clustalo; conda: bioconda::clustalo) to build the feature browser"
        )
    return found


def _read_fasta(text: str) -> dict[str, str]:
    records: dict[str, list[str]] = {}
    name = None
    for line in text.splitlines():
        if line.startswith(">"):
            name = line[1:].split()[0]
            records[name] = []
        elif name is not None:
            records[name].append(line.strip())
    return {key: "".join(parts) for key, parts in records.items()}


def align(sequences: Sequence[str], binary: str | None = None) -> list[str]:
    """The sequences aligned (gaps ``-``), in input order; fewer than two come back as given.

    Sequences go to clustalo under generated names, so ids with any characters are safe.
    """
    if len(sequences) < 2:
        return list(sequences)
    binary = binary or clustalo_binary()
    with tempfile.TemporaryDirectory(prefix="protsae-align-") as tmp:
        source = Path(tmp, "in.fasta")
        source.write_text("".join(f">s{i}\n{seq}\n" for i, seq in enumerate(sequences)))
        done = subprocess.run(
            [binary, "-i", str(source), "--outfmt=fa", "--threads=1", "--seqtype=Protein"],
            capture_output=True,
            text=True,
        )
    if done.returncode != 0:
        raise AlignmentError(f"clustalo failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    aligned = _read_fasta(done.stdout)
    out = [aligned.get(f"s{i}") for i in range(len(sequences))]
    for i, (row, seq) in enumerate(zip(out, sequences, strict=True)):
        if row is None or row.replace("-", "") != seq.upper():
            raise AlignmentError(f"clustalo output lost or changed sequence {i}")
    return out
