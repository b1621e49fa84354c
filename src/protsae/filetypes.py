"""What a file is: the format check every download passes before it takes its final name.

A download that is an HTML error page, a gzip stream cut short or a file of another kind
must fail where it enters the pipeline, naming the source, not hours later in a parser
that can only say "no '>' header". :func:`check_format` reads a file of one of the
:data:`KINDS` far enough to know: a gzip stream to its end, then the first record.
:func:`sniff` names common file types from their first bytes for such messages.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import zipfile
import zlib
from pathlib import Path

GZIP_MAGIC = b"\x1f\x8b"
HEAD_BYTES = 1 << 20
# Swiss-Prot's longest entries (titin) take a few hundred kB; the first record fits in this.
MAX_RECORD_BYTES = 16 << 20
ENTRY_LIST_HEADER = ("ENTRY_AC", "ENTRY_TYPE", "ENTRY_NAME")

KINDS = {
    "fasta": "a FASTA file",
    "swissprot": "a Swiss-Prot flat file",
    "entry_list": "an InterPro entry.list",
    "zip": "a zip archive",
    "tar": "a tar archive",
    "checkpoint": "a PyTorch checkpoint",
    "safetensors": "a safetensors file",
    "json": "a JSON document",
    "text": "a text file",
    "any": "a data file",  # any type; a zip or gzip must be whole, an HTML page is refused
}

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a zip archive"),
    (b"PK\x05\x06", "a zip archive"),
    (GZIP_MAGIC, "gzip data"),
    (b"BZh", "bzip2 data"),
    (b"\xfd7zXZ\x00", "xz data"),
    (b"\x28\xb5\x2f\xfd", "zstd data"),
)


class FormatError(ValueError):
    """A file is not of the kind expected; the message says what it is instead."""


def is_html(head: bytes) -> bool:
    """Whether these first bytes are an HTML page (an error or login page served as data)."""
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()[:1024]
    if start.startswith((b"<!doctype html", b"<html")):
        return True
    return start.startswith(b"<") and (b"<html" in start or b"<head" in start or b"<body" in start)


def sniff(head: bytes) -> str | None:
    """A name for the file type these first bytes show ("an HTML page", "a PNG image", ...),
    or None for text that is none of the recognised types."""
    if not head:
        return "empty"
    if is_html(head):
        return "an HTML page"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head.lstrip().startswith(b"<?xml"):
        return "an XML document"
    if b"\x00" in head[:4096]:
        return "binary data"
    return None


def describe(path: str | os.PathLike[str]) -> str | None:
    """:func:`sniff` of a file's first bytes."""
    with open(path, "rb") as fh:
        return sniff(fh.read(4096))


def _read_gzip(path: Path, keep: int) -> bytes:
    """Decompress the whole stream (proving it complete); return its first ``keep`` bytes."""
    head = bytearray()
    try:
        with gzip.open(path, "rb") as fh:
            while block := fh.read(HEAD_BYTES):
                if len(head) < keep:
                    head += block[: keep - len(head)]
    except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
        raise FormatError(
            f"its gzip stream is incomplete or corrupt ({exc}); a download cut short?"
        ) from exc
    return bytes(head)


def _wrong_kind(head: bytes, kind: str, served: bool) -> FormatError:
    found = sniff(head)
    if found == "an HTML page":
        who = "the server returned" if served else "the file is"
        return FormatError(f"{who} an HTML page, not {KINDS[kind]}: {_show(head)}")
    if found == "empty":
        return FormatError(f"it is empty, not {KINDS[kind]}")
    if found is not None:
        return FormatError(f"it is {found}, not {KINDS[kind]}")
    return FormatError(f"it does not look like {KINDS[kind]}; it starts with {_show(head)}")


def _show(head: bytes) -> str:
    text = head.lstrip()[:60].decode("utf-8", "replace")
    return repr(text + ("..." if len(head.lstrip()) > 60 else ""))


