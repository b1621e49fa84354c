"""Swiss-Prot FT lines -> swissprot_features: locations equal Biopython's, uncertain ends kept
and flagged, multi-line qualifiers joined, concepts named, bad lines named or skipped."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from Bio import SwissProt
from Bio.SeqFeature import ExactPosition, UnknownPosition

from protsae.sequences import InputError
from protsae.sequences.features import SWISSPROT_FEATURES_SCHEMA, concept_name, parse_location
from protsae.sequences.swissprot import parse_swissprot_with_features

QUIET = logging.getLogger("protsae.tests.quiet")
QUIET.setLevel(logging.ERROR)


def _biopython_rows(text: str) -> list[tuple]:
    """(accession, type, start, end, start uncertain, end uncertain, qualifiers) per feature,
    1-based inclusive as UniProt writes them, from Biopython's SwissProt parser."""
    rows = []
    for record in SwissProt.parse(io.StringIO(text)):
        for feature in record.features:
            loc = feature.location
            start = None if isinstance(loc.start, UnknownPosition) else int(loc.start) + 1
            end = None if isinstance(loc.end, UnknownPosition) else int(loc.end)
            qualifiers = dict(feature.qualifiers)
            if feature.id is not None:
                qualifiers["id"] = feature.id
            if loc.ref is not None:
                qualifiers["isoform"] = loc.ref
            rows.append(
                (
                    record.accessions[0],
                    feature.type,
                    start,
                    end,
                    type(loc.start) is not ExactPosition,  # UncertainPosition subclasses it
                    type(loc.end) is not ExactPosition,
                    qualifiers,
                )
            )
    return rows


def _our_rows(path: Path, **kwargs) -> list[tuple]:
    _, features = parse_swissprot_with_features(path, _entries(path.parent), logger=QUIET, **kwargs)
    assert features.schema.equals(SWISSPROT_FEATURES_SCHEMA)
    return [
        (
            r["accession"],
            r["type"],
            r["start"],
            r["end"],
            r["start_uncertain"],
            r["end_uncertain"],
            json.loads(r["qualifiers"]),
        )
        for r in features.to_pylist()
    ]


def _entries(folder: Path) -> Path:
    path = folder / "entry.list"
    if not path.exists():
        path.write_text("ENTRY_AC\tENTRY_TYPE\tENTRY_NAME\n")
    return path


def test_locations_and_qualifiers_equal_biopython_on_the_demo_records(demo_dir: Path) -> None:
    # The real excerpts (new-style and one old-style record, multi-line notes, evidence lists
    # split mid-word, /ligand_part) and the planted families' MOTIF lines.
    dat = demo_dir / "uniprot_sprot.dat"
    ours = _our_rows(dat)
    expected = _biopython_rows(dat.read_text())
    assert len(ours) == len(expected) > 1000
    assert ours == expected
    old_style = [r for r in ours if r[0] == "P01100"]
    assert old_style and old_style[0][6]["id"] == "PRO_0000076465"


