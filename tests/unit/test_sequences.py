"""The sequences stage: FASTA reading, the UniRef50 reservoir sample, Swiss-Prot, MMseqs2 clusters."""

from __future__ import annotations

import gzip
import logging
import os
import random
import shutil
import stat
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from Bio import SeqIO, SwissProt
from scipy.stats import chi2

from protsae import sequences
from protsae.sequences import (
    Clustering,
    FastaStats,
    InMemoryFasta,
    InputError,
    Reservoir,
    cluster_sequences,
    esm_residue_letters,
    fasta,
    parse_swissprot,
    read_entry_list,
    read_fasta,
    sample_uniref50,
    split_clusters,
)

QUIET = logging.getLogger("protsae.tests.quiet")
QUIET.setLevel(logging.ERROR)
AMINO = "ACDEFGHIKLMNPQRSTVWY"


def _random_protein(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(AMINO) for _ in range(length))


# --- FASTA ---------------------------------------------------------------------------


@pytest.mark.parametrize("block", [7, 64, 1 << 20])
def test_read_fasta_agrees_with_biopython(
    write_fasta, tmp_path: Path, monkeypatch, block: int
) -> None:
    """Any block size, gzip or not (told by magic bytes, whatever the name)."""
    monkeypatch.setattr(fasta, "BLOCK_BYTES", block)
    rng = random.Random(block)
    records = [
        (f"UniRef50_{i} name {i} n=3 Tax=x", _random_protein(rng, rng.randint(1, 200)))
        for i in range(60)
    ]
    plain = write_fasta("looks_gzipped.fasta.gz", records, width=rng.randint(10, 80))
    packed = write_fasta("looks_plain.fasta", records, gz=True)
    expected = [(r.id, r.description, str(r.seq)) for r in SeqIO.parse(plain, "fasta")]
    assert len(expected) == 60
    for path in (plain, packed):
        assert [tuple(r) for r in read_fasta(path, logger=QUIET)] == expected


def test_read_fasta_cleans_residues_and_tolerates_odd_bytes(tmp_path: Path) -> None:
    path = tmp_path / "odd.fasta"
    path.write_bytes(b"\n>a first\r\nmkv\r\nLLa*\r\n\r\n>b caf\xe9 \xff\n  ACD  \nEF**\n>c\nW\n")
    stats = FastaStats()
    got = list(read_fasta(path, stats=stats, logger=QUIET))
    assert [(r.id, r.sequence) for r in got] == [("a", "MKVLLA"), ("b", "ACDEF"), ("c", "W")]
    assert got[0].header == "a first"
    assert got[1].header.startswith("b caf")
    assert stats.nonascii_headers == 1 and stats.records == 3


def test_duplicate_ids_keep_the_first(write_fasta, caplog) -> None:
    path = write_fasta("dup.fasta", [("x one", "AAA"), ("y", "CCC"), ("x two", "GGG")])
    stats = FastaStats()
    with caplog.at_level(logging.WARNING, logger="protsae.tests"):
        logger = logging.getLogger("protsae.tests")
        got = list(read_fasta(path, stats=stats, logger=logger))
    assert [(r.id, r.sequence) for r in got] == [("x", "AAA"), ("y", "CCC")]
    assert stats.duplicates == 1
    assert "'x'" in caplog.text


def test_empty_sequence_names_file_and_record(write_fasta) -> None:
    path = write_fasta("empty.fasta", [("a", "MK"), ("hollow protein", ""), ("c", "MK")])
    with pytest.raises(InputError, match=r"empty\.fasta: record #2 \('hollow'\).*empty sequence"):
        list(read_fasta(path, logger=QUIET))
    path = write_fasta("stop_only.fasta", [("a", "MK"), ("b", "*")])
    with pytest.raises(InputError, match=r"record #2 \('b'\)"):
        list(read_fasta(path, logger=QUIET))


def test_allow_empty_passes_empty_records_on_in_order(write_fasta) -> None:
    records = [("a", "MK"), ("hollow protein", ""), ("a", "w*"), ("d", "*")]
    path = write_fasta("holes.fasta", records)
    got = list(read_fasta(path, unique_ids=False, logger=QUIET, allow_empty=True))
    assert [(r.id, r.header, r.sequence) for r in got] == [
        ("a", "a", "MK"),
        ("hollow", "hollow protein", ""),
        ("a", "a", "W"),
        ("d", "d", ""),
    ]


