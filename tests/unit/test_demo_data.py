"""The bundled demo data and its planted families: reproducible, parseable, and true to the table
beside it (members far apart, motifs intact, MMseqs2 splitting each family over clusters)."""

from __future__ import annotations

import csv
import gzip
import itertools
import random
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pytest
from Bio import SwissProt
from Bio.Align import PairwiseAligner, substitution_matrices

from protsae.sequences import Clustering, cluster_sequences, parse_swissprot, read_entry_list

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo"
N_REAL_SWISSPROT = 10  # the real Biopython test records at the start of uniprot_sprot.dat
N_REAL_ENTRY_ROWS = 13
N_REAL_UNIREF = 7


@pytest.fixture(scope="module")
def truth() -> list[dict[str, str]]:
    with open(DEMO / "planted_families.tsv", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.fixture(scope="module")
def swissprot() -> dict[str, SwissProt.Record]:
    with open(DEMO / "uniprot_sprot.dat") as handle:
        return {record.accessions[0]: record for record in SwissProt.parse(handle)}


def _fasta(path: Path) -> list[tuple[str, str]]:
    data = path.read_bytes()
    text = (gzip.decompress(data) if path.suffix == ".gz" else data).decode()
    records = []
    for block in text.split(">")[1:]:
        header, *lines = block.splitlines()
        records.append((header, "".join(lines)))
    return records


def _sources_from_bundle(source: Path) -> None:
    """The generator's real input excerpts, recovered from the bundled files they were copied into."""
    (source / "swissprot").mkdir(parents=True)
    dat = (DEMO / "uniprot_sprot.dat").read_text()
    end = 0
    for _ in range(N_REAL_SWISSPROT):
        end = dat.index("\n//\n", end) + len("\n//\n")
    (source / "swissprot/sample.dat").write_text(dat[:end])
    (source / "interpro").mkdir()
    lines = (DEMO / "entry.list").read_text().splitlines()[: N_REAL_ENTRY_ROWS + 1]
    (source / "interpro/entry.list").write_text("\n".join(lines))
    (source / "uniref50").mkdir()
    uniref = _fasta(DEMO / "uniref50.fasta.gz")[:N_REAL_UNIREF]
    (source / "uniref50/some_proteins_part1.fasta").write_text(
        "".join(f">{h}\n{s}\n" for h, s in uniref)
    )
    (source / "deeploc").mkdir()
    shutil.copyfile(DEMO / "deeploc.fasta", source / "deeploc/deeploc_test_sample.fasta")
    (source / "flip").mkdir()
    shutil.copytree(DEMO / "flip_ss", source / "flip/secondary_structure")


def test_generator_rebuilds_the_bundle_byte_for_byte(tmp_path):
    source, out = tmp_path / "source", tmp_path / "out"
    _sources_from_bundle(source)
    out.mkdir()
    script = DEMO / "make_demo_data.py"
    subprocess.run(
        [sys.executable, str(script), "--source-data", str(source), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    built = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert built, "the generator wrote nothing"
    for name in built:
        assert (out / name).read_bytes() == (DEMO / name).read_bytes(), name


def test_bundle_stays_small():
    total = sum(p.stat().st_size for p in DEMO.rglob("*") if p.is_file())
    assert total < 5_000_000


def test_records_parse_and_carry_their_planted_families(swissprot, truth):
    families = defaultdict(set)
    for row in truth:
        if row["source"] == "swissprot":
            families[row["protein"]].add(row["family"])
    assert len(swissprot) == N_REAL_SWISSPROT + len(families)
    for accession, planted in families.items():
        record = swissprot[accession]
        interpro = {ref[1] for ref in record.cross_references if ref[0] == "InterPro"}
        assert interpro == planted
        assert len(record.sequence) == record.seqinfo[0]
    # the real records are still there, unchanged in number
    assert sum(not a.startswith("SYN") for a in swissprot) == N_REAL_SWISSPROT


def test_synthetic_accessions_cannot_be_real(truth):
    entries = read_entry_list(DEMO / "entry.list")
    planted = {row["family"] for row in truth}
    assert len(planted) == 12
    for accession in planted:
        assert re.fullmatch(r"IPRZ\d{5}", accession)  # real InterPro: IPR + 6 digits
        assert entries[accession][0] in {"Family", "Domain"}
    types = {entries[a][0] for a in planted}
    assert types == {"Family", "Domain"}
    uniprot = re.compile(r"[OPQ][0-9][A-Z0-9]{3}[0-9]|[A-NR-Z][0-9]([A-Z][A-Z0-9]{2}[0-9]){1,2}")
    assert not any(uniprot.fullmatch(row["protein"]) for row in truth)


def test_motifs_are_intact_where_the_table_says(swissprot, truth):
    uniref = {
        h.split()[0].removeprefix("UniRef50_"): s for h, s in _fasta(DEMO / "uniref50.fasta.gz")
    }
    consensus = {}
    for row in truth:
        sequence = (
            swissprot[row["protein"]].sequence
            if row["source"] == "swissprot"
            else uniref[row["protein"]]
        )
        start, end = int(row["start"]), int(row["end"])
        assert sequence[start:end] == row["occurrence"]
        assert re.fullmatch(row["pattern"], row["occurrence"]), row
        assert 6 <= end - start <= 15
        assert consensus.setdefault(row["motif"], row["pattern"]) == row["pattern"]
    per_family = defaultdict(set)
    for motif in consensus:
        per_family[motif.split(".")[0]].add(motif)
    assert all(2 <= len(m) <= 3 for m in per_family.values())
    # motifs vary at a few positions in some members, as real ones do
    assert any(row["occurrence"] != re.sub(r"\[(.)[^]]*\]", r"\1", row["pattern"]) for row in truth)


def test_some_proteins_carry_two_families(truth):
    families = defaultdict(set)
    for row in truth:
        families[(row["source"], row["protein"])].add(row["family"])
    assert sum(len(f) == 2 for (source, _), f in families.items() if source == "swissprot") >= 3


def test_every_family_is_in_the_uniref50_sample_source(truth):
    uniref = {h.split()[0].removeprefix("UniRef50_") for h, _ in _fasta(DEMO / "uniref50.fasta.gz")}
    in_uniref = {
        row["family"] for row in truth if row["source"] == "uniref50" and row["protein"] in uniref
    }
    assert in_uniref == {row["family"] for row in truth}


def _members(truth, source: str = "swissprot") -> dict[str, list[str]]:
    members = defaultdict(set)
    for row in truth:
        if row["source"] == source:
            members[row["family"]].add(row["protein"])
    return {family: sorted(accs) for family, accs in members.items()}


def _highest_identity(sequences: dict[str, str], families: dict[str, list[str]], pairs: int | None):
    """Highest identity between two members of one family (all pairs, or ``pairs`` seeded ones
    per family). Needleman-Wunsch, BLOSUM62, gap open 10 / extend 0.5 (EMBOSS needle's
    defaults); identity = identical columns / alignment length, gaps included."""
    aligner = PairwiseAligner(
        mode="global",
        substitution_matrix=substitution_matrices.load("BLOSUM62"),
        open_gap_score=-10,
        extend_gap_score=-0.5,
    )
    rng = random.Random(0)
    highest = 0.0
    for accessions in families.values():
        combos = list(itertools.combinations(accessions, 2))
        if pairs is not None:
            combos = rng.sample(combos, min(pairs, len(combos)))
        for a, b in combos:
            counts = aligner.align(sequences[a], sequences[b])[0].counts()
            highest = max(highest, counts.identities / (counts.aligned + counts.gaps))
    return highest


def test_members_of_a_family_share_under_30_percent_identity(swissprot, truth):
    families = _members(truth)
    assert all(20 <= len(accessions) <= 45 for accessions in families.values())
    sequences = {accession: record.sequence for accession, record in swissprot.items()}
    assert _highest_identity(sequences, families, None) < 0.30


def test_uniref50_members_are_fragments_under_50_percent_identity(swissprot, truth):
    """UniRef50 members (what the demo's ESM-2 learns from) are shorter than the Swiss-Prot
    members, so motifs are a larger share of their residues, but stay below UniRef50's own 50%
    clustering threshold."""
    uniref = {
        h.split()[0].removeprefix("UniRef50_"): s for h, s in _fasta(DEMO / "uniref50.fasta.gz")
    }
    families = _members(truth, "uniref50")
    assert _highest_identity(uniref, families, pairs=80) < 0.50
    sequences = {"uniref50": uniref, "swissprot": {a: r.sequence for a, r in swissprot.items()}}
    share = {}
    for source, by_id in sequences.items():
        rows = [row for row in truth if row["source"] == source]
        motif = sum(int(row["end"]) - int(row["start"]) for row in rows)
        share[source] = motif / sum(len(by_id[p]) for p in {row["protein"] for row in rows})
    assert share["uniref50"] > 2 * share["swissprot"], share


@pytest.mark.skipif(
    shutil.which("mmseqs") is None, reason="needs MMseqs2 (apt-get install mmseqs2)"
)
def test_mmseqs2_spreads_each_family_over_clusters_and_both_splits(swissprot, truth, tmp_path):
    table = pa.table(
        {
            "accession": list(swissprot),
            "sequence": [record.sequence for record in swissprot.values()],
        }
    )
    clusters = cluster_sequences(
        table,
        Clustering(min_seq_id=0.3, coverage=0.9, sensitivity=7.5),
        max_length=1022,
        threads=1,
        test_fraction=0.5,
        seed=0,
        workdir=tmp_path,
    ).to_pandas()
    cluster_of = dict(zip(clusters.accession, clusters.cluster, strict=True))
    split_of = dict(zip(clusters.accession, clusters.split, strict=True))
    for family, accessions in _members(truth).items():
        assert len({cluster_of[a] for a in accessions}) >= 0.9 * len(accessions), family
        assert {split_of[a] for a in accessions} == {"train", "test"}, family


def test_pipeline_parser_reads_the_families(tmp_path, truth):
    table = parse_swissprot(DEMO / "uniprot_sprot.dat", DEMO / "entry.list").to_pandas()
    entries = read_entry_list(DEMO / "entry.list")
    for row in truth:
        if row["source"] != "swissprot":
            continue
        families = set(table.loc[table.accession == row["protein"], "families"].iloc[0])
        assert (row["family"] in families) == (entries[row["family"]][0] == "Family")


def test_motif_features_sit_where_the_motifs_were_planted(truth):
    """The demo knows its answer: every planted motif of a Swiss-Prot record is an FT MOTIF
    feature at its planted residues (1-based inclusive), concept named by the motif, and no
    other MOTIF feature exists on the synthetic records."""
    from protsae.sequences import parse_swissprot_with_features

    _, features = parse_swissprot_with_features(DEMO / "uniprot_sprot.dat", DEMO / "entry.list")
    motifs = features.to_pandas()
    motifs = motifs[(motifs.type == "MOTIF") & motifs.accession.str.startswith("SYN")]
    got = sorted(zip(motifs.accession, motifs.start, motifs.end, motifs.concept, strict=True))
    want = sorted(
        (r["protein"], int(r["start"]) + 1, int(r["end"]), f"MOTIF:planted motif {r['motif']}")
        for r in truth
        if r["source"] == "swissprot"
    )
    assert got == want and len(want) > 300
    assert not (motifs.start_uncertain | motifs.end_uncertain).any()
