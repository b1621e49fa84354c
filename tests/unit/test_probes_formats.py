"""Probe data loaders on the real formats: the bundled FLIP and DeepLoc samples, and TAPE,
meltome and CHO files built here in their published layouts (synthetic records)."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from protsae.probes.data import TaskOptions, load_task, task_data_from_file
from protsae.probes.formats import (
    DEEPLOC_LOCATIONS,
    read_deeploc,
    read_expression,
    read_meltome,
    read_secondary_structure,
)
from protsae.probes.tasks import read_task_data
from protsae.sequences import InputError


def flip_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(f"splits/{name}.fasta", data)
    return path


@pytest.fixture
def flip_sample(demo_dir, tmp_path) -> Path:
    """The bundled FLIP excerpt packed as FLIP ships it: splits.zip with splits/*.fasta."""
    files = {
        n: (demo_dir / "flip_ss" / f"{n}.fasta").read_bytes()
        for n in ("sequences", "sampled", "mask")
    }
    return flip_zip(tmp_path / "splits.zip", files)


def tape_tarball(path: Path, splits: dict[str, list[dict]]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for split, entries in splits.items():
            data = json.dumps(entries).encode()
            info = tarfile.TarInfo(f"secondary_structure/secondary_structure_{split}.json")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def tape_entry(name: str, seq: str, ss3: list[int], valid: list[bool]) -> dict:
    return {
        "id": name,
        "primary": seq,
        "ss3": ss3,
        "ss8": ss3,
        "valid_mask": valid,
        "protein_length": len(seq),
    }


def meltome_zip(path: Path, csvs: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in csvs.items():
            archive.writestr(f"splits/{name}.csv", text)
    return path


MELTOME = (
    "sequence,target,set,validation\n"
    "MKVLAAGIVL,45.2,train,False\n"
    "MKKLLEEAGW,51.0,train,True\n"
    "MSTPQRDEAL,60.5,test,\n"
    "MAAAAVVVLL,38.9,train,False\n"
)


# --------------------------------------------------------------------------- secondary structure


def test_flip_splits_zip_sample(flip_sample, demo_dir):
    data = read_secondary_structure(flip_sample)
    assert data.classes == ["H", "E", "C"]
    assert data.counts["read"] == 100 and len(data.records) == 100
    assert data.split_counts() == {"train": 70, "valid": 15, "test": 15}
    # labels and mask line up with the sequence, residue for residue
    first = data.records[0]
    sampled = (demo_dir / "flip_ss" / "sampled.fasta").read_text().splitlines()[1]
    mask = (demo_dir / "flip_ss" / "mask.fasta").read_text().splitlines()[1]
    assert "".join("HEC"[i] for i in first.residue_labels) == sampled
    assert first.mask.tolist() == [c == "1" for c in mask]
    assert len(first.sequence) == len(first.residue_labels) == len(first.mask)


def test_tape_tarball_is_detected_and_uses_cb513_as_test(tmp_path):
    splits = {
        "train": [
            tape_entry("t1", "MKVL", [0, 0, 1, 2], [True, True, True, False]),
            tape_entry("t2", "MKV", [2, 2, 2], [True, True, True]),
        ],
        "valid": [tape_entry("v1", "MAV", [1, 1, 2], [True, True, True])],
        "cb513": [tape_entry("c1", "MWWY", [0, 1, 2, 2], [True, True, True, True])],
        "ts115": [
            tape_entry("s1", "MW", [0, 1], [True, True]),
            tape_entry("s2", "MY", [0, 1], [True, True]),
        ],
    }
    path = tape_tarball(tmp_path / "secondary_structure-abc", splits)  # no telling extension
    data = read_secondary_structure(path)
    assert {r.id: r.split for r in data.records} == {
        "t1": "train",
        "t2": "train",
        "v1": "valid",
        "c1": "test",
    }
    t1 = data.records[0]
    assert t1.residue_labels.tolist() == [0, 0, 1, 2] and t1.mask.tolist() == [
        True,
        True,
        True,
        False,
    ]
    other = read_secondary_structure(path, test_set="ts115")
    assert sorted(r.id for r in other.records if r.split == "test") == ["s1", "s2"]


def test_residue_probe_data_round_trip(flip_sample, tmp_path):
    data = task_data_from_file(
        "secondary_structure", flip_sample, tmp_path / "ss.parquet", tmp_path / "ss.json"
    )
    back = read_task_data(tmp_path / "ss.parquet")
    assert [r.id for r in back.records] == [r.id for r in data.records]
    for a, b in zip(data.records, back.records, strict=True):
        assert np.array_equal(a.residue_labels, b.residue_labels) and np.array_equal(a.mask, b.mask)
    counts = json.loads((tmp_path / "ss.json").read_text())["counts"]
    assert counts["read"] == 100 and counts["kept"] == 100 and counts["test"] == 15


# --------------------------------------------------------------------------- localization


def test_deeploc_sample_reads_every_test_record(demo_dir):
    data = read_deeploc(demo_dir / "deeploc.fasta")
    assert data.counts["read"] == 150 and len(data.records) == 150
    assert {r.split for r in data.records} == {"test"}
    first = data.records[0]
    assert first.id == "Q9H400" and data.classes[first.label] == "Cell.membrane"
    assert len(data.classes) == 10
    # the sample holds only test records: no training split, named with the file
    with pytest.raises(InputError, match=r"deeploc\.fasta.*no train records"):
        load_task("localization", demo_dir / "deeploc.fasta")


def test_deeploc_training_records_cytoplasm_nucleus_and_odd_residues(write_fasta):
    path = write_fasta(
        "deeploc.fasta",
        [
            ("P1 Nucleus-U   ", "MKVLBUXZAA"),  # trailing spaces, B/U/X/Z residues kept
            ("P2 Cytoplasm-Nucleus-U", "MKKL"),  # dropped and counted
            ("P3 Mitochondrion-M test", "MWWA"),
            ("P4 Peroxisome-S", "MJJA"),  # J: no ESM token, dropped and counted
            ("P5 Lysosome/Vacuole-M", "MKAA"),
        ],
    )
    data = read_deeploc(path)
    assert [r.id for r in data.records] == ["P1", "P3", "P5"]
    assert [r.split for r in data.records] == ["train", "test", "train"]
    assert data.records[0].sequence == "MKVLBUXZAA"
    assert DEEPLOC_LOCATIONS[data.records[2].label] == "Lysosome/Vacuole"
    assert data.counts["dropped_cytoplasm_nucleus"] == 1
    assert data.counts["dropped_bad_residues"] == 1
    assert data.counts["read"] == 5


# --------------------------------------------------------------------------- thermostability


def test_meltome_zip_mixed_split_by_default_and_other_csvs(tmp_path):
    human = "sequence,target,set,validation\nMKV,40,train,False\nMKW,41,test,\n"
    path = meltome_zip(
        tmp_path / "splits.zip", {"mixed_split": MELTOME, "human": human, "human_cell": human}
    )
    data = read_meltome(path)
    assert [r.split for r in data.records] == ["train", "valid", "test", "train"]
    assert [r.label for r in data.records] == [45.2, 51.0, 60.5, 38.9]
    assert data.classes is None
    assert [r.sequence for r in read_meltome(path, "human").records] == ["MKV", "MKW"]
    with pytest.raises(InputError, match="no single human_cell2.csv"):
        read_meltome(path, "human_cell2")


# --------------------------------------------------------------------------- expression


def cho_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    lines = ['"ID","Status","Titre (µg/mL)","Construct.seq..aa."']
    lines += [f'"c{i}","{status}","1.5","{seq}"' for i, (status, seq) in enumerate(rows)]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8"))
    return path


def test_cho_csv_crlf_non_ascii_header_status_rules(tmp_path):
    rows = [
        ("Pass", "MKVL"),
        ("Fail (low titre)", "MKKW"),
        ("Failed", "MAAA"),
        ("Not tested", "MWWW"),
        ("Pass", ""),
        ("Pass", "MSTV"),
    ]
    data = read_expression(cho_csv(tmp_path / "cho.csv", rows))
    assert [r.label for r in data.records] == [1, 0, 0, 1]
    assert data.classes[1] == "expressed"
    assert data.counts["dropped_status"] == 1 and data.counts["dropped_no_sequence"] == 1
    assert data.counts["read"] == 6


def test_cho_sequence_column_is_configurable_and_missing_one_is_named(tmp_path):
    path = tmp_path / "cho.csv"
    path.write_text("Status,aa\r\nPass,MKV\r\nFail,MWW\r\n")
    assert len(read_expression(path, "aa").records) == 2
    with pytest.raises(InputError, match=r"cho\.csv: line 1: no column 'Construct\.seq\.\.aa\.'"):
        read_expression(path)


def test_carved_splits_are_seeded_and_disjoint(tmp_path):
    rows = [("Pass" if i % 2 else "Fail", "M" + "KV"[i % 2] * (5 + i)) for i in range(40)]
    path = cho_csv(tmp_path / "cho.csv", rows)
    carve = dict(validation_fraction=0.25, test_fraction=0.2, split_identity=None)
    a = load_task("expression", path, TaskOptions(seed=3, **carve))
    b = load_task("expression", path, TaskOptions(seed=3, **carve))
    c = load_task("expression", path, TaskOptions(seed=4, **carve))
    assert [r.split for r in a.records] == [r.split for r in b.records]
    assert [r.split for r in a.records] != [r.split for r in c.records]
    assert a.split_counts() == {"train": 24, "valid": 8, "test": 8}
    assert a.counts["carved_test"] == 8 and a.counts["carved_valid"] == 8


@pytest.mark.skipif(shutil.which("mmseqs") is None, reason="needs MMseqs2 (tools/setup.sh)")
def test_expression_is_split_by_whole_40_percent_identity_clusters(tmp_path):
    """Ten planted families of 6 variants (~90% identical within, unrelated between): every
    family lands whole in train, valid or test, as MMseqs2 clusters them."""
    rng = np.random.default_rng(0)
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    rows, family_of = [], {}
    for family in range(10):
        base = rng.choice(letters, 120)
        for variant in range(6):
            seq = base.copy()
            where = rng.random(120) < 0.1
            seq[where] = rng.choice(letters, int(where.sum()))
            family_of[f"line-{len(rows) + 2}"] = family  # CSV line of the record (header is 1)
            rows.append(("Pass" if (family + variant) % 2 else "Fail", "M" + "".join(seq)))
    path = cho_csv(tmp_path / "cho.csv", rows)
    data = load_task(
        "expression", path, TaskOptions(validation_fraction=0.25, test_fraction=0.2, seed=1)
    )
    assert data.counts["identity_clusters"] == 10
    splits = {}
    for record in data.records:
        splits.setdefault(family_of[record.id], set()).add(record.split)
    assert all(len(s) == 1 for s in splits.values())  # no family straddles two splits
    assert {"train", "valid", "test"} == set().union(*splits.values())
    assert data.counts["carved_test"] == 12  # 2 of 10 clusters, 6 records each


def test_given_validation_split_is_not_recarved(tmp_path):
    path = meltome_zip(tmp_path / "splits.zip", {"mixed_split": MELTOME})
    data = load_task("thermostability", path, TaskOptions(validation_fraction=0.5))
    assert data.split_counts() == {"train": 2, "valid": 1, "test": 1}
    assert data.counts["carved_valid"] == 0


# --------------------------------------------------------------------------- long sequences


def test_long_sequences_are_cropped_or_dropped_and_counted(tmp_path):
    long = "M" + "A" * 1100
    text = f"sequence,target,set,validation\n{long},1,train,False\nMKV,2,train,False\nMKW,3,test,\n"
    path = meltome_zip(tmp_path / "splits.zip", {"mixed_split": text})
    cropped = load_task("thermostability", path, TaskOptions(long_sequences="crop"))
    assert len(cropped.records[0].sequence) == 1022 and cropped.counts["cropped"] == 1
    dropped = load_task("thermostability", path, TaskOptions(long_sequences="drop"))
    assert [r.sequence for r in dropped.records] == ["MKV", "MKW"]
    assert dropped.counts["dropped_too_long"] == 1


def test_cropping_keeps_residue_labels_and_mask_aligned(tmp_path):
    seq = "MK" * 520
    files = {
        "sequences": f">a\n{seq}\n>b\nMKV\n>c\nMWW\n".encode(),
        "sampled": f">a SET=train VALIDATION=False\n{'HE' * 520}\n>b SET=train VALIDATION=False\nHHC\n>c SET=test VALIDATION=False\nHEC\n".encode(),
        "mask": f">a\n{'1' * 1040}\n>b\n111\n>c\n101\n".encode(),
    }
    data = load_task("secondary_structure", flip_zip(tmp_path / "s.zip", files))
    a = data.records[0]
    assert len(a.sequence) == len(a.residue_labels) == len(a.mask) == 1022


# --------------------------------------------------------------------------- bad labels


def _bad_flip(tmp_path: Path, sampled: str, mask: str) -> Path:
    files = {
        "sequences": b">x1\nMKVL\n>x2\nMKV\n",
        "sampled": f">x1 SET=train VALIDATION=False\nHHEC\n>x2 SET=test VALIDATION=False\n{sampled}\n".encode(),
        "mask": f">x1\n1111\n>x2\n{mask}\n".encode(),
    }
    return flip_zip(tmp_path / "bad.zip", files)


@pytest.mark.parametrize(
    ("task", "make", "message"),
    [
        (
            "localization",
            lambda tmp, wf: wf("dl.fasta", [("P1 Nucleus-U", "MKV"), ("P2 Moon-U test", "MKV")]),
            r"dl\.fasta: record 'P2': unknown location 'Moon'",
        ),
        (
            "thermostability",
            lambda tmp, wf: meltome_zip(
                tmp / "m.zip",
                {
                    "mixed_split": "sequence,target,set,validation\nMKV,41,train,False\nMKW,hot,test,\n"
                },
            ),
            r"m\.zip, member splits/mixed_split\.csv: line 3: target 'hot' is not a number",
        ),
        (
            "secondary_structure",
            lambda tmp, wf: _bad_flip(tmp, "HHHH", "111"),
            r"bad\.zip, member splits/sampled\.fasta: record 'x2': label line has 4 letters, the sequence has 3",
        ),
        (
            "secondary_structure",
            lambda tmp, wf: _bad_flip(tmp, "HHH", "1111"),
            r"bad\.zip, member splits/mask\.fasta: record 'x2': mask has 4 digits, the sequence has 3",
        ),
        (
            "secondary_structure",
            lambda tmp, wf: tape_tarball(
                tmp / "t.tar.gz",
                {
                    "train": [tape_entry("t1", "MKV", [0, 1], [True, True, True])],
                    "valid": [],
                    "cb513": [],
                },
            ),
            r"t\.tar\.gz, member secondary_structure/secondary_structure_train\.json: record 't1': ss3 has 2",
        ),
    ],
)
def test_bad_labels_name_file_and_record_and_write_nothing(
    tmp_path, write_fasta, task, make, message
):
    source = make(tmp_path, write_fasta)
    out = tmp_path / "out"
    with pytest.raises(InputError, match=message):
        task_data_from_file(task, source, out / "data.parquet", out / "data.json")
    assert not out.exists() or not any(out.iterdir())


def test_neither_zip_nor_tarball_is_named(tmp_path):
    path = tmp_path / "ss.txt"
    path.write_text("hello")
    with pytest.raises(InputError, match=r"ss\.txt: neither a FLIP splits\.zip nor a TAPE"):
        read_secondary_structure(path)