def test_fasta_bytes_in_memory_read_like_a_file(write_fasta) -> None:
    records = [("a", "MK"), ("b x", "WWW*"), ("c", "")]
    path = write_fasta("file.fasta", records)
    member = InMemoryFasta(path.read_bytes(), "archive.zip, member m.fasta")
    as_file = list(read_fasta(path, logger=QUIET, allow_empty=True))
    assert list(read_fasta(member, logger=QUIET, allow_empty=True)) == as_file
    with pytest.raises(InputError, match=r"^archive\.zip, member m\.fasta: record #3 \('c'\)"):
        list(read_fasta(member, logger=QUIET))


def test_text_before_first_header(tmp_path: Path) -> None:
    path = tmp_path / "headless.fasta"
    path.write_text("MKV\n>a\nMKV\n")
    with pytest.raises(InputError, match="headless.fasta: sequence data before the first"):
        list(read_fasta(path, logger=QUIET))


def _read_cut_gzip(write_fasta, seed: int) -> tuple[list[str], str]:
    """Read a gzipped FASTA of 400 records cut in half: (ids yielded, the InputError's text)."""
    rng = random.Random(seed)
    records = [(f"rec{i}", _random_protein(rng, 300)) for i in range(400)]
    whole = write_fasta("whole.fasta.gz", records, gz=True)
    cut = whole.with_name("cut.fasta.gz")
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    yielded: list[str] = []
    with pytest.raises(InputError, match="cut.fasta.gz: truncated") as info:
        for record in read_fasta(cut, logger=QUIET):
            yielded.append(record.id)
    return yielded, str(info.value)


def test_truncated_gzip_names_file_and_last_record(write_fasta, monkeypatch) -> None:
    monkeypatch.setattr(fasta, "BLOCK_BYTES", 4096)
    yielded, message = _read_cut_gzip(write_fasta, seed=3)
    assert 0 < len(yielded) < 400
    assert f"record #{len(yielded)} ('{yielded[-1]}')" in message


def test_truncated_gzip_reports_the_record_it_reached(write_fasta) -> None:
    """With the real block size the whole small file is one read: the records before the
    damage are still yielded, and the error names the last whole one, not record #0."""
    yielded, message = _read_cut_gzip(write_fasta, seed=4)
    assert 100 < len(yielded) < 400
    assert f"after record #{len(yielded)} ('{yielded[-1]}')" in message


def test_png_and_html_are_named_as_such(tmp_path: Path) -> None:
    png = tmp_path / "uniref50.fasta"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(InputError, match="uniref50.fasta: it is a PNG image, not a FASTA file"):
        sample_uniref50(png, 10, 100, 0, logger=QUIET)
    html = tmp_path / "page.fasta.gz"
    html.write_bytes(gzip.compress(b"<!DOCTYPE html><html><body>> moved</body></html>"))
    with pytest.raises(InputError, match="page.fasta.gz: it is an HTML page, not a FASTA file"):
        list(read_fasta(html, logger=QUIET))


def test_non_ascii_byte_never_reaches_a_sequence(tmp_path: Path) -> None:
    path = tmp_path / "odd.fasta"
    path.write_bytes(b">a\nMKV\n>b second\nMK\xc8V\n")
    with pytest.raises(InputError, match=r"odd.fasta: record #2 \('b'\) has the byte 0xc8"):
        list(read_fasta(path, logger=QUIET))
    table = sample_uniref50(path, 10, 100, 0, logger=QUIET)
    assert table.column("id").to_pylist() == ["a"]


# --- reservoir sampling ----------------------------------------------------------------


def _inclusion_counts(sampler, n: int, k: int, runs: int) -> np.ndarray:
    counts = np.zeros(n)
    for seed in range(runs):
        for index in sampler(n, k, seed):
            counts[index] += 1
    return counts


