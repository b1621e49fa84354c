"""Fixtures shared by the tests: where the repository and its demo data are, FASTA writing,
reading a whole activation shard, an SAE's dense latents."""

from __future__ import annotations

import functools
import gzip
import http.server
import importlib
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from protsae.activations import DTYPES, iter_shard, shard_info

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Fixtures that run the whole workflow or a real SLURM cluster: a test using one (directly or
#: through another fixture) is in the heavy tier, which `make test` leaves out (`make test-all`).
HEAVY_FIXTURES = frozenset({"finished", "slurm_cluster"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a heavy fixture ``heavy`` (whole-run tests that use none carry
    the marker themselves)."""
    for item in items:
        if HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.heavy)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch thread for the test: on tiny matrices more threads only contend (ten times
    slower on a busy 2-core machine); the previous count comes back after it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    """The bundled demo inputs (resources/demo)."""
    return REPO_ROOT / "resources" / "demo"


WriteFasta = Callable[..., Path]


@pytest.fixture
def write_fasta(tmp_path: Path) -> WriteFasta:
    """Write ``(header, sequence)`` records to ``tmp_path/name``; gzip it when ``gz`` is true."""

    def write(
        name: str, records: Iterable[tuple[str, str]], gz: bool = False, width: int = 60
    ) -> Path:
        lines = []
        for header, sequence in records:
            lines.append(f">{header}\n")
            lines.extend(f"{sequence[i : i + width]}\n" for i in range(0, len(sequence), width))
        data = "".join(lines).encode()
        path = tmp_path / name
        path.write_bytes(gzip.compress(data, compresslevel=1) if gz else data)
        return path

    return write


ReadShard = Callable[[Path], tuple[list[str], np.ndarray, np.ndarray]]


@pytest.fixture(scope="session")
def read_shard() -> ReadShard:
    """Read a whole (small) activation shard: ids, positions, vectors."""

    def read(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
        info = shard_info(path)
        ids: list[str] = []
        pos: list[np.ndarray] = []
        xs: list[np.ndarray] = []
        for batch in iter_shard(path):
            ids.extend(batch.ids.to_pylist())
            pos.append(batch.pos)
            xs.append(batch.x)
        if not xs:
            return ids, np.empty(0, np.int32), np.empty((0, info.d_model), DTYPES[info.dtype])
        return ids, np.concatenate(pos), np.concatenate(xs)

    return read


class HeadlessChromium:
    """Debian's ``chromium`` run headless on a file:// page: the DOM after its scripts ran,
    a screenshot, and the network requests the page itself started (from a net log)."""

    QUIET = (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
    )

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.runs = 0

    def _run(self, url: str, *flags: str) -> str:
        import subprocess

        self.runs += 1
        profile = self.workdir / f"profile-{self.runs}"
        done = subprocess.run(
            [
                self.binary,
                *self.QUIET,
                f"--user-data-dir={profile}",
                "--virtual-time-budget=10000",
                *flags,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
        if done.returncode != 0:
            raise AssertionError(f"chromium failed on {url}: {done.stderr[-2000:]}")
        return done.stdout

    # WebGL in software (the 3D viewer): SwiftShader, allowed explicitly
    WEBGL = ("--use-angle=swiftshader", "--enable-unsafe-swiftshader")

    def dom(self, url: str, webgl: bool = False) -> str:
        """The serialized DOM of ``url`` once its scripts have run."""
        return self._run(url, "--dump-dom", *(self.WEBGL if webgl else ()))

    def screenshot(
        self, url: str, path: Path, size: str = "1280,1400", webgl: bool = False
    ) -> Path:
        self._run(
            url, f"--screenshot={path}", f"--window-size={size}", *(self.WEBGL if webgl else ())
        )
        assert path.stat().st_size > 0
        return path

    def page_requests(self, url: str, webgl: bool = False) -> list[str]:
        """http(s) URLs the page asked for (Chromium's own update checks are not the page's:
        they carry no file:// network isolation key)."""
        import json

        log = self.workdir / f"netlog-{self.runs + 1}.json"
        self._run(url, f"--log-net-log={log}", "--dump-dom", *(self.WEBGL if webgl else ()))
        events = json.loads(log.read_text())["events"]
        return sorted(
            {
                e["params"]["url"]
                for e in events
                if str(e.get("params", {}).get("url", "")).startswith(("http:", "https:"))
                and "file://" in str(e["params"].get("network_isolation_key", ""))
            }
        )


@pytest.fixture(scope="session")
def chromium(tmp_path_factory) -> HeadlessChromium:
    """Headless Chromium (Debian package ``chromium``); tests using it skip without it."""
    import shutil

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        reason = "chromium not installed (apt-get install -y chromium; make setup does it as root)"
        if os.environ.get("PROTSAE_REQUIRE_OPTIONAL"):
            pytest.fail(reason)
        pytest.skip(reason)
    return HeadlessChromium(binary, tmp_path_factory.mktemp("chromium"))


@pytest.fixture(scope="session")
def optional_module() -> Callable[[str], object]:
    """Import a test-only dependency of the dev extra (sae-lens, polars).

    Skips when it is missing, except under ``PROTSAE_REQUIRE_OPTIONAL=1`` (``make test`` sets
    it), where a missing package fails the test: the checks must run on every full test run.
    """

    def load(name: str) -> object:
        if os.environ.get("PROTSAE_REQUIRE_OPTIONAL"):
            return importlib.import_module(name)
        return pytest.importorskip(
            name,
            reason=f"{name} is not installed (it is in the dev extra: pip install -e '.[dev]')",
        )

    return load


@pytest.fixture(scope="session")
def dense_latents() -> Callable[[object, torch.Tensor], torch.Tensor]:
    """``[N, width]`` latents of an SAE (zeros outside the top k): the dense view other SAE
    libraries return, for comparing with them."""

    def dense(sae, x: torch.Tensor) -> torch.Tensor:
        top = sae.encode(x)
        out = torch.zeros(x.shape[0], sae.cfg.width, dtype=top.values.dtype, device=x.device)
        return out.scatter_(1, top.indices, top.values)

    return dense


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Path]]:
    """A server on 127.0.0.1 laid out like the Hugging Face hub (``/<owner>/<name>/resolve/
    <revision>/<file>``), with ``HF_ENDPOINT`` pointing at it (subprocesses inherit it).
    ``publish(repo, folder, files)`` copies ``files`` of ``folder`` there; returns the repo folder."""
    root = tmp_path / "hub"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")

    def publish(repo: str, folder: Path, files: Iterable[str], revision: str = "main") -> Path:
        target = root / repo / "resolve" / revision
        target.mkdir(parents=True, exist_ok=True)
        for file in files:
            shutil.copy(folder / file, target / file)
        return target

    yield publish
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def helix_structure() -> Callable[..., object]:
    """``make(sequence, chain_id="A", first=1)``: a Biopython structure of the sequence as an
    ideal-ish alpha helix (backbone atoms N, CA, C, O), for structure files tests write."""
    return _helix_structure


def _helix_structure(sequence: str, chain_id: str = "A", first: int = 1):
    """A Biopython structure: an ideal-ish alpha helix with backbone atoms N, CA, C, O."""
    import math

    import numpy as np
    from Bio.PDB.StructureBuilder import StructureBuilder
    from Bio.SeqUtils import seq3

    builder = StructureBuilder()
    builder.init_structure("planted")
    builder.init_model(0)
    builder.init_chain(chain_id)
    builder.init_seg("    ")
    for i, letter in enumerate(sequence):
        builder.init_residue(seq3(letter).upper(), " ", first + i, " ")
        angle = math.radians(100 * i)
        for name, radius, turn, rise in (
            ("N", 1.55, -28, -0.9),
            ("CA", 2.3, 0, 0.0),
            ("C", 1.6, 28, 0.9),
            ("O", 1.8, 32, 2.1),
        ):
            a = angle + math.radians(turn)
            xyz = np.array([1.5 * i + rise, radius * math.cos(a), radius * math.sin(a)])
            builder.init_atom(name, xyz, 0.0, 1.0, " ", f" {name:<3}", element=name[0])
    return builder.get_structure()
