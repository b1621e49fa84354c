"""Conservation of a hand-written alignment against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from protsae.steering.conservation import (
    column_stats,
    residue_columns,
    sequence_conservation,
    ungapped,
)

# Columns:        0    1    2    3    4
QUERY = "MK-CD"  # residue 1 (K) sits in a column every homolog skips; column 2 is a query gap
HOMOLOGS = [
    "M-ACD",
    "M-ACE",
    "L--C-",
    "M-AWD",
]
H_075 = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))  # 0.8113 bits
H_23 = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))  # 0.9183 bits


def test_columns_by_hand():
    stats = column_stats(HOMOLOGS)
    assert stats.n_rows == 4
    assert stats.consensus == ["M", None, "A", "C", "D"]
    # gaps count in the denominator: column 2 is A in 3 of 4 rows, column 4 D in 2 of 4
    np.testing.assert_allclose(stats.conservation, [0.75, 0.0, 0.75, 0.75, 0.5])
    # entropy over the residues present, gaps not counted; all-gap column undefined
    assert stats.entropy[0] == pytest.approx(H_075)
    assert math.isnan(stats.entropy[1])
    assert stats.entropy[2] == 0.0
    assert stats.entropy[3] == pytest.approx(H_075)
    assert stats.entropy[4] == pytest.approx(H_23)


def test_ties_lower_case_and_dot_gaps():
    stats = column_stats(["ga", "Ag", "..", "a."])
    # column 0: G, A, gap, A -> A (2 of 4); column 1: A, G, gap, gap -> tie, A first, 1 of 4
    assert stats.consensus == ["A", "A"]
    np.testing.assert_allclose(stats.conservation, [0.5, 0.25])
    assert stats.entropy[1] == pytest.approx(1.0)
    assert stats.entropy[0] == pytest.approx(H_23)


def test_positions_map_back_to_the_ungapped_query():
    assert ungapped(QUERY) == "MKCD"
    assert residue_columns(QUERY).tolist() == [0, 1, 3, 4]
    assert residue_columns("--a-B").tolist() == [2, 4]
    per_pos = sequence_conservation(QUERY, HOMOLOGS, sequence="MKCD")
    assert per_pos.residues == "MKCD"
    assert per_pos.n_homologs == 4
    assert per_pos.consensus == ["M", None, "C", "D"]
    np.testing.assert_allclose(per_pos.conservation, [0.75, 0.0, 0.75, 0.5])
    assert math.isnan(per_pos.entropy[1])
    assert per_pos.entropy[3] == pytest.approx(H_23)


def test_the_query_row_never_votes():
    # The query's own residues would make column 0 "Q" if it counted; it must not.
    per_pos = sequence_conservation("QQ", ["AQ", "A-"])
    assert per_pos.consensus == ["A", "Q"]
    np.testing.assert_allclose(per_pos.conservation, [1.0, 0.5])


def test_bad_alignments_are_named():
    with pytest.raises(ValueError, match="row 1 has 3 columns, row 0 has 4"):
        column_stats(["AAAA", "AAA"])
    with pytest.raises(ValueError, match="row 0 has characters '\\*1'"):
        column_stats(["A1*A"])
    with pytest.raises(ValueError, match="at least one row"):
        column_stats([])
    with pytest.raises(ValueError, match="does not spell the query"):
        sequence_conservation("MK-CD", HOMOLOGS, sequence="MKCE")
    with pytest.raises(ValueError, match="row 1 has 4 columns"):
        sequence_conservation("MK-CD", ["MKCD"])
