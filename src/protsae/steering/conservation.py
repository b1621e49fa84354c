"""Per-column conservation of a multiple sequence alignment, mapped to a sequence's own positions.

Rules (docs/method.md, "Steering"):

- A column's **consensus** is its most frequent residue, gaps not counted (ties: the
  alphabetically first residue); a column of gaps only has no consensus.
- **Conservation** is the fraction of the alignment's rows holding the consensus residue. Gaps
  count in the denominator, so a column most homologs skip is not called conserved; an all-gap
  column has conservation 0.
- **Entropy** is the Shannon entropy (bits) of the residue frequencies in the column, gaps not
  counted; undefined (NaN) for an all-gap column.
- The statistics are taken over the homologs' rows only; the steered sequence's own row is used
  to map columns to its residue positions (column of residue i = the column holding its i-th
  non-gap character), so its own residue never votes for the consensus it is compared with.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Characters an aligner writes for a gap.
GAPS = frozenset("-.")


@dataclass(frozen=True)
class ColumnStats:
    """Per-column statistics of an alignment: one entry per column."""

    consensus: list[str | None]
    conservation: np.ndarray  # float64, in [0, 1]
    entropy: np.ndarray  # float64 bits, NaN where the column is all gaps
    n_rows: int


def _check_rows(rows: Sequence[str], where: str) -> None:
    if not rows:
        raise ValueError(f"{where}: an alignment needs at least one row")
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(
                f"{where}: row {i} has {len(row)} columns, row 0 has {width}; not an alignment"
            )
        bad = {c for c in row if not (c.isalpha() or c in GAPS)}
        if bad:
            raise ValueError(f"{where}: row {i} has characters {''.join(sorted(bad))!r}")


def column_stats(rows: Sequence[str], where: str = "alignment") -> ColumnStats:
    """Consensus, conservation and entropy of every column of the aligned ``rows``."""
    _check_rows(rows, where)
    n_rows = len(rows)
    consensus: list[str | None] = []
    conservation = np.zeros(len(rows[0]), np.float64)
    entropy = np.full(len(rows[0]), np.nan)
    for col, chars in enumerate(zip(*rows, strict=True)):
        counts = Counter(c.upper() for c in chars if c not in GAPS)
        if not counts:
            consensus.append(None)
            continue
        best = min(counts, key=lambda r: (-counts[r], r))
        consensus.append(best)
        conservation[col] = counts[best] / n_rows
        freq = np.asarray(list(counts.values()), np.float64) / sum(counts.values())
        entropy[col] = float(-(freq * np.log2(freq)).sum()) + 0.0  # + 0.0: no -0.0
    return ColumnStats(consensus, conservation, entropy, n_rows)


def residue_columns(aligned: str) -> np.ndarray:
    """The alignment column of each residue of ``aligned`` once its gaps are removed."""
    return np.asarray([i for i, c in enumerate(aligned) if c not in GAPS], np.int64)


def ungapped(aligned: str) -> str:
    """``aligned`` without its gaps, upper case."""
    return "".join(c for c in aligned if c not in GAPS).upper()


@dataclass(frozen=True)
class PositionConservation:
    """Column statistics read at each residue position of one sequence."""

    residues: str
    consensus: list[str | None]
    conservation: np.ndarray
    entropy: np.ndarray
    n_homologs: int


def sequence_conservation(
    query_aligned: str, homolog_rows: Sequence[str], sequence: str | None = None
) -> PositionConservation:
    """Consensus and conservation (over ``homolog_rows``) at each residue of the query.

    ``sequence``, when given, must equal the query row without gaps (case-insensitive): a
    guard against an aligner that changed or reordered the sequences.
    """
    _check_rows([query_aligned, *homolog_rows], "alignment")  # one width for all rows
    stats = column_stats(list(homolog_rows))
    residues = ungapped(query_aligned)
    if sequence is not None and residues != sequence.upper():
        raise ValueError(
            "the query's aligned row does not spell the query sequence "
            f"({len(residues)} vs {len(sequence)} residues)"
        )
    columns = residue_columns(query_aligned)
    return PositionConservation(
        residues=residues,
        consensus=[stats.consensus[c] for c in columns],
        conservation=stats.conservation[columns],
        entropy=stats.entropy[columns],
        n_homologs=stats.n_rows,
    )
