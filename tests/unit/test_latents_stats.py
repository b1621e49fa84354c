"""seq_stats / top_examples against a brute-force dense computation; streaming memory bound."""

from __future__ import annotations

import tracemalloc
import zlib
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from protsae.latents import (
    SPLITS,
    EvalRecord,
    StreamBounds,
    TopExamples,
    iter_evaluation_set,
    representatives,
    sparse_stats,
    stream_latent_stats,
)

WIDTH = 24
K = 5


def fake_track(seq_id: str, length: int, width: int = WIDTH, k: int = K):
    """Deterministic top-k activations for a sequence: distinct latents per residue, some zeros.

    Values are quantised to quarters so that equal maxima (ties) are common.
    """
    rng = np.random.default_rng(zlib.crc32(seq_id.encode()))
    # Favour a few latents so that some form runs of consecutive residues.
    weights = rng.random((length, width)) + np.linspace(0, 1.5, width)
    indices = np.argsort(-weights, axis=1)[:, :k].astype(np.int32)
    values = np.round(rng.exponential(1.0, (length, k)) * 4) / 4
    values[rng.random((length, k)) < 0.3] = 0.0
    return values.astype(np.float32), indices


def fake_encoder(width: int = WIDTH, k: int = K):
    def encode(records):
        # Reversed order: the collector must not depend on the order tracks come back in.
        for seq_id, seq in reversed(list(records)):
            values, indices = fake_track(seq_id, len(seq), width, k)
            yield seq_id, values, indices

    return encode


def make_records(n: int, seed: int = 0) -> list[EvalRecord]:
    rng = np.random.default_rng(seed)
    return [
        EvalRecord(f"P{i:05d}", "A" * int(rng.integers(1, 60)), "test" if i % 3 else "train")
        for i in range(n)
    ]


def brute_force(records, top_examples):
    """Dense [length, width] per sequence, every statistic by hand."""
    rows = []
    for r in records:
        values, indices = fake_track(r.id, len(r.sequence))
        dense = np.zeros((len(r.sequence), WIDTH), np.float32)
        np.put_along_axis(dense, indices.astype(np.int64), values, axis=1)
        for lat in range(WIDTH):
            col = dense[:, lat]
            active = [i for i, v in enumerate(col) if v > 0]
            if not active:
                continue
            argmax = int(np.argmax(col))
            regions, start = [], active[0]
            for prev, cur in zip(active, active[1:] + [None], strict=True):
                if cur != prev + 1:
                    regions.append((start, prev))
                    start = cur
            top_region = next(b - a + 1 for a, b in regions if a <= argmax <= b)
            region_starts = [a for a, _ in regions]
            dist = Counter(b - a for a, b in zip(region_starts, region_starts[1:], strict=False))
            rows.append(
                {
                    "latent": lat,
                    "id": r.id,
                    "split": r.split,
                    "length": len(col),
                    "max_act": float(col.max()),
                    "argmax": argmax,
                    "n_active": len(active),
                    "top_region_length": top_region,
                    "coverage": np.float32(len(active) / len(col)),
                    "distances": sorted(dist),
                    "distance_counts": [dist[d] for d in sorted(dist)],
                    "positions": active,
                    "values": [float(col[i]) for i in active],
                }
            )
    top = []
    for lat in range(WIDTH):
        for split in ("train", "test"):
            cands = [x for x in rows if x["latent"] == lat and x["split"] == split]
            cands.sort(key=lambda x: (-x["max_act"], x["id"]))
            for rank, x in enumerate(cands[:top_examples]):
                top.append({**x, "rank": rank})
    return rows, top


def run_stats(tmp_path, records, top_examples, chunk=7, **kw):
    chunks = [records[i : i + chunk] for i in range(0, len(records), chunk)]
    n = stream_latent_stats(
        chunks,
        fake_encoder(),
        WIDTH,
        top_examples,
        tmp_path / "seq_stats.parquet",
        tmp_path / "top_examples.parquet",
        bounds=StreamBounds(**kw),
    )
    return (
        n,
        pq.read_table(tmp_path / "seq_stats.parquet"),
        pq.read_table(tmp_path / "top_examples.parquet"),
    )


SEQ_COLS = [
    "latent",
    "id",
    "split",
    "length",
    "max_act",
    "argmax",
    "n_active",
    "top_region_length",
    "coverage",
    "distances",
    "distance_counts",
]


