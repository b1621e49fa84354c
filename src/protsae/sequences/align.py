"""Multiple sequence alignment with Clustal Omega: the one wrapper, used by steering (a latent's
homologs) and the feature browser (a latent's top sequences)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from protsae.sequences.fasta import read_fasta
from protsae.tools import find_tool, run_tool, write_fasta


def clustal_align(
    records: Sequence[tuple[str, str]],
    threads: int = 1,
    workdir: str | os.PathLike[str] | None = None,
    binary: str | None = None,
) -> dict[str, str]:
    """``{id: aligned row}`` of ``records`` (two or more) aligned by Clustal Omega.

    Sequences go to clustalo under generated names, so ids with any characters are safe; an
    output that lacks a sequence is an error. ``binary``: clustalo's path (default: found on
    PATH).
    """
    if len(records) < 2:
        raise ValueError(f"an alignment needs two or more sequences, got {len(records)}")
    with tempfile.TemporaryDirectory(prefix="clustalo-", dir=workdir) as tmp:
        source, out = Path(tmp) / "in.fasta", Path(tmp) / "out.fasta"
        write_fasta(source, [(f"s{i}", seq) for i, (_, seq) in enumerate(records)])
        command = [
            binary or find_tool("clustalo"),
            "-i",
            str(source),
            "-o",
            str(out),
            "--outfmt=fa",
        ]
        command += ["--seqtype=Protein", f"--threads={threads}", "--force"]
        run_tool(command, "clustalo")
        aligned = {r.id: r.sequence for r in read_fasta(out, unique_ids=False)}
    missing = [seq_id for i, (seq_id, _) in enumerate(records) if f"s{i}" not in aligned]
    if missing:
        raise RuntimeError(f"clustalo output lacks sequences {missing[:5]}")
    return {seq_id: aligned[f"s{i}"] for i, (seq_id, _) in enumerate(records)}
