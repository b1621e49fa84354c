"""Atomic outputs: complete under the final name, or absent; readable as the umask allows."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from protsae.activations import ShardWriter
from protsae.io import (
    LockHeld,
    NoSpaceError,
    atomic_dir,
    atomic_path,
    exclusive_lock,
    remove_stale_parts,
    write_json,
    write_parquet,
)


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


# ---- one writer per output -----------------------------------------------------------

WRITER = """
import sys, time
from pathlib import Path
from protsae.io import atomic_path, claim_outputs, exclusive_lock
out, mode = Path(sys.argv[1]), sys.argv[2]
if mode == "lock":
    with exclusive_lock(out):
        print("ready", flush=True)
        time.sleep(600)
if mode == "claim":
    claim_outputs(out)
with atomic_path(out) as tmp:
    tmp.write_bytes(b"x" * 100_000)
    print("ready", flush=True)
    time.sleep(600)
"""


def _writer(tmp_path, out, mode):
    import subprocess
    import sys

    import protsae

    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": str(Path(protsae.__file__).parents[1])}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out), mode], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _parts(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_second_writer_fails_at_once_naming_the_holder(tmp_path):
    out = tmp_path / "sae" / "checkpoint"
    holder = _writer(tmp_path, out, "lock")
    try:
        with pytest.raises(LockHeld, match=f"pid {holder.pid} on "), exclusive_lock(out):
            pass
    finally:
        holder.kill()  # SIGKILL: the kernel drops the lock with the process
        holder.wait()
    with exclusive_lock(out) as lock:
        assert lock == out.with_name(".checkpoint.lock")


def test_sigterm_removes_the_temporary_file_of_a_claimed_output(tmp_path):
    out = tmp_path / "shard-000.parquet"
    unclaimed = _writer(tmp_path, out, "plain")
    unclaimed.terminate()
    unclaimed.wait()
    assert len(_parts(tmp_path)) == 1, "the default SIGTERM leaves the temporary file"

    claimed = _writer(tmp_path, tmp_path / "shard-001.parquet", "claim")
    assert len(_parts(tmp_path)) == 2
    claimed.terminate()
    assert claimed.wait() == 128 + signal.SIGTERM
    assert len(_parts(tmp_path)) == 1  # its own is gone
    assert not (tmp_path / "shard-001.parquet").exists()


def test_claim_removes_stale_temporary_files_of_its_outputs_only(tmp_path):
    out = tmp_path / "shard-000.parquet"
    (tmp_path / ".shard-000.parquet.k2j3x9.part").write_bytes(b"x" * 1000)
    (tmp_path / ".shard-001.parquet.a8b7c6.part").write_bytes(b"y")  # another job's
    (tmp_path / "download.part").write_bytes(b"z")  # a resumable download, not ours
    holder = _writer(tmp_path, out, "claim")  # removes the stale file, then is SIGKILLed
    holder.kill()
    holder.wait()
    left = _parts(tmp_path)
    assert ".shard-000.parquet.k2j3x9.part" not in left
    (killed,) = [p for p in left if p.startswith(".shard-000.parquet.")]  # SIGKILL leaves it
    with exclusive_lock(out):  # the next job for this output
        assert remove_stale_parts(out) == [tmp_path / killed]
    assert _parts(tmp_path) == [".shard-001.parquet.a8b7c6.part", "download.part"]


# ---- a full disk ---------------------------------------------------------------------


def _no_space_message(path: Path) -> str:
    """The start of what a user reads when ``path`` could not be written for lack of space."""
    return f"[Errno 28] No space left on device writing {path} ("


def test_injected_enospc_leaves_no_half_file_and_names_the_output(tmp_path, monkeypatch):
    """ENOSPC raised inside the atomic-write layer, as a full disk raises it from write()."""
    target = tmp_path / "results" / "sequences" / "uniref50_sample.parquet"
    write_parquet(pa.table({"id": ["old"]}), target)

    def half_then_full(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1" + b"\0" * 100)  # some bytes made it to disk
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", half_then_full)
    with pytest.raises(NoSpaceError) as info:
        write_parquet(pa.table({"id": ["new"]}), target)
    message = str(info.value)
    assert message.startswith(_no_space_message(target))
    assert message.endswith(
        f"bytes free on its file system); the partial file was removed and {target} was left "
        "as it was. Free some space (or point `results` elsewhere) and rerun. "
        "[OSError: [Errno 28] No space left on device]"
    )
    assert info.value.errno == 28
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]
    assert pq.read_table(target)["id"].to_pylist() == ["old"]


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A 1 MiB tmpfs mounted for the test (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_full_file_system_leaves_no_half_file_and_names_the_output(small_disk):
    """A real full disk: pyarrow's errors (errno only in the text) and plain writes alike."""
    rng = np.random.default_rng(0)
    table = pa.table({"x": rng.random(500_000)})  # 4 MB: four times the disk
    kept = small_disk / "kept.parquet"
    write_parquet(pa.table({"x": [1.0]}), kept)

    target = small_disk / "latents" / "seq_stats.parquet"
    with pytest.raises(NoSpaceError, match=re.escape(_no_space_message(target))):
        write_parquet(table, target)
    shard = small_disk / "activations" / "shard-000.parquet"
    with (
        pytest.raises(NoSpaceError, match=re.escape(_no_space_message(shard))),
        ShardWriter(shard, d_model=64, dtype="float32", model="m", layer=1) as writer,
    ):
        for i in range(100):
            writer.add(f"s{i}", np.arange(200), rng.random((200, 64), dtype=np.float32))
    summary = small_disk / "summary.json"
    with pytest.raises(NoSpaceError, match=re.escape(_no_space_message(summary))):
        write_json({"values": rng.random(200_000).tolist()}, summary)

    left = sorted(str(p.relative_to(small_disk)) for p in small_disk.rglob("*") if p.is_file())
    assert left == ["kept.parquet"]  # no half file of any of the three outputs
    assert pq.read_table(kept)["x"].to_pylist() == [1.0]


def test_atomic_dir_replaces_a_folder_whole_or_not_at_all(tmp_path):
    out = tmp_path / "pages"
    out.mkdir()
    (out / "old.html").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(out) as work:
        (work / "new.html").write_text("half")
        raise RuntimeError("the job died")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pages"]  # no .part folder left
    assert [p.name for p in out.iterdir()] == ["old.html"]
    with atomic_dir(out) as work:
        (work / "new.html").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.html"]
    assert out.stat().st_mode & 0o777 == 0o755