def _record(ft_lines: str, length: int = 60, accession: str = "Q00001") -> str:
    residues = "ACDEFGHIKL" * (length // 10)
    body = "\n".join(
        "     " + " ".join(residues[i + j : i + j + 10] for j in range(0, 60, 10) if i + j < length)
        for i in range(0, length, 60)
    )
    return (
        f"ID   TEST_{accession}             Reviewed;          {length} AA.\n"
        f"AC   {accession};\n"
        "DE   RecName: Full=Test;\n"
        "OS   Homo sapiens.\n"
        "OX   NCBI_TaxID=9606;\n"
        f"{ft_lines}"
        f"SQ   SEQUENCE   {length} AA;  1000 MW;  0000000000000000 CRC64;\n"
        f"{body}\n//\n"
    )


UNCERTAIN = (
    "FT   DOMAIN          <1..20\n"
    'FT                   /note="Kinase 1"\n'
    "FT   REGION          30..>60\n"
    'FT                   /note="Disordered"\n'
    "FT   SITE            ?\n"
    'FT                   /note="Unknown place"\n'
    "FT   ACT_SITE        ?12\n"
    "FT   BINDING         ?..40\n"
    'FT                   /ligand="Zn(2+)"\n'
    "FT   MOD_RES         7\n"
    'FT                   /note="Phosphoserine; by PKA and a very long description that runs\n'
    'FT                   over two lines"\n'
    'FT                   /evidence="ECO:0000269|PubMed:12345678, ECO:0000269|PubMed:1234\n'
    'FT                   5679"\n'
    "FT   DISULFID        5..25\n"
    "FT   VAR_SEQ         Q00001-2:3..9\n"
    'FT                   /note="Missing (in isoform 2)"\n'
)


def test_uncertain_ends_are_kept_and_flagged_as_biopython_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "sprot.dat"
    path.write_text(_record(UNCERTAIN))
    ours = _our_rows(path)
    assert ours == _biopython_rows(path.read_text())
    by_type = {r[1]: r for r in ours}
    assert by_type["DOMAIN"][2:6] == (1, 20, True, False)
    assert by_type["REGION"][2:6] == (30, 60, False, True)
    assert by_type["SITE"][2:6] == (None, None, True, True)  # unknown: null, never guessed
    assert by_type["ACT_SITE"][2:6] == (12, 12, True, True)
    assert by_type["BINDING"][2:6] == (None, 40, True, False)
    note = by_type["MOD_RES"][6]["note"]
    assert note.endswith("description that runs over two lines")
    assert by_type["MOD_RES"][6]["evidence"].endswith("PubMed:12345679")  # no space inserted
    assert by_type["VAR_SEQ"][6]["isoform"] == "Q00001-2"


def test_concepts_name_the_kind() -> None:
    assert concept_name("BINDING", {"ligand": "Zn(2+)", "note": "x"}) == "BINDING:Zn(2+)"
    assert concept_name("REPEAT", {"note": "ANK 3"}) == "REPEAT:ANK"
    assert concept_name("MOD_RES", {"note": "Phosphoserine; by PKA"}) == "MOD_RES:Phosphoserine"
    assert concept_name("MOTIF", {"note": "planted motif IPRZ00001.m2"}) == (
        "MOTIF:planted motif IPRZ00001.m2"
    )
    assert concept_name("TRANSMEM", {"note": "Helical"}) == "TRANSMEM"
    assert concept_name("DOMAIN", {}) == "DOMAIN"
    assert concept_name("CHAIN", {"note": "Protein X"}) is None
    assert concept_name("VARIANT", {"note": "A -> V"}) is None


def test_joins_give_one_row_per_part(tmp_path: Path) -> None:
    parts = parse_location("join(3..5,<9..12,20)")
    assert [(p.start, p.end, p.start_uncertain) for p in parts] == [
        (3, 5, False),
        (9, 12, True),
        (20, 20, False),
    ]
    path = tmp_path / "sprot.dat"
    path.write_text(
        _record('FT   MOTIF           join(3..5,9..12)\nFT                   /note="Split"\n')
    )
    rows = _our_rows(path)
    assert [(r[2], r[3], r[6]["join_part"]) for r in rows] == [(3, 5, "1/2"), (9, 12, "2/2")]


def test_a_feature_on_another_isoform_has_no_concept_and_is_not_checked_against_length(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sprot.dat"
    path.write_text(
        _record('FT   MOTIF           Q00001-3:100..110\nFT                   /note="M"\n')
    )
    _, features = parse_swissprot_with_features(path, _entries(tmp_path), logger=QUIET)
    assert features.column("concept").to_pylist() == [None]


# (lines, the problem named, which of the lines is named)
BAD_LINES = {
    "location": ("FT   MOTIF           12..x5\n", "cannot read position 'x5'", 0),
    "reversed": ("FT   MOTIF           30..12\n", "ends before it starts", 0),
    "past the end": ("FT   MOTIF           50..65\n", "runs past the sequence (60 residues)", 0),
    "unclosed": (
        'FT   MOTIF           5..9\nFT                   /note="open\n',
        "closing quote",
        0,
    ),
    "no qualifier": ("FT   MOTIF           5..9\nFT                   note\n", "qualifier", 1),
}


@pytest.mark.parametrize("problem", sorted(BAD_LINES))
def test_a_bad_ft_line_stops_the_parse_naming_entry_line_and_switch(
    problem: str, tmp_path: Path
) -> None:
    bad, message, offset = BAD_LINES[problem]
    good = _record("FT   TRANSMEM        2..8\n", accession="Q00001")
    broken = _record(bad + "FT   HELIX           40..45\n", accession="Q00002")
    path = tmp_path / "sprot.dat"
    path.write_text(good + broken)
    first_bad = good.count("\n") + broken[: broken.index(bad)].count("\n") + 1 + offset
    with pytest.raises(InputError) as info:
        parse_swissprot_with_features(path, _entries(tmp_path), logger=QUIET)
    text = str(info.value)
    assert str(path) in text and "entry Q00002" in text and message in text
    assert f"line {first_bad} " in text
    assert "sequences.swissprot_invalid: skip" in text


def test_skip_leaves_the_bad_feature_out_and_logs_it(tmp_path: Path, caplog) -> None:
    bad = 'FT   MOTIF           12..x5\nFT                   /note="lost"\n'
    path = tmp_path / "sprot.dat"
    path.write_text(
        _record(bad + 'FT   HELIX           40..45\nFT                   /note="kept"\n')
    )
    logger = logging.getLogger("protsae.tests.features")
    with caplog.at_level(logging.WARNING, logger="protsae.tests.features"):
        table, features = parse_swissprot_with_features(
            path, _entries(tmp_path), logger=logger, invalid="skip"
        )
    assert table.num_rows == 1
    rows = features.to_pylist()
    assert [(r["type"], r["start"], json.loads(r["qualifiers"])) for r in rows] == [
        ("HELIX", 40, {"note": "kept"})
    ]
    assert "left out 1 features" in caplog.text and "entry Q00001" in caplog.text


def test_no_ft_lines_give_an_empty_valid_table_and_a_log_line(tmp_path: Path, caplog) -> None:
    path = tmp_path / "sprot.dat"
    path.write_text(_record(""))
    logger = logging.getLogger("protsae.tests.features")
    with caplog.at_level(logging.WARNING, logger="protsae.tests.features"):
        _, features = parse_swissprot_with_features(path, _entries(tmp_path), logger=logger)
    assert features.num_rows == 0 and features.schema.equals(SWISSPROT_FEATURES_SCHEMA)
    assert "no FT lines" in caplog.text
