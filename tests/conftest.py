"""Fixtures shared by the tests: where the repository and its demo data are, FASTA writing,
reading a whole activation shard, an SAE's dense latents."""

from __future__ import annotations

import gzip
import importlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest
import torch

from protsae.activations import DTYPES, iter_shard, shard_info

REPO_ROOT = Path(__file__).resolve().parents[1]


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
