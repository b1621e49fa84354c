"""What a change to a source reruns, asserted on Snakemake's own plan (`--summary`).

A local Swiss-Prot file over Snakemake's 1 MB checksum limit (so Snakemake cannot tell a
touch from an edit by itself) and an entry.list fetched from a server on 127.0.0.1 feed
`parse_swissprot`. Touching the local file, or adding checksums the files already have,
must plan nothing; editing it, or a checksum the fetched copy lacks, reruns the download
and what reads it, with no ProtectedOutputException and no copy of the local file.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from workflow_runs import copy_workflow, pending_files, snakemake  # noqa: E402

pytestmark = [pytest.mark.workflow, pytest.mark.slow, pytest.mark.heavy]  # whole runs

ROOT = Path(__file__).resolve().parents[2]
TARGET = "results/src/sequences/swissprot.parquet"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, body: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.body = body
        self.gets = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/entry.list"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.gets += 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server((ROOT / "resources/demo/entry.list").read_bytes())
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _config(workdir: Path, sources: dict) -> str:
    config = yaml.safe_load((workdir / "config/demo.yaml").read_text())
    config["results"] = "results/src"
    config["sources"].update(sources)
    path = workdir / "config" / "sources.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path.relative_to(workdir))


def _stored(downloads: Path) -> list[Path]:
    return [p for p in (downloads / "store").iterdir() if p.suffix != ".json"]


def _plan(workdir: Path, config: str) -> set[str]:
    return set(pending_files(workdir, TARGET, "--configfile", config).values())


def test_touch_edit_and_checksums_of_sources(tmp_path: Path, server: _Server) -> None:
    workdir = copy_workflow(tmp_path / "repo")
    big = workdir / "resources" / "big_sprot.dat"
    entries = (ROOT / "resources/demo/uniprot_sprot.dat").read_bytes().split(b"//\n")[:-1]
    big.write_bytes(b"".join(e + b"//\n" for e in entries * 12))
    assert big.stat().st_size > 1_000_000  # beyond Snakemake's own checksum limit
    local = {"url": "resources/big_sprot.dat"}
    remote = {"url": server.url}
    config = _config(workdir, {"swissprot": local, "interpro_entries": remote})
    snakemake(workdir, TARGET, "--cores", "1", "--configfile", config)
    downloads = workdir / "resources" / "downloads"
    links = [p for p in downloads.iterdir() if not p.name.endswith(".json") and p.is_symlink()]
    assert len(links) == 2, "each source is a link, the local one is not copied"
    stored = _stored(downloads)
    assert [p.read_bytes() for p in stored] == [server.body]
    assert not os.access(stored[0], os.W_OK) or os.geteuid() == 0
    assert stored[0].stat().st_mode & 0o222 == 0, "the fetched copy is write-protected"
    assert server.gets == 1

    # touch: same bytes, newer mtime -> nothing to do
    stamp = big.stat().st_mtime + 120
    os.utime(big, (stamp, stamp))
    assert _plan(workdir, config) == set()

    # checksums the files already have -> nothing to do, nothing fetched
    local["md5"] = hashlib.md5(big.read_bytes()).hexdigest()
    remote["sha256"] = hashlib.sha256(server.body).hexdigest()
    config = _config(workdir, {"swissprot": local, "interpro_entries": remote})
    assert _plan(workdir, config) == set()
    snakemake(workdir, TARGET, "--cores", "1", "--configfile", config)
    assert server.gets == 1

    # a checksum the local file does not have stops the run before any job, naming it
    config = _config(workdir, {"swissprot": {**local, "md5": "0" * 32}, "interpro_entries": remote})
    done = snakemake(workdir, TARGET, "--cores", "1", "--configfile", config, check=False)
    assert done.returncode != 0
    assert "sources.swissprot" in done.stderr and "resources/big_sprot.dat" in done.stderr
    assert "0" * 32 in done.stderr

    # the server's file changed and the config names the new checksum -> fetched again
    server.body += b"IPR999999\tFamily\tA family added by the new release\n"
    remote["sha256"] = hashlib.sha256(server.body).hexdigest()
    config = _config(workdir, {"swissprot": local, "interpro_entries": remote})
    assert _plan(workdir, config) == {"download", "parse_swissprot"}
    snakemake(workdir, TARGET, "--cores", "1", "--configfile", config)
    assert server.gets == 2
    assert [p.read_bytes() for p in _stored(downloads)] == [server.body]
    assert _plan(workdir, config) == set()

    # editing the local file reruns its download (a new link and record) and its reader
    big.write_bytes(b"".join(e + b"//\n" for e in entries * 11))
    del local["md5"]
    config = _config(workdir, {"swissprot": local, "interpro_entries": remote})
    assert _plan(workdir, config) == {"download", "parse_swissprot"}
    snakemake(workdir, TARGET, "--cores", "1", "--configfile", config)
    assert _plan(workdir, config) == set()
    assert server.gets == 2
