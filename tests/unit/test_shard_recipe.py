"""The "Reading the activation shards without protsae" recipe in docs/design.md, run as written:
each of its code blocks must give exactly the array protsae's own reader
(``protsae.activations.iter_shard``, through the ``read_shard`` fixture) gives."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from protsae.activations import ShardWriter

DESIGN = Path(__file__).resolve().parents[2] / "docs" / "design.md"
SECTION = "## Reading the activation shards without protsae"


def recipe_blocks() -> list[str]:
    text = DESIGN.read_text()
    assert SECTION in text, f"{DESIGN} lost its section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_recipe_blocks_read_the_same_vectors_as_protsae(
    tmp_path: Path,
    dtype: str,
    optional_module: Callable[[str], object],
    read_shard: Callable[[Path], tuple],
) -> None:
    optional_module("polars")
    rng = np.random.default_rng(0)
    path = tmp_path / "shard-000.parquet"
    # Several row groups, as real shards have.
    with ShardWriter(path, 24, dtype, "esm2_t6_8M_UR50D", 3, row_group_rows=7) as writer:
        for i in range(6):
            n = 3 + 2 * i
            writer.add(f"seq{i}", np.arange(n, dtype=np.int32), rng.normal(size=(n, 24)))
    _, _, expected = read_shard(path)
    blocks = recipe_blocks()
    assert len(blocks) == 2
    namespace: dict[str, object] = {"path": str(path)}
    for block in blocks:  # the second block reuses `meta` from the first, as a reader would
        namespace.pop("x", None)
        exec(compile(block, str(DESIGN), "exec"), namespace)
        x = np.asarray(namespace["x"])
        assert x.dtype == expected.dtype and x.shape == expected.shape == (48, 24)
        assert np.array_equal(x, expected)
