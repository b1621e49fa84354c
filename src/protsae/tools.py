"""External tools (MMseqs2, BLAST+, Clustal Omega): where each is, how to install it when it is
missing, and running one with its output in the error (the Clustal Omega wrapper built on these
is :func:`protsae.sequences.align.clustal_align`).

Tools come from PATH (a Debian package or the rule's conda env); :func:`tool_versions` says
what was found, so a log can name the versions that made its results.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

#: How to get each tool, for the error when one is missing.
INSTALL_HINTS = {
    "mmseqs": "mmseqs2 (Debian/Ubuntu: `apt-get install mmseqs2`; conda: bioconda::mmseqs2)",
    "makeblastdb": "ncbi-blast+ (Debian) or bioconda blast",
    "blastp": "ncbi-blast+ (Debian) or bioconda blast",
    "clustalo": "clustalo (Clustal Omega; Debian) or bioconda clustalo",
}
#: The flag that prints each tool's version.
VERSION_FLAGS = {"makeblastdb": "-version", "blastp": "-version", "clustalo": "--version"}


def find_tool(name: str) -> str:
    """The path of external tool ``name``; a clear error saying how to get it when it is absent."""
    binary = shutil.which(name)
    if binary is None:
        raise RuntimeError(
            f"{name} was not found on PATH; install {INSTALL_HINTS.get(name, name)} "
            "(or run snakemake with --software-deployment-method conda)"
        )
    return binary


def run_tool(command: list[str], what: str) -> subprocess.CompletedProcess:
    """Run ``command``; on failure an error naming ``what``, the exit status and its last lines."""
    run = subprocess.run(command, capture_output=True, text=True, errors="replace")
    if run.returncode != 0:
        tail = (run.stdout + run.stderr).strip().splitlines()[-20:]
        raise RuntimeError(
            f"{what} failed with exit status {run.returncode}; output ends:\n" + "\n".join(tail)
        )
    return run


def tool_versions(names: Sequence[str]) -> dict[str, str]:
    """``{tool: first line of its version output}`` for each tool."""
    versions = {}
    for name in names:
        run = run_tool([find_tool(name), VERSION_FLAGS[name]], f"{name} version")
        versions[name] = (run.stdout.strip().splitlines() or ["?"])[0]
    return versions


def write_fasta(path: str | os.PathLike[str], records: Sequence[tuple[str, str]]) -> None:
    """``(name, sequence)`` records as a FASTA file, one line per sequence."""
    with open(path, "w") as fh:
        fh.writelines(f">{name}\n{sequence}\n" for name, sequence in records)
