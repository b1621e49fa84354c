"""Atomic outputs: complete under the final name, or absent; readable as the umask allows."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from protsae.io import atomic_path, write_json, write_parquet


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "table.parquet"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("job killed")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "t.json"
    write_json({"v": 1}, target)
    with pytest.raises(ValueError), atomic_path(target) as tmp:
        tmp.write_text("{")
        raise ValueError
    assert target.read_text().strip().endswith("}")


def test_parquet_round_trip_and_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        target = tmp_path / "t.parquet"
        write_parquet(pa.table({"a": [1, 2]}), target)
    finally:
        os.umask(old)
    assert pq.read_table(target).column("a").to_pylist() == [1, 2]
    assert target.stat().st_mode & 0o777 == 0o644


def test_shard_writer_failing_final_flush_leaves_no_file(tmp_path, monkeypatch):
    import numpy as np

    from protsae.activations import ShardWriter

    target = tmp_path / "shard-000.parquet"
    writer = ShardWriter(target, d_model=4, dtype="float32", row_group_rows=1000)

    def broken_flush():
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), writer:
        writer.add("P1", np.arange(3), np.zeros((3, 4), np.float32))
        monkeypatch.setattr(writer, "_flush", broken_flush)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
