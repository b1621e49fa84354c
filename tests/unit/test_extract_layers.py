"""One ESM-2 forward for several layers (activations.layer_passes): the same shards as one
early-exit job per layer, from one pass, and nothing written when the pass fails."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from protsae import activations as acts
from protsae import esm as pesm
from protsae.activations import shard_info

LAYERS, DIM, HEADS = 3, 32, 4
AMINO = "ACDEFGHIKLMNPQRSTVWY"


def random_records(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(f"s{seed}_{i}", "".join(rng.choices(AMINO, k=rng.randint(3, 90)))) for i in range(n)]


RECORDS = [("rare", "MXBZUOACDEFGHIKXLMNPQ"), ("one", "W"), *random_records(14, seed=4)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "random-t3-d32-s3.pt"
    pesm.save_random_init(path, LAYERS, DIM, HEADS, seed=3)
    return path


@pytest.mark.parametrize("dtype,tokens", [("float16", 6), ("float32", None)])
def test_one_pass_writes_each_layer_as_its_own_job_does(
    tmp_path, checkpoint, read_shard, dtype, tokens
):
    layers = [1, 2, LAYERS]  # the last layer takes the final layer norm
    args = (acts.ShardFormat("random-t3-d32-s3", dtype, tokens, 11), pesm.ForwardOptions(300))
    passed = {layer: tmp_path / f"pass-L{layer}.parquet" for layer in layers}
    rows = acts.extract_shard_layers(checkpoint, RECORDS, passed, *args)
    for layer in layers:
        alone = tmp_path / f"alone-L{layer}.parquet"
        assert acts.extract_shard(checkpoint, RECORDS, alone, layer, *args) == rows[layer] > 0
        ids, pos, x = read_shard(passed[layer])
        ids_alone, pos_alone, x_alone = read_shard(alone)
        assert ids == ids_alone and np.array_equal(pos, pos_alone)
        assert x.dtype == x_alone.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(x, x_alone)
        assert shard_info(passed[layer]) == shard_info(alone)
        assert shard_info(alone).layer == layer
        # the very same file, byte for byte
        assert passed[layer].read_bytes() == alone.read_bytes()


def test_multi_layer_representations_match_fair_esm(checkpoint):
    model, alphabet = pesm.load_model(checkpoint)
    records = RECORDS[:5]
    _, _, tokens = alphabet.get_batch_converter()(records)
    with torch.no_grad():
        reference = model(tokens, repr_layers=[0, 2, 3])["representations"]
    got = dict(
        pesm.multi_layer_representations(
            model, alphabet, records, [3, 0, 2], pesm.ForwardOptions(10_000)
        )
    )
    assert set(got) == {seq_id for seq_id, _ in records}
    for i, (seq_id, seq) in enumerate(records):
        assert set(got[seq_id]) == {0, 2, 3}
        for layer, hidden in got[seq_id].items():
            expected = reference[layer][i, 1 : len(seq) + 1]
            assert torch.allclose(hidden, expected, atol=1e-4, rtol=0), (seq_id, layer)


def test_the_pass_runs_each_layer_once_up_to_the_deepest(checkpoint):
    model, alphabet = pesm.load_model(checkpoint)
    calls = [0] * LAYERS
    handles = [
        block.fc1.register_forward_hook(lambda *_, i=index: calls.__setitem__(i, calls[i] + 1))
        for index, block in enumerate(model.layers)
    ]
    try:
        batches = len(pesm.token_batches([len(s) for _, s in RECORDS], 200))
        list(
            pesm.multi_layer_representations(
                model, alphabet, RECORDS, [1, 2], pesm.ForwardOptions(200)
            )
        )
    finally:
        for handle in handles:
            handle.remove()
    # layers 1 and 2 from one forward: each of the first two layers once per batch, the
    # third never (per-layer early exit would run the first layer twice per batch)
    assert calls == [batches, batches, 0]


def test_a_failure_mid_pass_leaves_no_shard_of_any_layer(tmp_path, checkpoint, monkeypatch):
    stored = acts._stored_vectors
    seen = []

    def fail_late(writer, seq_id, layer, hidden, positions):
        seen.append(layer)
        if len(seen) == 7:  # mid-pass: some rows of every layer already queued
            raise RuntimeError("device lost")
        return stored(writer, seq_id, layer, hidden, positions)

    monkeypatch.setattr(acts, "_stored_vectors", fail_late)
    paths = {layer: tmp_path / f"L{layer}" / "shard-000.parquet" for layer in (1, 3)}
    for path in paths.values():
        path.parent.mkdir()
    with pytest.raises(RuntimeError, match="device lost"):
        acts.extract_shard_layers(
            checkpoint, RECORDS, paths, acts.ShardFormat("m", "float16"), pesm.ForwardOptions(100)
        )
    assert sorted(set(seen)) == [1, 3]
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_bad_layers_are_refused_before_any_file(tmp_path, checkpoint):
    out = {2: tmp_path / "L2.parquet", LAYERS + 1: tmp_path / "L4.parquet"}
    with pytest.raises(ValueError, match="layer 4 out of range"):
        acts.extract_shard_layers(
            checkpoint, RECORDS, out, acts.ShardFormat("m", "float16"), pesm.ForwardOptions(100)
        )
    with pytest.raises(ValueError, match="no layers to extract"):
        acts.extract_shard_layers(
            checkpoint, RECORDS, {}, acts.ShardFormat("m", "float16"), pesm.ForwardOptions(100)
        )
    assert list(tmp_path.iterdir()) == []
