"""The download store: published checksums, the content key, reuse vs fetching again."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from protsae.config import ConfigError
from protsae.sources import ChecksumError, DownloadError
from protsae.store import (
    content_key,
    file_digests,
    materialise,
    published_md5,
    sources_named,
)

ROOT = Path(__file__).resolve().parents[2]
ENTRY_LIST = (ROOT / "resources/demo/entry.list").read_bytes()
MD5 = hashlib.md5(ENTRY_LIST).hexdigest()
METALINK = f"""<?xml version="1.0" encoding="UTF-8"?>
<metalink xmlns="http://www.metalinker.org/" version="3.0">
  <files>
    <file name="other.fasta.gz"><verification><hash type="md5">{"1" * 32}</hash></verification></file>
    <file name="entry.list">
      <size>{len(ENTRY_LIST)}</size>
      <verification><hash type="sha1">{"2" * 40}</hash><hash type="md5">{MD5}</hash></verification>
    </file>
  </files>
</metalink>
"""


def test_published_md5_formats() -> None:
    assert published_md5(METALINK, "entry.list", "x") == MD5
    assert published_md5(f"{'1' * 32}  a.gz\n{MD5} *entry.list\n", "entry.list", "x") == MD5
    assert published_md5(MD5.upper() + "\n", "entry.list", "x") == MD5
    with pytest.raises(DownloadError, match="sources.x: md5_url u: the metalink has no md5"):
        published_md5(METALINK, "missing.gz", "sources.x: md5_url u")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files = {"/entry.list": ENTRY_LIST, "/RELEASE.metalink": METALINK.encode()}
        self.gets: list[str] = []

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.gets.append(self.path)
        body = self.server.files[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _entry(url: str, **sums: str) -> dict[str, str]:
    return {"url": url, "label": "sources.interpro_entries", "kind": "entry_list", **sums}


def test_md5_url_verifies_and_changing_sums_refetches_only_on_mismatch(
    server: _Server, tmp_path: Path
) -> None:
    downloads = tmp_path / "downloads"
    entry = _entry(server.url("entry.list"), md5_url=server.url("RELEASE.metalink"))
    name = "interpro_entries-0123abcd"
    key = content_key(entry, name, downloads)
    assert key == entry["url"]  # nothing stored yet
    materialise(entry, downloads / name, downloads / f"{name}.json", key)
    assert (downloads / name).read_bytes() == ENTRY_LIST and (downloads / name).is_symlink()
    assert server.gets == ["/RELEASE.metalink", "/entry.list"]
    assert content_key(entry, name, downloads) == key  # stable once fetched

    with_sum = {**entry, "sha256": hashlib.sha256(ENTRY_LIST).hexdigest()}
    assert content_key(with_sum, name, downloads) == key  # a checksum it has: no rerun
    wrong = {**entry, "md5": "0" * 32}
    new_key = content_key(wrong, name, downloads)
    assert new_key != key and "0" * 32 in new_key
    server.files["/RELEASE.metalink"] = METALINK.replace(MD5, "3" * 32).encode()
    with pytest.raises(DownloadError, match="sources.interpro_entries: .*checksum mismatch"):
        materialise(entry, downloads / name, downloads / f"{name}.json", "k2")
    assert not (downloads / "store" / name).exists(), "a mismatching download is not kept"


def test_local_source_key_follows_bytes_not_mtime(tmp_path: Path) -> None:
    source = tmp_path / "entry.list"
    source.write_bytes(ENTRY_LIST)
    downloads = tmp_path / "downloads"
    entry = _entry(str(source))
    key = content_key(entry, "e", downloads)
    source.touch()
    assert content_key(entry, "e", downloads) == key
    assert file_digests(source, downloads)["md5"] == MD5
    source.write_bytes(ENTRY_LIST + b"IPR999999\tFamily\tnew\n")
    assert content_key(entry, "e", downloads) != key
    with pytest.raises(ConfigError, match=f"sources.interpro_entries: {source}: .*md5 expected"):
        content_key({**entry, "md5": MD5}, "e", downloads)
    with pytest.raises(ChecksumError):
        materialise({**entry, "md5": MD5}, downloads / "e", downloads / "e.json", key)
    source.write_bytes(b"<html><body>gone</body></html>")
    with pytest.raises(DownloadError, match="the file is an HTML page"):
        materialise(entry, downloads / "e", downloads / "e.json", key)


def test_local_source_of_the_wrong_kind_stops_the_dag(tmp_path: Path) -> None:
    source = tmp_path / "uniprot_sprot.dat"
    source.write_bytes(b"")
    entry = {"url": str(source), "label": "sources.swissprot", "kind": "swissprot"}
    with pytest.raises(ConfigError, match=f"sources.swissprot: {source}: it is empty"):
        content_key(entry, "s", tmp_path / "downloads")
    source.write_bytes((ROOT / "resources/demo/uniprot_sprot.dat").read_bytes())
    assert content_key(entry, "s", tmp_path / "downloads").startswith("sha256:")


def test_sequence_errors_name_the_users_source(tmp_path: Path) -> None:
    """A FASTA error inside the job names sources.uniref50 and the user's path, with the
    hashed cached copy in parentheses, and still the record."""
    from protsae.sequences import InputError, sample_uniref50

    source = tmp_path / "my_uniref50.fasta"
    source.write_bytes(b">UniRef50_A\nMKV\n>UniRef50_B\n\n>UniRef50_C\nMKV\n")
    downloads = tmp_path / "downloads"
    entry = {"url": str(source), "label": "sources.uniref50", "kind": "fasta"}
    link, record = downloads / "uniref50-877de622", downloads / "uniref50-877de622.json"
    materialise(entry, link, record, "k")
    with pytest.raises(InputError) as info, sources_named({str(link): str(record)}):
        sample_uniref50(str(link), 10, 100, 0)
    assert str(info.value) == (
        f"sources.uniref50: {source} (cached copy {link}): record #2 ('UniRef50_B') "
        "has an empty sequence"
    )