@pytest.mark.parametrize("batch_activations", [1, 200, 1 << 20])
def test_seq_stats_and_top_examples_equal_brute_force(tmp_path, batch_activations):
    records = make_records(60)
    expected_rows, expected_top = brute_force(records, top_examples=4)
    (n_seq, n_rows), seq_stats, top = run_stats(
        tmp_path, records, 4, batch_activations=batch_activations
    )
    assert n_seq == 60 and n_rows == len(expected_rows) == len(seq_stats)
    got = sorted(seq_stats.to_pylist(), key=lambda x: (x["latent"], x["id"]))
    want = sorted(expected_rows, key=lambda x: (x["latent"], x["id"]))
    assert [{c: x[c] for c in SEQ_COLS} for x in got] == [{c: x[c] for c in SEQ_COLS} for x in want]
    # Some planted structure must actually be exercised by the random tracks.
    assert any(x["top_region_length"] > 2 for x in want)
    assert any(len(x["distances"]) > 2 for x in want)

    top_cols = ["latent", "split", "rank", "id", "length", "max_act", "positions", "values"]
    assert top.column_names == top_cols
    got_top = [{c: x[c] for c in top_cols} for x in top.to_pylist()]
    want_top = sorted(
        ({c: x[c] for c in top_cols} for x in expected_top),
        key=lambda x: (x["latent"], x["split"] != "train", x["rank"]),
    )
    assert got_top == want_top
    # Ties in max activation happen, and are broken by id.
    maxes = Counter((x["latent"], x["split"], x["max_act"]) for x in want_top)
    assert max(maxes.values()) > 1


def test_schema_types(tmp_path):
    _, seq_stats, top = run_stats(tmp_path, make_records(10), 3)

    def name(t: pa.DataType) -> str:
        return f"list<{t.value_type}>" if pa.types.is_list(t) else str(t)

    types = {f.name: name(f.type) for f in seq_stats.schema}
    assert types == {
        "latent": "int32",
        "id": "string",
        "split": "string",
        "length": "int32",
        "max_act": "float",
        "argmax": "int32",
        "n_active": "int32",
        "top_region_length": "int32",
        "coverage": "float",
        "distances": "list<int32>",
        "distance_counts": "list<int32>",
    }
    assert name(top.schema.field("positions").type) == "list<int32>"
    assert name(top.schema.field("values").type) == "list<float>"


def test_top_examples_do_not_depend_on_order(tmp_path):
    records = make_records(50, seed=3)
    a = tmp_path / "a"
    b = tmp_path / "b"
    _, _, top_a = run_stats(a, records, 3, chunk=50, batch_activations=100)
    _, _, top_b = run_stats(b, records[::-1], 3, chunk=4)
    assert top_a.equals(top_b)


def test_sparse_stats_single_sequence_regions():
    # latent 2 active at 0,1,2 (max at 1), 5, 9,10 -> regions 3,1,2; top region 3
    pos = np.array([0, 1, 2, 5, 9, 10])
    val = np.array([1.0, 3.0, 2.0, 3.0, 0.5, 0.5], np.float32)
    s = sparse_stats(np.zeros(6, int), pos, np.full(6, 2), val)
    assert s.latent.tolist() == [2]
    assert s.argmax.tolist() == [1]  # first of the two maxima
    assert s.top_region_length.tolist() == [3]
    # region starts 0, 5, 9: distances between regions, not between active residues
    assert s.distances.tolist() == [4, 5]
    assert s.distance_counts.tolist() == [1, 1]


def test_encoder_mismatch_is_reported(tmp_path):
    def short(records):
        for seq_id, seq in records:
            values, indices = fake_track(seq_id, len(seq) - 1)
            yield seq_id, values, indices

    records = [EvalRecord("P1", "ACDEF", "test")]
    with pytest.raises(ValueError, match="P1: encoder returned 4 residues"):
        stream_latent_stats([records], short, WIDTH, 2, tmp_path / "s.pq", tmp_path / "t.pq")
    assert not (tmp_path / "s.pq").exists()

    def drops(records):
        return iter(())

    with pytest.raises(ValueError, match="dropped 1 sequences"):
        stream_latent_stats([records], drops, WIDTH, 2, tmp_path / "s.pq", tmp_path / "t.pq")


def _write(table: dict, path):
    pq.write_table(pa.table(table), path)
    return path


