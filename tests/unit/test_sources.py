"""Downloads against a programmable HTTP server on 127.0.0.1: retries, resume, checksums."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from protsae.sources import ChecksumError, DownloadError, Retry, fetch, partial_path

ROOT = Path(__file__).resolve().parents[2]
BODY = random.Random(0).randbytes(300_000)
ETAG = '"v1"'


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.body = BODY
        self.etag = ETAG
        self.plan: list[str] = []  # behaviour of the next requests; "ok" once it runs out
        self.requests: list[dict[str, object]] = []
        self.watch: Path | None = None  # a destination that must not exist while downloading
        self.cut: int | None = None  # where "nolength_cut" hangs up (default: a third in)
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/file.bin"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        srv = self.server
        with srv.lock:
            behaviour = srv.plan.pop(0) if srv.plan else "ok"
            srv.requests.append(
                {
                    "range": self.headers.get("Range"),
                    "if_range": self.headers.get("If-Range"),
                    "dest_exists": srv.watch is not None and srv.watch.exists(),
                }
            )
        if behaviour.isdigit():
            self.send_response(int(behaviour))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if behaviour == "stall":
            time.sleep(1.0)
        if behaviour == "html":  # an error page served with status 200, as some mirrors do
            page = b"<!DOCTYPE html>\n<html><head><title>Maintenance</title></head></html>\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        if behaviour.startswith("nolength"):  # no Content-Length: the body ends when we hang up
            self.send_response(200)
            self.end_headers()
            third = len(srv.body) // 3 if srv.cut is None else srv.cut
            cut = third if behaviour == "nolength_cut" else len(srv.body)
            self.wfile.write(srv.body[:cut])
            return
        body, start = srv.body, 0
        wanted = self.headers.get("Range")
        honour = behaviour != "ignore_range" and self.headers.get("If-Range") in (None, srv.etag)
        if wanted and honour:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("ETag", srv.etag)
        self.end_headers()
        if behaviour == "cut":  # promise everything, send a third, hang up
            payload = payload[: len(payload) // 3]
        self.wfile.write(payload)
        self.wfile.flush()


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _fetch(server: _Server, dest: Path, **kwargs: object) -> Path:
    server.watch = dest
    policy = {"backoff": 0.0, "timeout": 5.0}
    policy |= {key: kwargs.pop(key) for key in ("retries", "timeout", "backoff") if key in kwargs}
    return fetch(server.url, dest, retry=Retry(**policy), **kwargs)


def _leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.parent.iterdir())


def test_plain_download_with_both_checksums(server: _Server, tmp_path: Path) -> None:
    dest = tmp_path / "out" / "file.bin"
    result = _fetch(
        server,
        dest,
        md5=hashlib.md5(BODY).hexdigest(),
        sha256=hashlib.sha256(BODY).hexdigest().upper(),
    )
    assert result == dest
    assert dest.read_bytes() == BODY
    assert _leftovers(dest) == ["file.bin"]
    assert len(server.requests) == 1 and server.requests[0]["range"] is None


@pytest.mark.parametrize("status", ["500", "503", "429", "408"])
def test_transient_status_is_retried(server: _Server, tmp_path: Path, status: str) -> None:
    server.plan = [status]
    dest = tmp_path / "file.bin"
    _fetch(server, dest)
    assert dest.read_bytes() == BODY
    assert len(server.requests) == 2


def test_cut_connection_resumes_with_range(server: _Server, tmp_path: Path) -> None:
    server.plan = ["cut"]
    dest = tmp_path / "file.bin"
    _fetch(server, dest, sha256=hashlib.sha256(BODY).hexdigest())
    assert dest.read_bytes() == BODY
    first, second = server.requests
    assert first["range"] is None
    assert second["range"] == f"bytes={len(BODY) // 3}-"
    assert second["if_range"] == ETAG
    assert not any(r["dest_exists"] for r in server.requests), "partial bytes under final name"
    assert _leftovers(dest) == ["file.bin"]


def test_server_ignoring_range_restarts_from_zero(server: _Server, tmp_path: Path) -> None:
    server.plan = ["cut", "ignore_range"]
    dest = tmp_path / "file.bin"
    _fetch(server, dest)
    assert server.requests[1]["range"] is not None
    assert dest.read_bytes() == BODY  # not the first third followed by the whole file


def test_changed_file_on_server_is_fetched_whole(server: _Server, tmp_path: Path) -> None:
    server.plan = ["cut"]
    dest = tmp_path / "file.bin"
    with pytest.raises(DownloadError, match="kept"):
        _fetch(server, dest, retries=0)
    assert partial_path(dest).stat().st_size == len(BODY) // 3
    server.body, server.etag = BODY[::-1], '"v2"'  # a new release replaces the file
    _fetch(server, dest)
    assert server.requests[1]["if_range"] == ETAG
    assert dest.read_bytes() == BODY[::-1]


def test_complete_partial_gets_416_and_is_kept(server: _Server, tmp_path: Path) -> None:
    dest = tmp_path / "file.bin"
    partial_path(dest).write_bytes(BODY)
    Path(str(partial_path(dest)) + ".json").write_text(json.dumps({"url": server.url}))
    _fetch(server, dest, md5=hashlib.md5(BODY).hexdigest())
    assert server.requests[0]["range"] == f"bytes={len(BODY)}-"
    assert dest.read_bytes() == BODY


def test_partial_from_another_url_is_discarded(server: _Server, tmp_path: Path) -> None:
    dest = tmp_path / "file.bin"
    partial_path(dest).write_bytes(b"bytes of some other file")
    Path(str(partial_path(dest)) + ".json").write_text(json.dumps({"url": "http://elsewhere/x"}))
    _fetch(server, dest)
    assert server.requests[0]["range"] is None
    assert dest.read_bytes() == BODY


@pytest.mark.parametrize("status", ["404", "403", "410"])
def test_client_error_fails_at_once_and_leaves_nothing(
    server: _Server, tmp_path: Path, status: str
) -> None:
    server.plan = [status]
    dest = tmp_path / "file.bin"
    with pytest.raises(DownloadError, match=f"HTTP {status}") as info:
        _fetch(server, dest)
    assert server.url in str(info.value)
    assert len(server.requests) == 1
    assert _leftovers(dest) == []


def test_retries_exhausted_keeps_partial_for_next_run(server: _Server, tmp_path: Path) -> None:
    server.plan = ["cut", "500", "500"]
    dest = tmp_path / "file.bin"
    with pytest.raises(DownloadError, match="after 3 attempts"):
        _fetch(server, dest, retries=2)
    assert not dest.exists()
    assert partial_path(dest).stat().st_size == len(BODY) // 3
    _fetch(server, dest)  # the next run picks up where the last one stopped
    assert server.requests[-1]["range"] == f"bytes={len(BODY) // 3}-"
    assert dest.read_bytes() == BODY


@pytest.mark.parametrize("scheme", ["http", "ftp"])
def test_refused_connection_is_retried_then_reported(tmp_path: Path, scheme: str) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dest = tmp_path / "file.bin"
    with pytest.raises(DownloadError, match="failed after 3 attempts") as info:
        fetch(
            f"{scheme}://127.0.0.1:{port}/file.bin",
            dest,
            retry=Retry(retries=2, timeout=2, backoff=0),
        )
    assert "refused" in str(info.value).lower()
    assert "Nothing was received" in str(info.value)
    assert "kept" not in str(info.value)  # there is no partial file to speak of
    assert not dest.exists() and not partial_path(dest).exists()


def test_timeout_is_retried(server: _Server, tmp_path: Path) -> None:
    server.plan = ["stall"]
    dest = tmp_path / "file.bin"
    _fetch(server, dest, timeout=0.3)
    assert dest.read_bytes() == BODY
    assert len(server.requests) == 2


def test_checksum_mismatch_removes_file_and_names_both_sums(
    server: _Server, tmp_path: Path
) -> None:
    dest = tmp_path / "file.bin"
    wrong = "0" * 32
    with pytest.raises(ChecksumError) as info:
        _fetch(server, dest, md5=wrong)
    message = str(info.value)
    assert server.url in message
    assert wrong in message and hashlib.md5(BODY).hexdigest() in message
    assert _leftovers(dest) == []


def test_local_path_and_file_url(tmp_path: Path) -> None:
    source = tmp_path / "source.dat"
    source.write_bytes(BODY)
    by_path = fetch(str(source), tmp_path / "a" / "copy1", sha256=hashlib.sha256(BODY).hexdigest())
    by_url = fetch(source.as_uri(), tmp_path / "b" / "copy2", md5=hashlib.md5(BODY).hexdigest())
    assert by_path.read_bytes() == BODY and by_url.read_bytes() == BODY
    assert _leftovers(by_path) == ["copy1"] and _leftovers(by_url) == ["copy2"]


def test_local_checksum_mismatch_and_missing_file(tmp_path: Path) -> None:
    source = tmp_path / "source.dat"
    source.write_bytes(BODY)
    dest = tmp_path / "out" / "copy"
    with pytest.raises(ChecksumError, match=hashlib.sha256(BODY).hexdigest()):
        fetch(str(source), dest, sha256="f" * 64)
    with pytest.raises(DownloadError, match="no such file"):
        fetch(str(tmp_path / "missing.dat"), dest)
    assert _leftovers(dest) == []


def test_unsupported_scheme(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="unsupported URL scheme 'gopher'"):
        fetch("gopher://example.org/x", tmp_path / "x")


FASTA_GZ = gzip.compress(
    b"".join(b">UniRef50_%d n=1\nMKTAYIAKQRQISFVKSHFSRQ\n" % i for i in range(4000))
)


def test_html_page_served_with_200_is_refused_at_once(server: _Server, tmp_path: Path) -> None:
    server.plan = ["html"]
    dest = tmp_path / "uniref50-877de622"
    with pytest.raises(DownloadError) as info:
        _fetch(server, dest, kind="fasta", label="sources.uniref50")
    message = str(info.value)
    assert message.startswith(f"sources.uniref50: {server.url} (cached copy {dest})")
    assert "the server returned an HTML page" in message
    assert len(server.requests) == 1  # a whole page of the announced length: not retried
    assert _leftovers(dest) == []


def test_cut_body_without_content_length_is_fetched_again(server: _Server, tmp_path: Path) -> None:
    server.body = FASTA_GZ
    server.plan = ["nolength_cut", "nolength"]
    dest = tmp_path / "uniref50.fasta.gz"
    _fetch(server, dest, kind="fasta")
    assert dest.read_bytes() == FASTA_GZ
    assert [r["range"] for r in server.requests] == [None, None]  # the cut body was dropped
    assert _leftovers(dest) == ["uniref50.fasta.gz"]


def test_body_always_cut_without_content_length_is_never_kept(
    server: _Server, tmp_path: Path
) -> None:
    server.body = FASTA_GZ
    server.plan = ["nolength_cut"] * 3
    dest = tmp_path / "uniref50.fasta.gz"
    with pytest.raises(DownloadError, match="failed after 3 attempts") as info:
        _fetch(server, dest, kind="fasta", retries=2, label="sources.uniref50")
    message = str(info.value)
    cut = len(FASTA_GZ) // 3
    assert message.startswith(f"sources.uniref50: {server.url} (cached copy {dest}): ")
    assert f"the body ({cut:,} bytes, no Content-Length) was cut short or is damaged: " in message
    assert "gzip stream is incomplete" in message
    # What was received is said, not "Nothing was received".
    assert message.endswith(
        f"3 incomplete bodies received ({cut:,}, {cut:,}, {cut:,} bytes) and thrown away; "
        "nothing kept."
    )
    assert _leftovers(dest) == []


def test_without_a_kind_a_cut_gzip_body_is_still_refused(server: _Server, tmp_path: Path) -> None:
    """A gzip stream or zip archive carries its own end: no kind is needed to see the cut."""
    server.body = FASTA_GZ
    server.plan = ["nolength_cut", "nolength"]
    dest = tmp_path / "uniref50.fasta.gz"
    _fetch(server, dest)
    assert dest.read_bytes() == FASTA_GZ
    assert [r["range"] for r in server.requests] == [None, None]


SWISSPROT_DAT = (ROOT / "resources/demo/uniprot_sprot.dat").read_bytes()


def _line_end_inside_an_entry(text: bytes) -> int:
    """An offset just after a newline, in the middle of an entry (not after a '//')."""
    middle = len(text) // 2
    start = text.index(b"\nSQ   ", middle)
    return text.index(b"\n", start + 1) + 1


def test_plain_swissprot_cut_at_a_line_end_is_never_kept(server: _Server, tmp_path: Path) -> None:
    """The re-trial's case: a plain .dat served without Content-Length, cut mid-body. Its first
    entry parses and its last line is whole, but the closing '//' is missing."""
    server.body = SWISSPROT_DAT
    server.cut = _line_end_inside_an_entry(SWISSPROT_DAT)
    server.plan = ["nolength_cut"] * 2
    dest = tmp_path / "store" / "swissprot-5d6e1f2a"
    with pytest.raises(DownloadError) as info:
        _fetch(server, dest, kind="swissprot", retries=1, label="sources.swissprot")
    tail = SWISSPROT_DAT[: server.cut].rstrip()[-60:].decode()
    assert str(info.value) == (
        f"sources.swissprot: {server.url} (cached copy {dest}): failed after 2 attempts; "
        f"last error: the body ({server.cut:,} bytes, no Content-Length) was cut short or is "
        "damaged: its last Swiss-Prot entry has no closing '//' line (the file ends with "
        f"{'...' + tail!r}). 2 incomplete bodies received ({server.cut:,}, {server.cut:,} "
        "bytes) and thrown away; nothing kept."
    )
    assert not dest.parent.exists() or _leftovers(dest) == []
    server.plan = ["nolength"]  # the whole file, still without a length: kept
    _fetch(server, dest, kind="swissprot", label="sources.swissprot")
    assert dest.read_bytes() == SWISSPROT_DAT


@pytest.mark.parametrize("kind", ["fasta", "any"])
def test_plain_text_cut_mid_line_is_fetched_again(
    server: _Server, tmp_path: Path, kind: str
) -> None:
    """FASTA (uniref50) and CSV (a probe source, kind 'any'): the last line must be whole."""
    body = (
        gzip.decompress(FASTA_GZ)
        if kind == "fasta"
        else b"".join(b"MKV%dLL,%d.5,train,False\n" % (i, i) for i in range(5000))
    )
    server.body = body
    server.plan = ["nolength_cut", "nolength"]
    dest = tmp_path / "source"
    _fetch(server, dest, kind=kind)
    assert dest.read_bytes() == body
    assert len(server.requests) == 2
    server.plan, server.requests = ["nolength_cut"], []
    dest.unlink()
    with pytest.raises(DownloadError, match="it ends mid-line: '.*' has no newline") as info:
        _fetch(server, dest, kind=kind, retries=0)
    assert str(info.value).endswith(
        f"1 incomplete body received ({len(body) // 3:,} bytes) and thrown away; nothing kept."
    )
    assert _leftovers(dest) == []


def test_zip_without_content_length_needs_its_central_directory(
    server: _Server, tmp_path: Path
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("splits/mixed_split.csv", BODY.hex())
    server.body = buffer.getvalue()
    server.plan = ["nolength_cut", "nolength_cut"]
    dest = tmp_path / "thermostability-0a1b2c3d"
    with pytest.raises(DownloadError, match="no readable zip central directory") as info:
        _fetch(server, dest, kind="any", retries=1, label="sources.thermostability")
    assert str(info.value).startswith(f"sources.thermostability: {server.url} (cached copy {dest})")
    assert _leftovers(dest) == []


def test_local_html_file_is_reported_as_such(tmp_path: Path) -> None:
    source = tmp_path / "uniprot_sprot.dat"
    source.write_text("<html><body>Not Found</body></html>\n")
    dest = tmp_path / "out" / "swissprot-1234abcd"
    with pytest.raises(DownloadError) as info:
        fetch(str(source), dest, kind="swissprot", label="sources.swissprot")
    message = str(info.value)
    assert message.startswith(f"sources.swissprot: {source} (cached copy {dest})")
    assert "the file is an HTML page, not a Swiss-Prot flat file" in message
    assert _leftovers(dest) == []
