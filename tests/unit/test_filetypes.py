"""Format checks of downloads: each kind accepts its real-format demo file and names what a
wrong file is instead (HTML page, PNG image, cut gzip stream, ...)."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from protsae.filetypes import FormatError, check_format, sniff

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)
HTML = b"  <!doctype html>\n<html lang=en><title>404</title></html>"


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        (DEMO / "uniref50.fasta.gz", "fasta"),
        (DEMO / "deeploc.fasta", "fasta"),
        (DEMO / "uniprot_sprot.dat", "swissprot"),
        (DEMO / "entry.list", "entry_list"),
    ],
)
def test_demo_inputs_pass(path: Path, kind: str) -> None:
    check_format(path, kind)


def _write(tmp_path: Path, data: bytes, name: str = "file") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_html_png_and_empty_are_named(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="the server returned an HTML page, not a FASTA file"):
        check_format(_write(tmp_path, HTML), "fasta", served=True)
    with pytest.raises(FormatError, match="the file is an HTML page"):
        check_format(_write(tmp_path, gzip.compress(HTML)), "entry_list")
    with pytest.raises(FormatError, match="it is a PNG image, not a FASTA file"):
        check_format(_write(tmp_path, PNG), "fasta")
    with pytest.raises(FormatError, match="it is empty, not a Swiss-Prot flat file"):
        check_format(_write(tmp_path, b""), "swissprot")
    with pytest.raises(FormatError, match="it is a PNG image"):
        check_format(_write(tmp_path, PNG), "text")
    assert sniff(b"ENTRY_AC\tENTRY_TYPE\n") is None


def test_cut_gzip_stream_fails_even_when_the_first_record_is_fine(tmp_path: Path) -> None:
    data = gzip.compress(b"".join(b">s%d\nMKV\n" % i for i in range(50_000)))
    check_format(_write(tmp_path, data), "fasta")
    with pytest.raises(FormatError, match="gzip stream is incomplete"):
        check_format(_write(tmp_path, data[: len(data) // 2]), "fasta")


def test_fasta_first_record_must_have_a_sequence(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"first FASTA record \('P1'\) has no sequence"):
        check_format(_write(tmp_path, b">P1 no sequence\n>P2\nMKV\n"), "fasta")
    with pytest.raises(FormatError, match="does not look like a FASTA file"):
        check_format(_write(tmp_path, b"MKVLAAGIVALLLAAGCSS\n"), "fasta")


def test_swissprot_first_entry_must_parse(tmp_path: Path) -> None:
    entry = (DEMO / "uniprot_sprot.dat").read_bytes().split(b"\n//\n")[0] + b"\n//\n"
    check_format(_write(tmp_path, gzip.compress(entry)), "swissprot")
    broken = entry.replace(b"\nAC   ", b"\nZZ   ", 1)
    with pytest.raises(FormatError, match="first Swiss-Prot entry does not parse"):
        check_format(_write(tmp_path, broken), "swissprot")
    with pytest.raises(FormatError, match="no '//' terminator"):
        check_format(_write(tmp_path, entry[:-4]), "swissprot")


def test_entry_list_header(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="line 1 is not the entry.list header"):
        check_format(_write(tmp_path, b"IPR000001\tDomain\tKringle\n"), "entry_list")


def test_zip_needs_its_central_directory(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("splits/sequences.fasta", ">a\nMKV\n" * 1000)
    data = buffer.getvalue()
    check_format(_write(tmp_path, data), "zip")
    with pytest.raises(FormatError, match="no readable zip central directory"):
        check_format(_write(tmp_path, data[: len(data) // 2]), "zip")
    with pytest.raises(FormatError, match="the file is an HTML page, not a zip archive"):
        check_format(_write(tmp_path, HTML), "zip")
    with pytest.raises(FormatError, match="it is a PNG image, not a zip archive"):
        check_format(_write(tmp_path, PNG), "zip")


def test_tar_gz_and_checkpoint(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("data/ss.csv")
        info.size = 4
        archive.addfile(info, io.BytesIO(b"a,b\n"))
    check_format(_write(tmp_path, buffer.getvalue()), "tar")
    with pytest.raises(FormatError, match="it is a PNG image, not a tar archive"):
        check_format(_write(tmp_path, PNG), "tar")
    check_format(_write(tmp_path, b"\x80\x02\x8a\x0alegacy torch"), "checkpoint")
    with pytest.raises(FormatError, match="server returned an HTML page, not a PyTorch"):
        check_format(_write(tmp_path, HTML), "checkpoint", served=True)


def test_any_kind_refuses_html_and_cut_archives_only(tmp_path: Path) -> None:
    check_format(DEMO / "deeploc.fasta", "any")
    check_format(_write(tmp_path, b"id,label\nP1,3.5\n", "t.csv"), "any")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("splits/meltome.csv", "sequence,target\n" * 500)
    check_format(_write(tmp_path, buffer.getvalue(), "s.zip"), "any")
    with pytest.raises(FormatError, match="no readable zip central directory"):
        check_format(_write(tmp_path, buffer.getvalue()[:-30], "s.zip"), "any")
    with pytest.raises(FormatError, match="the server returned an HTML page"):
        check_format(_write(tmp_path, HTML), "any", served=True)
