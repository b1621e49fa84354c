"""Multiple sequence alignment of a latent's top sequences with Clustal Omega
(:func:`protsae.sequences.align.clustal_align`)."""

from __future__ import annotations

from collections.abc import Sequence

from protsae.sequences.align import clustal_align
from protsae.tools import find_tool


class AlignmentError(RuntimeError):
    """clustalo is missing or failed."""


def clustalo_binary() -> str:
    """Path of the ``clustalo`` executable, or a clear error saying how to get it."""
    try:
        return find_tool("clustalo")
    except RuntimeError as err:
        raise AlignmentError(f"{err}; the feature browser aligns with it") from None


def align(sequences: Sequence[str], binary: str | None = None) -> list[str]:
    """The sequences aligned (gaps ``-``), in input order; fewer than two come back as given.

    ``binary``: clustalo's path (default: found on PATH).
    """
    if len(sequences) < 2:
        return list(sequences)
    try:
        aligned = clustal_align([(f"s{i}", seq) for i, seq in enumerate(sequences)], binary=binary)
    except RuntimeError as err:
        raise AlignmentError(str(err)) from None
    out = [aligned[f"s{i}"] for i in range(len(sequences))]
    for i, (row, seq) in enumerate(zip(out, sequences, strict=True)):
        if row.replace("-", "") != seq.upper():
            raise AlignmentError(f"clustalo output lost or changed sequence {i}")
    return out