def check_format(path: str | os.PathLike[str], kind: str, served: bool = False) -> None:
    """Raise :class:`FormatError` unless ``path`` is a whole file of ``kind`` (see :data:`KINDS`).

    Gzipped files are decompressed to the end (a cut stream fails), then the first record
    is checked: a FASTA header with a sequence, a Swiss-Prot entry Biopython parses, the
    entry.list header, a zip central directory, a tar member, a checkpoint's zip or pickle
    start. Every kind refuses an HTML page; ``served`` words that as the server's doing.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown file kind {kind!r}; known: {', '.join(KINDS)}")
    path = Path(path)
    keep = MAX_RECORD_BYTES if kind == "swissprot" else HEAD_BYTES
    with open(path, "rb") as fh:
        raw = fh.read(keep)
    head = _read_gzip(path, keep) if raw.startswith(GZIP_MAGIC) else raw
    if is_html(head) or not head:
        raise _wrong_kind(head, kind, served)
    if kind == "fasta":
        _check_fasta(head, complete=len(head) < keep, served=served)
    elif kind == "swissprot":
        _check_swissprot(head, served)
    elif kind == "entry_list":
        first = head.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace")
        if tuple(first.split("\t")[:3]) != ENTRY_LIST_HEADER:
            raise FormatError(
                f"line 1 is not the entry.list header {' '.join(ENTRY_LIST_HEADER)} "
                f"(tab-separated): {_show(head)}"
            )
    elif kind == "zip" or (kind == "any" and raw.startswith(b"PK\x03\x04")):
        try:
            zipfile.ZipFile(path).close()
        except (zipfile.BadZipFile, OSError) as exc:
            if sniff(raw) not in (None, "a zip archive"):
                raise _wrong_kind(raw, kind, served) from exc
            raise FormatError(
                f"it has no readable zip central directory ({exc}); a download cut short?"
            ) from exc
    elif kind == "tar":
        _check_tar(path, head, served)
    elif kind == "checkpoint":
        if not (zipfile.is_zipfile(path) or raw.startswith(b"\x80")):
            raise _wrong_kind(raw, kind, served)
    elif kind == "safetensors":
        size = int.from_bytes(raw[:8], "little") if len(raw) >= 8 else 0
        if not (0 < size <= 100 << 20 and raw[8:9] == b"{"):
            raise _wrong_kind(raw, kind, served)
    elif kind == "json":
        try:
            json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FormatError(f"it is not {KINDS[kind]} ({exc}): {_show(head)}") from exc
    elif kind == "text" and sniff(head) not in (None, "an XML document"):
        raise _wrong_kind(head, kind, served)


#: Kinds whose plain (not gzipped) form is text that ends with a newline.
TEXT_KINDS = frozenset({"fasta", "swissprot", "entry_list", "text"})
TAIL_BYTES = 4096


def _tail(path: Path) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - TAIL_BYTES))
        return fh.read()


def _show_end(tail: bytes) -> str:
    text = tail[-60:].decode("utf-8", "replace")
    return repr(("..." if len(tail) > 60 else "") + text)


def check_complete(path: str | os.PathLike[str], kind: str | None) -> None:
    """Raise :class:`FormatError` unless ``path`` ends where its format says a file ends.

    For a body that came without a Content-Length, the only sign it was not cut short:
    a gzip stream's end, a zip's central directory, a tar's last member, and for plain text
    a complete last line (Swiss-Prot: the closing ``//`` of the last entry). Binary data of
    no known container cannot be judged and passes; so does text when ``kind`` is None.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    if head.startswith(GZIP_MAGIC):
        _read_gzip(path, 0)
        return
    if head.startswith(b"PK\x03\x04") or kind == "zip":
        try:
            zipfile.ZipFile(path).close()
        except (zipfile.BadZipFile, OSError) as exc:
            raise FormatError(
                f"it has no readable zip central directory ({exc}); a download cut short?"
            ) from exc
        return
    if kind == "tar":
        try:
            with tarfile.open(path) as archive:
                archive.getmembers()
        except tarfile.TarError as exc:
            raise FormatError(f"its tar archive ends early ({exc}); a download cut short?") from exc
        return
    textual = kind in TEXT_KINDS or (kind == "any" and sniff(head) is None)
    if not textual:
        return
    tail = _tail(path)
    if not tail.endswith(b"\n"):
        raise FormatError(f"it ends mid-line: {_show_end(tail)} has no newline")
    if kind == "swissprot":
        last = tail.rstrip().rsplit(b"\n", 1)[-1].strip()
        if last != b"//":
            raise FormatError(
                f"its last Swiss-Prot entry has no closing '//' line (the file ends with "
                f"{_show_end(tail.rstrip())})"
            )


def _check_fasta(head: bytes, complete: bool, served: bool) -> None:
    text = head.lstrip()
    if not text.startswith(b">"):
        raise _wrong_kind(head, "fasta", served)
    header, _, rest = text.partition(b"\n")
    if not header[1:].strip():
        raise FormatError("its first FASTA record has an empty header line")
    rest = b"\n" + rest
    whole = b"\n>" in rest or complete  # the first record ends within the bytes read
    if whole and not rest.split(b"\n>", 1)[0].strip():
        name = header[1:].split(maxsplit=1)[0].decode("utf-8", "replace")
        raise FormatError(f"its first FASTA record ({name!r}) has no sequence")


def _check_swissprot(head: bytes, served: bool) -> None:
    if not head.lstrip().startswith(b"ID   "):
        raise _wrong_kind(head, "swissprot", served)
    end = head.find(b"\n//")
    if end < 0:
        raise FormatError(
            f"its first Swiss-Prot entry has no '//' terminator within {len(head):,} bytes"
        )
    from Bio import SwissProt

    text = head[: end + 4].decode("utf-8", "replace")
    try:
        SwissProt.read(io.StringIO(text))
    except Exception as exc:  # Biopython raises ValueError, AssertionError, its own types
        raise FormatError(f"its first Swiss-Prot entry does not parse ({exc})") from exc


def _check_tar(path: Path, head: bytes, served: bool) -> None:
    try:
        with tarfile.open(path) as archive:
            if archive.next() is None:
                raise FormatError("it is a tar archive without members")
    except tarfile.TarError as exc:
        if sniff(head) is not None or is_html(head):
            raise _wrong_kind(head, "tar", served) from exc
        raise FormatError(f"it is not a readable tar archive ({exc})") from exc