def test_evaluation_set_is_representatives_of_both_splits(tmp_path):
    clusters = _write(
        {
            "accession": ["A", "B", "C", "D", "E"],
            "cluster": ["A", "A", "C", "C", "E"],
            "split": ["train", "train", "test", "test", "test"],
        },
        tmp_path / "clusters.parquet",
    )
    swissprot = _write(
        {"accession": ["E", "D", "C", "B", "A"], "sequence": ["EE", "DD", "CC", "BB", "AA"]},
        tmp_path / "swissprot.parquet",
    )
    assert representatives(clusters) == {"A": "train", "C": "test", "E": "test"}
    chunks = list(iter_evaluation_set(swissprot, clusters, chunk_size=2))
    assert [[tuple(r) for r in c] for c in chunks] == [
        [("E", "EE", "test"), ("C", "CC", "test")],
        [("A", "AA", "train")],
    ]


def test_evaluation_set_errors_name_file_and_record(tmp_path):
    clusters = _write(
        {"accession": ["A", "B"], "cluster": ["A", "B"], "split": ["train", "valid"]},
        tmp_path / "clusters.parquet",
    )
    with pytest.raises(ValueError, match=r"clusters.parquet: row 1 \(accession B\).*'valid'"):
        representatives(clusters)
    clusters = _write(
        {"accession": ["A", "B"], "cluster": ["A", "Z"], "split": ["train", "test"]},
        tmp_path / "clusters.parquet",
    )
    with pytest.raises(ValueError, match="no row with accession == cluster, e.g. Z"):
        representatives(clusters)
    clusters = _write(
        {"accession": ["A", "B"], "cluster": ["A", "B"], "split": ["train", "test"]},
        tmp_path / "clusters.parquet",
    )
    swissprot = _write({"accession": ["A"], "sequence": ["AA"]}, tmp_path / "sp.parquet")
    with pytest.raises(ValueError, match="sp.parquet: 1 cluster representative.*e.g. B"):
        list(iter_evaluation_set(swissprot, clusters))


def _streaming_peak(tmp_path, n_sequences: int) -> int:
    width, k, length = 64, 16, 200

    def records():
        for i in range(n_sequences):
            yield EvalRecord(f"S{i:06d}", "A" * length, "test" if i % 2 else "train")

    def chunks():
        batch = []
        for r in records():
            batch.append(r)
            if len(batch) == 50:
                yield batch
                batch = []

    def encode(recs):
        for seq_id, seq in recs:
            rng = np.random.default_rng(int(seq_id[1:]))
            indices = rng.integers(0, width // k, (len(seq), k)) * k + np.arange(k)
            yield seq_id, rng.random((len(seq), k), np.float32), indices

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        stream_latent_stats(
            chunks(),
            encode,
            width,
            5,
            tmp_path / f"s{n_sequences}.parquet",
            tmp_path / f"t{n_sequences}.parquet",
            bounds=StreamBounds(batch_activations=20_000, row_group_rows=5_000),
        )
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_streaming_memory_is_bounded(tmp_path):
    _streaming_peak(tmp_path, 20)  # warm-up: one-time allocations (codecs, caches)
    small = _streaming_peak(tmp_path, 150)
    large = _streaming_peak(tmp_path, 1500)
    all_activations = 1500 * 200 * 16 * (4 + 8)  # values float32 + indices int64
    assert large < 1.5 * small + (1 << 20)
    assert large < all_activations / 5
    rows = pq.read_metadata(tmp_path / "s1500.parquet").num_rows
    assert rows == 1500 * 64  # every sequence activates every latent: nothing was lost


def test_top_examples_table_in_latent_chunks_is_the_same_table():
    records = make_records(40, seed=5)
    seq, pos, lat, val = [], [], [], []
    for i, r in enumerate(records):
        values, indices = fake_track(r.id, len(r.sequence))
        active = values > 0
        seq.append(np.full(active.sum(), i))
        pos.append(np.nonzero(active)[0])
        lat.append(indices[active])
        val.append(values[active])
    stats = sparse_stats(*(np.concatenate(x) for x in (seq, pos, lat, val)))
    top = TopExamples(WIDTH, 3)
    splits = np.array([SPLITS.index(r.split) for r in records])
    top.add(stats, [r.id for r in records], np.array([len(r.sequence) for r in records]), splits)
    whole = top.table()
    assert len(whole) > 60  # most of the 2 x 24 heaps hold examples
    assert top.table(latents_per_chunk=5).equals(whole)


def test_failure_while_flushing_leaves_no_output(tmp_path, monkeypatch):
    import protsae.latents.collect as stats_module

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    # The one batch is reduced only when the block exits (batch_activations is large).
    monkeypatch.setattr(stats_module, "seq_stats_table", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        run_stats(tmp_path, make_records(5), 2)
    assert list(tmp_path.iterdir()) == []
