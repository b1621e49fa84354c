"""BLAST + Clustal Omega run for real on real Swiss-Prot sequences (resources/demo) and planted
variants of one of them, whose conserved and mutated positions are known."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from protsae.sequences import iter_swissprot
from protsae.sequences.align import clustal_align
from protsae.steering.blast import BLAST_DB_SUFFIXES, blastp, build_blast_db
from protsae.steering.homologs import (
    HomologSearch,
    LatentTarget,
    latent_conservation,
    read_skip_reason,
    read_target,
)
from protsae.tools import tool_versions

pytestmark = pytest.mark.usefixtures("blast_tools")

FAMILY, LONE_FAMILY, OTHER = "IPR_PLANTED_A", "IPR_PLANTED_B", "IPR_PLANTED_C"
QUERY, LONE = "P60904", "P68308"  # real Swiss-Prot entries of the demo data
MUTATED = range(100, 120)  # every variant changes all of these
KEPT = range(0, 50)  # no variant changes any of these
RESIDUES = "ACDEFGHIKLMNPQRSTVWY"


@pytest.fixture(scope="module")
def blast_tools():
    try:
        tool_versions(["makeblastdb", "blastp", "clustalo"])
    except RuntimeError as err:
        pytest.skip(str(err))


def _variant(sequence: str, seed: int) -> str:
    rng = np.random.default_rng(seed)
    seq = list(sequence)
    others = [i for i in range(len(seq)) if i not in KEPT and i not in MUTATED]
    for i in [*MUTATED, *rng.choice(others, size=len(seq) // 10, replace=False)]:
        seq[i] = rng.choice([r for r in RESIDUES if r != sequence[i]])
    return "".join(seq)


@pytest.fixture(scope="module")
def swissprot(demo_dir: Path, tmp_path_factory) -> Path:
    """The real demo entries (families: only the planted labels) plus four variants of QUERY in
    its family and one in another family, as a swissprot.parquet table."""
    real = {r.accessions[0]: r.sequence for r in iter_swissprot(demo_dir / "uniprot_sprot.dat")}
    rows = [(acc, seq, []) for acc, seq in real.items()]
    rows = [
        (a, s, [FAMILY] if a == QUERY else [LONE_FAMILY] if a == LONE else f) for a, s, f in rows
    ]
    rows += [(f"VAR{i}", _variant(real[QUERY], i), [FAMILY]) for i in range(1, 5)]
    rows.append(("VAR5", _variant(real[QUERY], 5), [OTHER]))
    acc, seq, fam = zip(*rows, strict=True)
    table = pa.table({"accession": acc, "sequence": seq, "families": fam})
    path = tmp_path_factory.mktemp("swissprot") / "swissprot.parquet"
    pq.write_table(table, path)
    return path


@pytest.fixture(scope="module")
def blast_db(swissprot: Path) -> Path:
    prefix = swissprot.parent / "blastdb" / "swissprot"
    build_blast_db(pq.read_table(swissprot), prefix)
    return prefix


def _sequence(swissprot: Path, accession: str) -> str:
    table = pq.read_table(swissprot).to_pydict()
    return table["sequence"][table["accession"].index(accession)]


def test_database_files_and_leftovers(blast_db: Path):
    for suffix in BLAST_DB_SUFFIXES:
        assert blast_db.with_name(blast_db.name + suffix).is_file()
    assert not [p for p in blast_db.parent.iterdir() if p.is_dir()], "temporary folder left"


def test_blastp_finds_the_variants_first(swissprot: Path, blast_db: Path):
    hits = blastp([(QUERY, _sequence(swissprot, QUERY))], blast_db, evalue=1e-5, max_hits=50)
    subjects = [h.subject for h in hits[QUERY]]
    assert subjects[0] == QUERY  # itself, e-value smallest
    assert set(subjects) == {QUERY, "VAR1", "VAR2", "VAR3", "VAR4", "VAR5"}
    assert all(h.evalue <= 1e-5 for h in hits[QUERY])


def test_clustal_aligns_and_keeps_the_sequences(swissprot: Path):
    records = [(a, _sequence(swissprot, a)) for a in (QUERY, "VAR1", "VAR2")]
    aligned = clustal_align(records)
    assert set(aligned) == {QUERY, "VAR1", "VAR2"}
    assert len({len(row) for row in aligned.values()}) == 1
    assert {a: row.replace("-", "") for a, row in aligned.items()} == dict(records)


def test_conservation_follows_the_planted_mutations(swissprot: Path, blast_db: Path):
    target = LatentTarget(7, FAMILY, 3.0, [(QUERY, _sequence(swissprot, QUERY))])
    conservation, alignments = latent_conservation(
        target, swissprot, blast_db, HomologSearch(evalue=1e-5, max_hits=50, min_homologs=2)
    )
    assert target.skip_reason is None and read_skip_reason_of(conservation) is None
    rows = conservation.to_pydict()
    assert rows["residue"] == list(_sequence(swissprot, QUERY))
    assert set(rows["n_homologs"]) == {4}  # VAR1-4; VAR5 is in another family, QUERY is itself
    members = set(alignments.column("member").to_pylist())
    assert members == {QUERY, "VAR1", "VAR2", "VAR3", "VAR4"}
    cons = np.asarray(rows["conservation"])
    assert (cons[list(KEPT)] == 1.0).all()
    assert [rows["consensus"][i] for i in KEPT] == [rows["residue"][i] for i in KEPT]
    assert cons[list(MUTATED)].mean() < 0.6
    same = sum(rows["consensus"][i] == rows["residue"][i] for i in MUTATED)
    assert same <= 2, same  # no variant keeps these residues; only an alignment shift could
    assert (np.asarray(rows["entropy"])[list(KEPT)] == 0.0).all()


def read_skip_reason_of(table: pa.Table) -> str | None:
    meta = table.schema.metadata or {}
    return meta.get(b"protsae.skip_reason", b"").decode() or None


def test_a_family_of_one_is_skipped_with_a_logged_reason(
    swissprot: Path, blast_db: Path, tmp_path: Path, caplog
):
    target = LatentTarget(9, LONE_FAMILY, 2.0, [(LONE, _sequence(swissprot, LONE))])
    logger = logging.getLogger("test_steering_homologs")
    with caplog.at_level(logging.WARNING, logger=logger.name):
        conservation, alignments = latent_conservation(
            target, swissprot, blast_db, HomologSearch(1e-5, 50, 2), logger=logger
        )
    assert conservation.num_rows == 0 and alignments.num_rows == 0
    assert f"0 BLAST hit(s) in {LONE_FAMILY}" in target.skipped[LONE]
    assert target.skip_reason and LONE in target.skip_reason
    assert "latent 9 skipped" in caplog.text and LONE in caplog.text
    pq.write_table(conservation, tmp_path / "c.parquet")
    assert read_skip_reason(tmp_path / "c.parquet") == target.skip_reason


def test_read_target_takes_top_family_members(swissprot: Path, tmp_path: Path):
    families = pa.table({"latent": pa.array([2, 3], pa.int32()), "family": [OTHER, FAMILY]})
    top = pa.table(
        {
            "latent": pa.array([3, 3, 3, 3, 2], pa.int32()),
            "split": ["test", "train", "test", "train", "test"],
            "id": [LONE, QUERY, "VAR1", "VAR1", "VAR5"],
            "max_act": pa.array([5.0, 4.0, 3.5, 3.6, 9.0], pa.float32()),
        }
    )
    pq.write_table(families, tmp_path / "families.parquet")
    pq.write_table(top, tmp_path / "top.parquet")
    paths = (tmp_path / "families.parquet", tmp_path / "top.parquet", swissprot)
    target = read_target(3, *paths, n_sequences=2)
    assert target.family == FAMILY and target.max_activation == 5.0
    assert [a for a, _ in target.sequences] == [QUERY, "VAR1"]  # LONE is not a member
    assert target.sequences[0][1] == _sequence(swissprot, QUERY)
    assert [a for a, _ in read_target(3, *paths, n_sequences=1).sequences] == [QUERY]
    with pytest.raises(ValueError, match="latent 4 has no family row"):
        read_target(4, *paths, n_sequences=1)
