"""Input errors and log lines name the source as the user wrote it: the config key, the user's
path, the hashed cached copy in parentheses, the record or line, and the problem.

Each case goes through the download job's own steps (``materialise`` links the user's file
into a downloads folder and records it) and the job's ``sources_named``, as a rule does.
"""

from __future__ import annotations

import io
import logging
import zipfile
from pathlib import Path

import pytest

from protsae.probes.data import task_data_from_file
from protsae.progress import get_logger
from protsae.sequences import InputError, parse_swissprot, sample_uniref50
from protsae.store import materialise, sources_named

ROOT = Path(__file__).resolve().parents[2]


def _linked(source: Path, key: str, kind: str = "any") -> tuple[Path, Path]:
    """The user's file as a download job leaves it: a hashed link and its record."""
    downloads = source.parent / "resources" / "downloads"
    link, record = downloads / f"{key}-729c8e1e", downloads / f"{key}-729c8e1e.json"
    entry = {"url": str(source), "label": f"sources.{key}", "kind": kind}
    materialise(entry, link, record, "k")
    return link, record


def _zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


FLIP_SEQUENCES = ">c1\nMKVL\n>c2\nMKWL\n"
FLIP_SAMPLED = ">c1 SET=train VALIDATION=False\nHHEC\n>c2 SET=test VALIDATION=False\nHECC\n"
MELTOME_HEADER = "sequence,target,set,validation\n"
EXPRESSION_ONE_CLASS = "Status,Construct.seq..aa.\n" + "".join(
    f"Pass,MKV{'L' * i}W\n" for i in range(30)
)

# (task, file name, file contents, the message after "<key>: <path> (cached copy <link>)")
CASES = [
    (
        "localization",
        "deeploc.fasta",
        ">P12345 Nucleus-S\nMKVLAAGW\n>Q0VD83\nMKKLLEW\n",
        ": record 'Q0VD83': header must be 'ACC Location-M|S|U' with an optional 'test'",
    ),
    (
        "secondary_structure",
        "splits.zip",
        {"splits/sequences.fasta": FLIP_SEQUENCES, "splits/sampled.fasta": FLIP_SAMPLED},
        ": expected one member named mask.fasta in the FLIP splits.zip, found 0 "
        "(members: splits/sequences.fasta, splits/sampled.fasta)",
    ),
    (
        "thermostability",
        "meltome.zip",
        {"splits/human.csv": MELTOME_HEADER + "MKV,41.0,train,False\n"},
        ": no single mixed_split.csv in the meltome splits.zip (CSV members: splits/human.csv)",
    ),
    (
        "thermostability",
        "meltome.zip",
        {
            "splits/mixed_split.csv": MELTOME_HEADER
            + "MKVL,41.0,train,False\nMKWL,nan,train,False\n"
        },
        ", member splits/mixed_split.csv: line 3: target 'nan' is not a number",
    ),
    (
        "expression",
        "cho.csv",
        "Status,Sequence\nPass,MKVL\n",
        ": line 1: no column 'Construct.seq..aa.' (columns: ['Status', 'Sequence']); "
        "probes.expression_column names the sequence column",
    ),
    (
        "thermostability",
        "meltome.txt",
        "sequence,target\nMKV,1\n",
        ": not FLIP's meltome splits.zip (a zip archive); the file is text",
    ),
    # The classes, checked at probe_data (before any ESM-2 job), not in the probe's fit.
    (
        "expression",
        "cho.csv",
        EXPRESSION_ONE_CLASS,
        ": probe task expression: every labelled record has class 'expressed' "
        "(30 records); a probe needs at least two classes",
    ),
    (
        "localization",
        "deeploc.fasta",
        "".join(f">A{i} {('Nucleus', 'Cytoplasm')[i % 2]}-S\nMKV{'L' * i}\n" for i in range(8))
        + ">T1 Nucleus-S test\nMKDL\n>T2 Nucleus-S test\nMKEL\n",
        ": probe task localization: the test split has one class, 'Nucleus' (2 records); "
        "a probe needs at least two classes in train and in test",
    ),
    (
        "localization",
        "deeploc.fasta",
        ">A1 Nucleus-S\nMKVL\n>A2 Cytoplasm-S\nMKWL\n>A3 Nucleus-S\nMKAL\n>A4 Cytoplasm-S\nMKCL\n"
        ">T1 Nucleus-S test\nMKDL\n>T2 Peroxisome-S test\nMKEL\n",
        ": probe task localization: the train split has no example of 'Peroxisome' (1 records) "
        "that the test split scores; the probe cannot learn a class it never sees",
    ),
]


