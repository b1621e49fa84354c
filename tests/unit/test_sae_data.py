"""ActivationStream: each token once per epoch in a shuffled order, bounded memory, exact
resume from a saved position, and errors that name the bad shard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from protsae.activations import ShardWriter
from protsae.sae.data import ActivationStream, Prefetcher

D = 4
ROW_GROUP = 50


def _write_shards(tmp_path: Path, sizes: list[int], dtype: str = "float32") -> list[Path]:
    """Shards whose vectors carry their global token number in dimension 0."""
    paths = []
    token = 0
    for s, size in enumerate(sizes):
        path = tmp_path / f"shard-{s}.parquet"
        with ShardWriter(path, D, dtype, model="m", layer=3, row_group_rows=ROW_GROUP) as writer:
            for start in range(0, size, 30):  # sequences of up to 30 residues
                n = min(30, size - start)
                x = np.zeros((n, D), dtype=np.float32)
                x[:, 0] = np.arange(token, token + n)
                x[:, 1] = s
                writer.add(f"s{s}_{start}", np.arange(n), x)
                token += n
        paths.append(path)
    return paths


def _tokens(batches: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([b[:, 0] for b in batches]).astype(int)


def test_each_token_once_per_epoch_in_shuffled_order(tmp_path: Path) -> None:
    paths = _write_shards(tmp_path, [400, 350, 250])
    stream = ActivationStream(paths, batch_tokens=64, shuffle_buffer_tokens=200, seed=1)
    assert stream.tokens_per_epoch == 1000 and stream.d_model == D and stream.layer == 3
    batches = [next(stream) for _ in range(32)]  # 2048 tokens: two epochs and a bit
    assert all(b.shape == (64, D) and b.dtype == np.float32 for b in batches)
    seen = _tokens(batches)
    first, second = seen[:1000], seen[1000:2000]
    assert sorted(first) == list(range(1000))
    assert sorted(second) == list(range(1000))
    assert not np.array_equal(first, second)  # a new order each epoch
    assert stream.epoch == 2
    # Shuffled across row groups and shards, not read in file order.
    assert len(np.unique(batches[0][:, 1])) > 1
    assert np.ptp(seen[:64]) > 64


def test_memory_is_bounded_by_the_buffer(tmp_path: Path) -> None:
    paths = _write_shards(tmp_path, [600, 600])
    stream = ActivationStream(paths, batch_tokens=32, shuffle_buffer_tokens=120, seed=0)
    peak = 0
    for _ in range(60):
        next(stream)
        peak = max(peak, stream.buffered_tokens)
    assert 120 <= peak <= 120 + ROW_GROUP


def test_same_seed_same_stream_other_seed_other_order(tmp_path: Path) -> None:
    paths = _write_shards(tmp_path, [300, 300])
    a = _tokens([next(ActivationStream(paths, 100, 150, seed=5)) for _ in range(1)])
    b = _tokens([next(ActivationStream(paths, 100, 150, seed=5)) for _ in range(1)])
    c = _tokens([next(ActivationStream(paths, 100, 150, seed=6)) for _ in range(1)])
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("batches_before", [1, 7, 15, 16])
def test_restored_position_continues_exactly(tmp_path: Path, batches_before: int) -> None:
    paths = _write_shards(tmp_path, [300, 220])
    stream = ActivationStream(paths, batch_tokens=70, shuffle_buffer_tokens=130, seed=2)
    for _ in range(batches_before):
        next(stream)
    state = stream.state_dict()
    expected = [next(stream) for _ in range(12)]  # crosses buffers and an epoch boundary

    restored = ActivationStream(paths, batch_tokens=70, shuffle_buffer_tokens=130, seed=2)
    restored.load_state_dict(state)
    for want in expected:
        np.testing.assert_array_equal(next(restored), want)

    other = ActivationStream(paths, batch_tokens=64, shuffle_buffer_tokens=130, seed=2)
    with pytest.raises(ValueError, match="batch_tokens"):
        other.load_state_dict(state)


def test_float16_shards_come_out_float32(tmp_path: Path) -> None:
    paths = _write_shards(tmp_path, [120], dtype="float16")
    batch = next(ActivationStream(paths, 100, 100, seed=0))
    assert batch.dtype == np.float32
    assert sorted(batch[:, 0].astype(int)) == sorted(set(batch[:, 0].astype(int)))


def test_nan_names_shard_row_group_and_sequence(tmp_path: Path) -> None:
    paths = _write_shards(tmp_path, [200], dtype="float16")
    bad = tmp_path / "bad.parquet"
    with ShardWriter(bad, D, "float16", row_group_rows=ROW_GROUP) as writer:
        for i in range(4):
            x = np.ones((ROW_GROUP, D), dtype=np.float32)
            if i == 2:
                x[7, 3] = np.nan
            writer.add(f"seq{i}", np.arange(ROW_GROUP), x)
    stream = ActivationStream(
        [paths[0], bad], batch_tokens=50, shuffle_buffer_tokens=10_000, seed=0
    )
    with pytest.raises(ValueError) as err:
        next(stream)
    message = str(err.value)
    assert "bad.parquet" in message and "row group 2" in message
    assert "seq2" in message and "position 7" in message and "dimension 3" in message


def test_inconsistent_or_empty_shards_are_errors(tmp_path: Path) -> None:
    paths = _write_shards(tmp_path, [100])
    other = tmp_path / "wide.parquet"
    with ShardWriter(other, D + 1, "float32") as writer:
        writer.add("x", np.arange(3), np.zeros((3, D + 1)))
    with pytest.raises(ValueError, match="wide.parquet.*5-d"):
        ActivationStream([paths[0], other], 10, 10)
    empty = tmp_path / "empty.parquet"
    with ShardWriter(empty, D, "float32"):
        pass
    with pytest.raises(ValueError, match="no tokens"):
        ActivationStream([empty], 10, 10)


def test_prefetcher_yields_the_same_batches_and_positions(tmp_path: Path) -> None:
    paths = _write_shards(tmp_path, [300, 220])
    plain = ActivationStream(paths, batch_tokens=70, shuffle_buffer_tokens=130, seed=4)
    with Prefetcher(ActivationStream(paths, 70, 130, seed=4), depth=3) as ahead:
        for _ in range(11):
            np.testing.assert_array_equal(next(ahead), next(plain))
            # The position of the batches handed out, not of those already read ahead.
            assert ahead.state_dict() == plain.state_dict()


def test_prefetcher_raises_reader_errors_in_the_consumer(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    with ShardWriter(bad, D, "float32") as writer:
        writer.add("nan_seq", np.arange(2), np.array([[1, 2, 3, 4], [np.inf, 0, 0, 0]]))
    with (
        Prefetcher(ActivationStream([bad], 2, 10, seed=0)) as ahead,
        pytest.raises(ValueError, match="bad.parquet.*nan_seq"),
    ):
        next(ahead)