def _reservoir_sample(n: int, k: int, seed: int) -> list[int]:
    reservoir = Reservoir(k, seed)
    slots = [-1] * k
    for item in range(n):
        slot = reservoir.offer()
        if slot >= 0:
            slots[slot] = item
    return [s for s in slots if s >= 0]


def _off_by_one_algorithm_r(n: int, k: int, seed: int) -> list[int]:
    """A classic bug: j drawn from [0, i) instead of [0, i]; the first items lose out."""
    rng = random.Random(seed)
    slots = list(range(k))
    for item in range(k, n):
        j = rng.randrange(item)
        if j < k:
            slots[j] = item
    return slots


def _uniformity_pvalue(counts: np.ndarray) -> float:
    expected = counts.sum() / len(counts)
    statistic = float(((counts - expected) ** 2 / expected).sum())
    return float(chi2.sf(statistic, len(counts) - 1))


def test_reservoir_is_uniform_over_positions() -> None:
    n, k, runs = 60, 6, 10_000
    counts = _inclusion_counts(_reservoir_sample, n, k, runs)
    assert counts.sum() == k * runs
    assert _uniformity_pvalue(counts) > 1e-3
    # Neither end of the stream is favoured.
    assert abs(counts[: n // 2].sum() / counts.sum() - 0.5) < 0.02
    # The check has teeth: biased samplers fail it.
    assert _uniformity_pvalue(_inclusion_counts(_off_by_one_algorithm_r, n, k, runs)) < 1e-6
    assert _uniformity_pvalue(_inclusion_counts(lambda n, k, s: range(k), n, k, runs)) < 1e-6


@pytest.mark.parametrize("n", [0, 1, 5, 6])
def test_reservoir_keeps_everything_when_stream_is_short(n: int) -> None:
    assert sorted(_reservoir_sample(n, 6, seed=1)) == list(range(n))


def test_sample_uniref50_positions_are_uniform(write_fasta) -> None:
    rng = random.Random(0)
    n, k, runs = 80, 8, 300
    path = write_fasta("u.fasta", [(f"UniRef50_{i}", _random_protein(rng, 30)) for i in range(n)])
    counts = np.zeros(n)
    for seed in range(runs):
        table = sample_uniref50(path, k, 1022, seed, logger=QUIET)
        for record_id in table.column("id").to_pylist():
            counts[int(record_id.removeprefix("UniRef50_"))] += 1
    assert counts.sum() == k * runs
    assert _uniformity_pvalue(counts) > 1e-3


def test_sample_filters_counts_and_orders(write_fasta) -> None:
    letters = esm_residue_letters()
    assert len(letters) == 25 and set("XBUZO") <= set(letters) and not set("J-.*") & set(letters)
    records = [
        ("at_limit", "M" * 10),
        ("too_long", "M" * 11),
        ("with_j", "MKJL"),
        ("with_gap", "MK-L"),
        ("rare_letters", "mkxbuzo*"),
        ("at_limit", "MKV"),  # repeated id while the first is in the sample
        ("plain desc", "MKV"),
    ]
    path = write_fasta("mixed.fasta", records)
    table = sample_uniref50(path, 10, 10, 0, logger=QUIET)
    assert table.schema.equals(sequences.UNIREF50_SCHEMA)
    assert table.to_pylist() == [
        {"id": "at_limit", "sequence": "M" * 10, "length": 10},
        {"id": "rare_letters", "sequence": "MKXBUZO", "length": 7},
        {"id": "plain", "sequence": "MKV", "length": 3},
    ]  # file order
    meta = {k.decode(): int(v) for k, v in table.schema.metadata.items()}
    assert meta == {
        "protsae.seen": 7,
        "protsae.eligible": 3,
        "protsae.kept": 3,
        "protsae.too_long": 1,
        "protsae.invalid_letters": 2,
        "protsae.repeated_ids": 1,
        "protsae.nonascii_headers": 0,
    }


def test_repeated_ids_never_shrink_the_sample(write_fasta, caplog) -> None:
    rng = random.Random(5)
    unique = [(f"UniRef50_{i}", _random_protein(rng, 30)) for i in range(400)]
    repeats = [(f"UniRef50_{i} again", _random_protein(rng, 30)) for i in range(0, 200, 2)]
    path = write_fasta("repeats.fasta", unique[:150] + repeats + unique[150:])
    logger = logging.getLogger("protsae.tests.sample")
    with caplog.at_level(logging.INFO, logger="protsae.tests.sample"):
        table = sample_uniref50(path, 300, 1000, 0, logger=logger)
    ids = table.column("id").to_pylist()
    assert len(ids) == 300 == len(set(ids))  # 400 distinct eligible ids: a full sample
    meta = {k.decode(): int(v) for k, v in table.schema.metadata.items()}
    assert meta["protsae.repeated_ids"] >= 75  # the 75 repeats of ids then in the sample
    assert "repeated: UniRef50_0, UniRef50_2, UniRef50_4" in caplog.text


def test_dropped_ids_are_named_per_reason(write_fasta, caplog) -> None:
    records = [(f"long{i}", "M" * 50) for i in range(8)] + [("withJ", "MKJ"), ("ok", "MKV")]
    path = write_fasta("drops.fasta", records)
    logger = logging.getLogger("protsae.tests.drops")
    with caplog.at_level(logging.INFO, logger="protsae.tests.drops"):
        sample_uniref50(path, 5, 20, 0, logger=logger)
    assert "too long: long0, long1, long2, long3, long4; letters: withJ" in caplog.text
    assert "long5" not in caplog.text
    assert "8 longer than 20" in caplog.text


def test_sample_is_deterministic_per_seed(write_fasta) -> None:
    rng = random.Random(1)
    records = [(f"s{i}", _random_protein(rng, rng.randint(5, 50))) for i in range(500)]
    path = write_fasta("d.fasta.gz", records, gz=True)
    first = sample_uniref50(path, 50, 40, seed=7, logger=QUIET)
    again = sample_uniref50(path, 50, 40, seed=7, logger=QUIET)
    other = sample_uniref50(path, 50, 40, seed=8, logger=QUIET)
    assert first.equals(again)
    assert first.column("id").to_pylist() != other.column("id").to_pylist()
    ids = first.column("id").to_pylist()
    assert len(set(ids)) == 50
    assert ids == sorted(ids, key=lambda s: int(s[1:]))  # file order
    lengths = dict(zip(ids, first.column("length").to_pylist(), strict=True))
    source = dict(records)
    assert all(lengths[i] == len(source[i]) <= 40 for i in ids)


def _write_many(path: Path, n: int) -> int:
    """A gzipped FASTA of n random records (unwrapped); returns its uncompressed size."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 121, n)
    residues = np.frombuffer(AMINO.encode(), np.uint8)[rng.integers(0, 20, lengths.sum())]
    residues = residues.tobytes()
    parts, start = [], 0
    for i, length in enumerate(lengths.tolist()):
        parts += [b">UniRef50_R%d n=1\n" % i, residues[start : start + length], b"\n"]
        start += length
    data = b"".join(parts)
    path.write_bytes(gzip.compress(data, compresslevel=1))
    return len(data)


def _peak_bytes(path: Path, sample_size: int) -> tuple[int, pa.Table]:
    tracemalloc.start()
    try:
        table = sample_uniref50(path, sample_size, 1022, seed=0, logger=QUIET)
        return tracemalloc.get_traced_memory()[1], table
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_sample_memory_does_not_grow_with_input(tmp_path: Path, monkeypatch) -> None:
    # Smaller blocks shrink the constant part (blocks in flight) so growth would show.
    monkeypatch.setattr(fasta, "BLOCK_BYTES", 1 << 18)
    small, large = tmp_path / "small.fasta.gz", tmp_path / "large.fasta.gz"
    _write_many(small, 50_000)
    large_bytes = _write_many(large, 500_000)
    sample_uniref50(small, 10, 1022, seed=0, logger=QUIET)  # lazy imports (pandas) happen here
    peak_small, table_small = _peak_bytes(small, 2000)
    peak_large, table_large = _peak_bytes(large, 2000)
    assert table_small.num_rows == table_large.num_rows == 2000
    assert int(table_large.schema.metadata[b"protsae.seen"]) == 500_000
    # Ten times the input, about the same peak; far below the input's size.
    assert peak_large < 1.3 * peak_small + (1 << 20), (peak_small, peak_large)
    assert peak_large < large_bytes / 5, (peak_large, large_bytes)


def test_demo_uniref50_awkward_records(demo_dir: Path) -> None:
    table = sample_uniref50(demo_dir / "uniref50.fasta.gz", 10_000, 1000, 0, logger=QUIET)
    rows = {r["id"]: r["sequence"] for r in table.to_pylist()}
    meta = {k.decode(): int(v) for k, v in table.schema.metadata.items()}
    with gzip.open(demo_dir / "uniref50.fasta.gz", "rb") as fh:
        headers = sum(line.startswith(b">") for line in fh)
    assert meta["protsae.seen"] == headers  # every record of the file was read
    assert meta["protsae.invalid_letters"] == 1 and "UniRef50_DEMO_J" not in rows
    assert "UniRef50_DEMO_LONG" not in rows
    assert "X" in rows["UniRef50_DEMO_X"]
    assert rows["UniRef50_DEMO_LOWERCASE"].isupper()
    assert not rows["UniRef50_DEMO_STOP"].endswith("*")
    assert "UniRef50_A0A1E3NP16" in rows  # a real UniRef50 record


# --- Swiss-Prot and InterPro -----------------------------------------------------------


def test_parse_swissprot_matches_biopython(demo_dir: Path, tmp_path: Path) -> None:
    dat, entries_path = demo_dir / "uniprot_sprot.dat", demo_dir / "entry.list"
    entries = read_entry_list(entries_path)
    table = parse_swissprot(dat, entries_path, logger=QUIET)
    assert table.schema.equals(sequences.SWISSPROT_SCHEMA)
    with open(dat) as fh:
        expected = list(SwissProt.parse(fh))
    assert table.num_rows == len(expected) > 10  # real excerpts plus planted families
    for row, record in zip(table.to_pylist(), expected, strict=True):
        interpro = [ref[1] for ref in record.cross_references if ref[0] == "InterPro"]
        assert row["accession"] == record.accessions[0]
        assert row["entry_name"] == record.entry_name
        assert row["sequence"] == record.sequence
        assert row["length"] == record.sequence_length == len(record.sequence)
        assert row["interpro"] == interpro
        assert row["families"] == [a for a in interpro if entries[a][0] == "Family"]  # all listed
    claudin = table.filter(pa.compute.equal(table.column("accession"), "O95832")).to_pylist()[0]
    assert claudin["families"] == ["IPR006187", "IPR003548", "IPR004031"]
    # The same file gzipped under a name that hides it parses the same.
    packed = tmp_path / "sprot.dat"
    packed.write_bytes(gzip.compress(dat.read_bytes()))
    assert parse_swissprot(packed, entries_path, logger=QUIET).equals(table)


def test_families_follow_entry_types(demo_dir: Path, tmp_path: Path) -> None:
    entries_path = tmp_path / "entry.list"
    entries_path.write_text(
        "ENTRY_AC\tENTRY_TYPE\tENTRY_NAME\nIPR001623\tFamily\tDnaJ\nIPR006187\tDomain\tClaudin\n"
    )
    table = parse_swissprot(demo_dir / "uniprot_sprot.dat", entries_path, logger=QUIET)
    families = dict(
        zip(
            table.column("accession").to_pylist(), table.column("families").to_pylist(), strict=True
        )
    )
    assert families["P60904"] == ["IPR001623"]
    assert families["O95832"] == []
    assert sum(1 for f in families.values() if f) == 1


def test_entry_list_errors(tmp_path: Path) -> None:
    headless = tmp_path / "headless.list"
    headless.write_text("IPR000001\tDomain\tKringle\n")
    with pytest.raises(InputError, match="headless.list: line 1 must be the tab-separated header"):
        read_entry_list(headless)
    short = tmp_path / "short.list"
    short.write_text(
        "ENTRY_AC\tENTRY_TYPE\tENTRY_NAME\nIPR000001\tDomain\tKringle\nIPR000002 Family\n"
    )
    with pytest.raises(InputError, match="short.list: line 3"):
        read_entry_list(short)
    crlf = tmp_path / "crlf.list"
    crlf.write_text("ENTRY_AC\tENTRY_TYPE\tENTRY_NAME\r\nIPR000001\tDomain\tKringle\r\n\r\n")
    assert read_entry_list(crlf) == {"IPR000001": ("Domain", "Kringle")}


def _dat_without_terminator(demo_dir: Path, tmp_path: Path, which: int) -> Path:
    lines = (demo_dir / "uniprot_sprot.dat").read_text().splitlines(keepends=True)
    ends = [i for i, line in enumerate(lines) if line.startswith("//")]
    del lines[ends[which]]
    path = tmp_path / "broken.dat"
    path.write_text("".join(lines))
    return path


def test_missing_terminator_mid_file(demo_dir: Path, tmp_path: Path) -> None:
    broken = _dat_without_terminator(demo_dir, tmp_path, which=2)
    entries = demo_dir / "entry.list"
    with pytest.raises(InputError, match=r"broken.dat: record #3 \(accession P60904.*'//'"):
        parse_swissprot(broken, entries, logger=QUIET)


def test_missing_terminator_at_end(demo_dir: Path, tmp_path: Path) -> None:
    broken = _dat_without_terminator(demo_dir, tmp_path, which=-1)
    entries = demo_dir / "entry.list"
    with open(demo_dir / "uniprot_sprot.dat") as fh:
        records = list(SwissProt.parse(fh))
    last = rf"record #{len(records)} \(accession {records[-1].accessions[0]}.*end of file"
    with pytest.raises(InputError, match=last):
        parse_swissprot(broken, entries, logger=QUIET)


def test_biopython_errors_are_named(demo_dir: Path, tmp_path: Path) -> None:
    lines = (demo_dir / "uniprot_sprot.dat").read_text().splitlines(keepends=True)
    sq = [i for i, line in enumerate(lines) if line.startswith("SQ   ")][1]
    lines[sq] = "SQ   SEQUENCE garbled\n"
    broken = tmp_path / "garbled.dat"
    broken.write_text("".join(lines))
    with pytest.raises(InputError, match=r"garbled.dat: cannot parse record #2 \(accession P39896"):
        parse_swissprot(broken, demo_dir / "entry.list", logger=QUIET)


def _entries(demo_dir: Path) -> list[str]:
    """The demo's Swiss-Prot entries, each ending with its '//' line."""
    return [e + "//\n" for e in (demo_dir / "uniprot_sprot.dat").read_text().split("//\n")[:-1]]


def _write_entries(tmp_path: Path, entries: list[str] | bytes) -> Path:
    path = tmp_path / "sprot.dat"
    path.write_bytes(entries if isinstance(entries, bytes) else "".join(entries).encode())
    return path


def _without_sq_block(entry: str) -> str:
    head, _, rest = entry.partition("\nSQ   ")
    return head + "\n//\n"


def test_entry_without_sequence_is_named_with_accession_and_line(
    demo_dir: Path, tmp_path: Path
) -> None:
    entries = _entries(demo_dir)
    entries[3] = _without_sq_block(entries[3])
    line = sum(e.count("\n") for e in entries[:3]) + 1
    accession = entries[3].split("\nAC   ")[1].split(";")[0]
    path = _write_entries(tmp_path, entries)
    with pytest.raises(InputError) as info:
        parse_swissprot(path, demo_dir / "entry.list", logger=QUIET)
    assert f"entry {accession} (line {line}) has no sequence" in str(info.value)
    assert "swissprot_invalid" in str(info.value)


def test_letters_outside_the_alphabet_and_non_utf8_bytes(demo_dir: Path, tmp_path: Path) -> None:
    entries = _entries(demo_dir)
    sq_line = entries[1].index("\n     ", entries[1].index("\nSQ   ")) + 6
    with_digit = entries[1][:sq_line] + "1" + entries[1][sq_line + 1 :]
    path = _write_entries(tmp_path, [entries[0], with_digit, *entries[2:]])
    with pytest.raises(InputError, match=r"entry P39896 \(line \d+\) has letters outside .*'1'"):
        parse_swissprot(path, demo_dir / "entry.list", logger=QUIET)
    raw = "".join(entries).encode()
    cut = raw.index(b"\n     ", raw.index(b"\nSQ   ", raw.index(b"P39896"))) + 6
    path = _write_entries(tmp_path, raw[:cut] + b"\xc8" + raw[cut + 1 :])
    with pytest.raises(InputError, match=r"entry P39896 \(line \d+\) has bytes that are not UTF-8"):
        parse_swissprot(path, demo_dir / "entry.list", logger=QUIET)


def test_skip_switch_leaves_bad_entries_out_and_names_them(
    demo_dir: Path, tmp_path: Path, caplog
) -> None:
    entries = _entries(demo_dir)
    entries[3] = _without_sq_block(entries[3])
    path = _write_entries(tmp_path, entries)
    logger = logging.getLogger("protsae.tests.skip")
    with caplog.at_level(logging.WARNING, logger="protsae.tests.skip"):
        table = parse_swissprot(path, demo_dir / "entry.list", logger=logger, invalid="skip")
    assert table.num_rows == len(entries) - 1
    accession = entries[3].split("\nAC   ")[1].split(";")[0]
    assert accession not in table.column("accession").to_pylist()
    assert f"skipped 1 entries ESM-2 cannot read: entry {accession}" in caplog.text
    assert all(set(s) <= set(esm_residue_letters()) for s in table.column("sequence").to_pylist())


def test_empty_swissprot_file_stops_the_run(demo_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(
        InputError, match="no Swiss-Prot entries; the evaluation set would be empty"
    ):
        parse_swissprot(_write_entries(tmp_path, b""), demo_dir / "entry.list", logger=QUIET)
    only_bad = _write_entries(tmp_path, [_without_sq_block(_entries(demo_dir)[0])])
    with pytest.raises(InputError, match="no Swiss-Prot entries left after skipping 1"):
        parse_swissprot(only_bad, demo_dir / "entry.list", logger=QUIET, invalid="skip")


# --- MMseqs2 clustering ------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted() -> tuple[pa.Table, dict[str, str]]:
    """3 families of mutated copies (about 90% identical) + unrelated singletons + one too long."""
    rng = random.Random(5)
    accessions, seqs, truth = [], [], {}
    for family in "ABC":
        ancestor = _random_protein(rng, rng.randint(150, 250))
        for copy in range(5):
            mutant = list(ancestor)
            for i in rng.sample(range(len(mutant)), len(mutant) // 10):
                mutant[i] = rng.choice(AMINO)
            accessions.append(f"P{family}{copy}")
            seqs.append("".join(mutant))
            truth[accessions[-1]] = family
    for single in range(6):
        accessions.append(f"Q{single}")
        seqs.append(_random_protein(rng, rng.randint(80, 300)))
        truth[accessions[-1]] = accessions[-1]
    accessions.append("LONG")
    seqs.append(_random_protein(rng, 1100))
    order = list(range(len(accessions)))
    rng.shuffle(order)
    table = pa.table(
        {"accession": [accessions[i] for i in order], "sequence": [seqs[i] for i in order]}
    )
    return table, truth


def _cluster(table: pa.Table, tmp_path: Path, seed: int) -> pa.Table:
    return cluster_sequences(
        table,
        Clustering(min_seq_id=0.3, coverage=0.9, sensitivity=7.5),
        max_length=1022,
        threads=1,
        test_fraction=0.3,
        seed=seed,
        workdir=tmp_path,
        logger=QUIET,
    )


@pytest.mark.slow
def test_clusters_recover_planted_families(planted, tmp_path: Path) -> None:
    table, truth = planted
    result = _cluster(table, tmp_path, seed=0)
    assert result.schema.equals(sequences.CLUSTERS_SCHEMA)
    rows = result.to_pylist()
    assert [r["accession"] for r in rows] == [
        a for a in table.column("accession").to_pylist() if a != "LONG"
    ]
    # Same cluster <=> same planted family.
    by_family: dict[str, set[str]] = {}
    for row in rows:
        by_family.setdefault(truth[row["accession"]], set()).add(row["cluster"])
    assert all(len(clusters) == 1 for clusters in by_family.values())
    assert len({next(iter(c)) for c in by_family.values()}) == len(by_family) == 9
    # Representatives are members of their own cluster; a cluster has one split.
    split_of: dict[str, set[str]] = {}
    for row in rows:
        assert truth[row["cluster"]] == truth[row["accession"]]
        split_of.setdefault(row["cluster"], set()).add(row["split"])
    assert all(len(s) == 1 for s in split_of.values())
    assert sum(s == {"test"} for s in split_of.values()) == 3  # round(0.3 * 9)
    # The split is the seeded draw over the representatives; another seed draws others.
    reps = sorted(split_of)
    assert split_clusters(reps, 0.3, 0) == {c for c, s in split_of.items() if s == {"test"}}
    assert any(split_clusters(reps, 0.3, seed) != split_clusters(reps, 0.3, 0) for seed in (1, 2))
    assert list(tmp_path.iterdir()) == []  # MMseqs2's work directory is cleaned up


def test_split_clusters_counts() -> None:
    reps = [f"R{i}" for i in range(10)]
    assert len(split_clusters(reps, 0.25, 0)) == 2  # round(2.5) -> 2
    assert len(split_clusters(reps, 0.01, 0)) == 1  # both splits non-empty
    assert len(split_clusters(reps, 0.99, 0)) == 9
    assert split_clusters(reps, 0.0, 0) == set() and len(split_clusters(reps, 1.0, 0)) == 10
    assert split_clusters(reps, 0.5, 3) == split_clusters(list(reversed(reps)), 0.5, 3)
    with pytest.raises(ValueError, match="test_fraction"):
        split_clusters(reps, 1.5, 0)


def test_only_long_entries_stop_the_run() -> None:
    table = pa.table({"accession": ["A"], "sequence": ["M" * 2000]})
    with pytest.raises(InputError, match="the evaluation set would be empty"):
        cluster_sequences(table, max_length=1022, logger=QUIET)


def test_evaluation_set_without_test_representative_stops_the_run(tmp_path: Path) -> None:
    if shutil.which("mmseqs") is None:
        pytest.skip("mmseqs not installed")
    rng = random.Random(1)
    base = _random_protein(rng, 200)
    table = pa.table({"accession": ["A", "B"], "sequence": [base, base[:-1] + "W"]})
    with pytest.raises(InputError, match="no test representative: 2 entries in 1 cluster"):
        cluster_sequences(table, test_fraction=0.5, workdir=tmp_path, logger=QUIET)


def test_mmseqs_missing_says_how_to_install(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    table = pa.table({"accession": ["A"], "sequence": ["MKV"]})
    with pytest.raises(RuntimeError, match="mmseqs2"):
        cluster_sequences(table, logger=QUIET)


def test_mmseqs_failure_shows_its_output(monkeypatch, tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "mmseqs"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'Invalid database read' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(fake.parent) + os.pathsep + os.environ["PATH"])
    table = pa.table({"accession": ["A", "B"], "sequence": ["MKV", "MKL"]})
    with pytest.raises(RuntimeError, match="(?s)exit status 1.*Invalid database read"):
        cluster_sequences(table, workdir=tmp_path / "work", logger=QUIET)


def test_repeated_accessions_are_refused() -> None:
    table = pa.table({"accession": ["A", "A"], "sequence": ["MKV", "MKL"]})
    with pytest.raises(InputError, match="more than once"):
        cluster_sequences(table, logger=QUIET)


def test_stopping_early_stops_the_read_ahead_thread(write_fasta, monkeypatch) -> None:
    monkeypatch.setattr(fasta, "BLOCK_BYTES", 256)
    rng = random.Random(4)
    path = write_fasta(
        "many.fasta.gz", [(f"r{i}", _random_protein(rng, 100)) for i in range(2000)], gz=True
    )
    records = read_fasta(path, logger=QUIET)
    assert [next(records).id for _ in range(3)] == ["r0", "r1", "r2"]
    records.close()
    assert not [t for t in threading.enumerate() if t.name == "protsae-read-ahead"]