@pytest.mark.parametrize(("task", "name", "contents", "problem"), CASES)
def test_probe_source_errors_name_key_path_and_record(
    tmp_path: Path, task: str, name: str, contents: str | dict[str, str], problem: str
) -> None:
    source = tmp_path / "data" / name
    source.parent.mkdir()
    if isinstance(contents, dict):
        _zip(source, contents)
    else:
        source.write_text(contents)
    link, record = _linked(source, task)
    out = tmp_path / "results" / "probes" / "data"
    with pytest.raises(InputError) as info, sources_named({str(link): str(record)}):
        task_data_from_file(task, str(link), out / f"{task}.parquet", out / f"{task}.json")
    assert str(info.value) == f"sources.{task}: {source} (cached copy {link}){problem}"
    assert not out.exists()  # nothing half-written


def _log_lines(run) -> str:
    """What the protsae logger writes while ``run()`` runs."""
    logger, stream = get_logger(), io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        run()
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_sampling_log_lines_name_the_users_source(tmp_path: Path, write_fasta) -> None:
    source = write_fasta("my_uniref50.fasta", [("U1", "MKV"), ("U2", "M" * 50), ("U3", "MXZ")])
    link, record = _linked(source, "uniref50", "fasta")

    def run() -> None:
        with sources_named({str(link): str(record)}):
            sample_uniref50(str(link), sample_size=5, max_length=20, seed=0)

    lines = _log_lines(run)
    named = f"sources.uniref50: {source} (cached copy {link})"
    assert (
        f"{named}: seen 3 records, eligible 2, kept 2; skipped 1 longer than 20, "
        "0 with letters outside the ESM alphabet, 0 repeated ids" in lines
    )
    assert f"{named}: first dropped ids (up to 5 per reason): too long: U2" in lines
    assert f"{named}: only 2 eligible records for a sample of 5; all kept" in lines
    assert str(link) not in lines.replace(named, "")  # never the hashed copy alone


def test_swissprot_invalid_skip_log_line_names_the_users_source(tmp_path: Path) -> None:
    demo = (ROOT / "resources/demo/uniprot_sprot.dat").read_text()
    first, rest = demo.split("\n//\n", 1)
    head, sequence = first.split("\nSQ   ", 1)
    sq_line, residues = sequence.split("\n", 1)
    broken = f"{head}\nSQ   {sq_line}\n{residues.replace('M', 'J', 1)}\n//\n{rest}"
    dat = tmp_path / "my_sprot.dat"
    dat.write_text(broken)
    entries = tmp_path / "entry.list"
    entries.write_bytes((ROOT / "resources/demo/entry.list").read_bytes())
    dat_link, dat_record = _linked(dat, "swissprot", "swissprot")
    list_link, list_record = _linked(entries, "interpro_entries", "entry_list")
    accession = head.split("\nAC   ", 1)[1].split(";", 1)[0]

    def run() -> None:
        with sources_named({str(dat_link): str(dat_record), str(list_link): str(list_record)}):
            parse_swissprot(str(dat_link), str(list_link), invalid="skip")

    lines = _log_lines(run)
    assert (
        f"sources.swissprot: {dat} (cached copy {dat_link}): skipped 1 entries ESM-2 cannot "
        f"read: entry {accession} (line 1) has letters outside the ESM-2 alphabet in its sequence: "
        "'J'" in lines
    )
    assert f"missing from sources.interpro_entries: {entries} (cached copy {list_link})" in lines
