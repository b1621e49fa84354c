"""protsae.esm against fair-esm itself, on tiny random ESM-2 models."""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from protsae import activations as acts
from protsae import esm as pesm
from protsae.activations import shard_info, shard_schema
from protsae.device import resolve_device
from protsae.ids import is_holdout, shard_of

LAYERS, DIM, HEADS = 3, 48, 4
AMINO = "ACDEFGHIKLMNPQRSTVWY"
TOL = 1e-4


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def random_records(
    n: int, seed: int, min_len: int = 5, max_len: int = 120
) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [
        (f"seq{seed}_{i}", "".join(rng.choices(AMINO, k=rng.randint(min_len, max_len))))
        for i in range(n)
    ]


# Includes the rare letters X, B, Z, U, O and the extremes of length.
RECORDS = [
    ("UniRef50_A", "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQ"),
    ("rare", "MXBZUOACDEFGHIKXLMNPQRSTVWYBZUO"),
    ("one", "W"),
    ("short", "MKV"),
    *random_records(9, seed=1),
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "random-t3-d48-s7.pt"
    pesm.save_random_init(path, LAYERS, DIM, HEADS, seed=7)
    return path


@pytest.fixture(scope="module")
def loaded(checkpoint):
    return pesm.load_model(checkpoint)


def fair_esm_representations(model, alphabet, records, layer):
    """fair-esm's own batched forward: the reference every output is held to."""
    _, _, tokens = alphabet.get_batch_converter()(records)
    with torch.no_grad():
        reps = model(tokens, repr_layers=[layer])["representations"][layer]
    return {seq_id: reps[i, 1 : len(seq) + 1] for i, (seq_id, seq) in enumerate(records)}


# --------------------------------------------------------------------------- loading


def test_saved_random_init_loads_with_the_same_logits(checkpoint, loaded):
    model, alphabet = loaded
    in_memory = pesm.build_random_init(LAYERS, DIM, HEADS, seed=7)
    assert checkpoint.with_name("random-t3-d48-s7-contact-regression.pt").is_file()
    _, _, tokens = alphabet.get_batch_converter()(RECORDS[:4])
    with torch.no_grad():
        assert torch.equal(model(tokens)["logits"], in_memory(tokens)["logits"])
    assert not model.training
    assert (model.num_layers, model.embed_dim, model.attention_heads) == (LAYERS, DIM, HEADS)
    other_seed = pesm.build_random_init(LAYERS, DIM, HEADS, seed=8)
    assert not torch.equal(other_seed.embed_tokens.weight, model.embed_tokens.weight)


def test_random_init_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    pesm.build_random_init(1, 16, 2, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_regression_file_is_optional(tmp_path, checkpoint, loaded):
    alone = tmp_path / "random-alone.pt"
    alone.write_bytes(checkpoint.read_bytes())
    model, alphabet = pesm.load_model(alone)
    _, _, tokens = alphabet.get_batch_converter()(RECORDS[:3])
    with torch.no_grad():
        assert torch.equal(model(tokens)["logits"], loaded[0](tokens)["logits"])
    # With the regression file, the contact head carries the saved weights (strict load).
    assert torch.equal(
        loaded[0].contact_head.regression.weight,
        pesm.build_random_init(LAYERS, DIM, HEADS, 7).contact_head.regression.weight,
    )


def test_published_style_checkpoint_loads(tmp_path):
    """Keys under encoder.sentence_encoder. and a name starting with esm2, as fair-esm ships them."""
    source = pesm.build_random_init(2, 32, 4, seed=3)
    state = source.state_dict()
    regression = {k: v for k, v in state.items() if k.startswith("contact_head.regression")}
    encoder = {f"encoder.sentence_encoder.{k}": v for k, v in state.items() if k not in regression}
    cfg = argparse.Namespace(
        encoder_layers=2, encoder_embed_dim=32, encoder_attention_heads=4, token_dropout=True
    )
    torch.save({"model": encoder, "cfg": {"model": cfg}}, tmp_path / "esm2_t2_tiny.pt")
    torch.save({"model": regression}, tmp_path / "esm2_t2_tiny-contact-regression.pt")
    model, alphabet = pesm.load_model(tmp_path / "esm2_t2_tiny.pt")
    _, _, tokens = alphabet.get_batch_converter()(RECORDS[:3])
    with torch.no_grad():
        assert torch.equal(model(tokens)["logits"], source(tokens)["logits"])


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        pesm.load_model(tmp_path / "nope.pt")


def test_garbage_checkpoint_is_a_clear_error(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a torch file\n" * 10)
    with pytest.raises(ValueError, match="garbage.pt: not a readable torch checkpoint"):
        pesm.load_model(garbage)


class _TouchOnLoad:
    """Unpickling this runs code (creates a file): what weights_only loading must refuse."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_arbitrary_pickle_is_refused(tmp_path):
    evil = tmp_path / "evil.pt"
    marker = tmp_path / "code-ran"
    torch.save({"model": {}, "cfg": {"model": _TouchOnLoad(marker)}}, evil)
    with pytest.raises(ValueError, match="evil.pt: not a readable torch checkpoint"):
        pesm.load_model(evil)
    assert not marker.exists()


def test_esm1_style_checkpoint_is_not_esm2(tmp_path):
    old = tmp_path / "esm1b_t33_650M_UR50S.pt"
    torch.save({"model": {}, "args": argparse.Namespace(arch="roberta_large")}, old)
    with pytest.raises(ValueError, match="not an ESM-2 checkpoint.*ESM-1"):
        pesm.load_model(old)


def test_state_dict_that_does_not_fit_is_a_clear_error(tmp_path, checkpoint):
    data = torch.load(checkpoint, weights_only=False)
    data["cfg"]["model"].encoder_layers = 5
    bad = tmp_path / "bad.pt"
    torch.save(data, bad)
    with pytest.raises(ValueError, match="bad.pt: state dict does not fit"):
        pesm.load_model(bad)


def test_random_init_rejects_odd_head_sizes(tmp_path):
    with pytest.raises(ValueError, match="heads"):
        pesm.save_random_init(tmp_path / "x.pt", 2, 30, 4, seed=0)
    assert not (tmp_path / "x.pt").exists()


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda")


# --------------------------------------------------------------------------- extraction


@pytest.mark.parametrize("layer", [2, LAYERS], ids=["intermediate", "last"])
def test_shard_equals_fair_esm_representations(tmp_path, checkpoint, loaded, layer, read_shard):
    out = tmp_path / "shard.parquet"
    rows = acts.extract_shard(
        checkpoint,
        RECORDS,
        out,
        layer,
        acts.ShardFormat("random-t3-d48-s7", "float32"),
        pesm.ForwardOptions(200),
    )
    reference = fair_esm_representations(*loaded, RECORDS, layer)
    ids, pos, x = read_shard(out)
    assert rows == len(ids) == sum(len(seq) for _, seq in RECORDS)
    info = shard_info(out)
    assert (info.dtype, info.d_model, info.model, info.layer) == (
        "float32",
        DIM,
        "random-t3-d48-s7",
        layer,
    )
    seen = {}
    for seq_id, p, vector in zip(ids, pos, x, strict=True):
        seen.setdefault(seq_id, []).append(int(p))
        np.testing.assert_allclose(vector, reference[seq_id][p].numpy(), atol=TOL, rtol=0)
    # Every residue exactly once; BOS/EOS/padding never stored.
    assert {k: sorted(v) for k, v in seen.items()} == {
        seq_id: list(range(len(seq))) for seq_id, seq in RECORDS
    }


def test_layer_zero_is_the_scaled_embedding(loaded):
    reference = fair_esm_representations(*loaded, RECORDS[:4], 0)
    for seq_id, hidden in pesm.layer_representations(
        *loaded, RECORDS[:4], 0, pesm.ForwardOptions(1000)
    ):
        assert torch.allclose(hidden, reference[seq_id], atol=TOL, rtol=0)


def test_float16_shard_rounds_the_same_vectors(tmp_path, checkpoint, loaded, read_shard):
    out = tmp_path / "half.parquet"
    acts.extract_shard(
        checkpoint, RECORDS[:4], out, 2, acts.ShardFormat("m", "float16"), pesm.ForwardOptions(500)
    )
    reference = fair_esm_representations(*loaded, RECORDS[:4], 2)
    ids, pos, x = read_shard(out)
    assert x.dtype == np.float16
    for seq_id, p, vector in zip(ids, pos, x, strict=True):
        expected = reference[seq_id][p].numpy()
        np.testing.assert_allclose(vector.astype(np.float32), expected, rtol=2e-3, atol=2e-3)


def test_early_exit_runs_no_later_layer(loaded):
    model, alphabet = loaded
    layer = 1
    fired: set[str] = set()
    handles = []
    for index, block in enumerate(model.layers):
        for name, module in block.named_modules():
            handles.append(
                module.register_forward_hook(lambda *_, tag=f"layer{index}.{name}": fired.add(tag))
            )
    for tag, module in [("final_norm", model.emb_layer_norm_after), ("lm_head", model.lm_head)]:
        handles.append(module.register_forward_hook(lambda *_, tag=tag: fired.add(tag)))
    try:
        list(pesm.layer_representations(model, alphabet, RECORDS, layer, pesm.ForwardOptions(300)))
    finally:
        for handle in handles:
            handle.remove()
    assert {"layer0.fc1", "layer0.self_attn.q_proj", "layer0.final_layer_norm"} <= fired
    assert all(tag.startswith("layer0.") for tag in fired), sorted(fired)


def test_batch_composition_does_not_change_vectors(loaded):
    records = RECORDS + random_records(20, seed=2, max_len=300)
    one_at_a_time = dict(pesm.layer_representations(*loaded, records, 2, pesm.ForwardOptions(1)))
    batched = list(pesm.layer_representations(*loaded, records, 2, pesm.ForwardOptions(2000)))
    assert len(batched) == len(records)
    for seq_id, hidden in batched:
        assert hidden.dtype == torch.float32 and hidden.device.type == "cpu"
        assert torch.allclose(hidden, one_at_a_time[seq_id], atol=TOL, rtol=0)


def test_yield_order_is_longest_first_by_batch(loaded):
    order = [
        seq_id
        for seq_id, _ in pesm.layer_representations(*loaded, RECORDS, 1, pesm.ForwardOptions(400))
    ]
    lengths = dict(RECORDS)
    assert [len(lengths[i]) for i in order] == sorted((len(s) for _, s in RECORDS), reverse=True)


def test_token_batches_respect_the_budget():
    lengths = [5, 300, 40, 41, 1022, 7, 7, 150]
    batches = pesm.token_batches(lengths, 700)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        padded = max(lengths[i] + 2 for i in batch) * len(batch)
        assert padded <= 700 or len(batch) == 1


def test_too_long_sequence_is_named(loaded):
    records = [*RECORDS[:2], ("giant", "A" * 1023)]
    with pytest.raises(ValueError, match="'giant' has 1023 residues"):
        list(pesm.layer_representations(*loaded, records, 1, pesm.ForwardOptions(4096)))


def test_foreign_characters_are_named(loaded):
    with pytest.raises(ValueError, match="'lower'.*'ak'"):
        list(
            pesm.layer_representations(*loaded, [("lower", "MKakV")], 1, pesm.ForwardOptions(4096))
        )
    with pytest.raises(ValueError, match="'blank' is empty"):
        list(pesm.layer_representations(*loaded, [("blank", "")], 1, pesm.ForwardOptions(4096)))


def test_layer_out_of_range(loaded):
    with pytest.raises(ValueError, match="layer 4 out of range"):
        list(pesm.layer_representations(*loaded, RECORDS, LAYERS + 1, pesm.ForwardOptions(4096)))


def test_duplicate_ids_are_refused(tmp_path, checkpoint):
    records = [("dup", "MKV"), ("dup", "MKW")]
    with pytest.raises(ValueError, match="'dup' appears more than once"):
        acts.extract_shard(
            checkpoint,
            records,
            tmp_path / "d.parquet",
            1,
            acts.ShardFormat("m", "float32"),
            pesm.ForwardOptions(100),
        )
    assert not (tmp_path / "d.parquet").exists()


def test_empty_shard_is_valid_parquet(tmp_path, checkpoint, read_shard):
    out = tmp_path / "empty.parquet"
    assert (
        acts.extract_shard(
            checkpoint, [], out, 1, acts.ShardFormat("random", "float16"), pesm.ForwardOptions(100)
        )
        == 0
    )
    ids, pos, x = read_shard(out)
    assert ids == [] and pos.shape == (0,) and x.shape == (0, DIM)
    info = shard_info(out)
    assert (info.dtype, info.d_model, info.model, info.layer, info.num_rows) == (
        "float16",
        DIM,
        "random",
        1,
        0,
    )
    assert pq.read_schema(out).equals(
        shard_schema(DIM, "float16", "random", 1), check_metadata=True
    )


def test_token_subset_is_seeded_per_sequence(tmp_path, checkpoint, read_shard):
    records = RECORDS + random_records(15, seed=3)
    k = 8
    full = tmp_path / "full.parquet"
    acts.extract_shard(
        checkpoint,
        records,
        full,
        2,
        acts.ShardFormat("m", "float32", None, 5),
        pesm.ForwardOptions(600),
    )
    subsets = []
    for name, budget, order in [("a", 600, records), ("b", 150, records[::-1])]:
        out = tmp_path / f"{name}.parquet"
        acts.extract_shard(
            checkpoint,
            order,
            out,
            2,
            acts.ShardFormat("m", "float32", k, 5),
            pesm.ForwardOptions(budget),
        )
        subsets.append(read_shard(out))
    full_ids, full_pos, full_x = read_shard(full)
    full_rows = {(i, int(p)): v for i, p, v in zip(full_ids, full_pos, full_x, strict=True)}
    lengths = dict(records)
    by_seq = [{}, {}]
    for which, (ids, pos, x) in enumerate(subsets):
        for seq_id, p, vector in zip(ids, pos, x, strict=True):
            by_seq[which].setdefault(seq_id, []).append(int(p))
            np.testing.assert_allclose(vector, full_rows[(seq_id, int(p))], atol=TOL, rtol=0)
    assert by_seq[0] == by_seq[1]  # independent of batching and record order
    for seq_id, positions in by_seq[0].items():
        length = len(lengths[seq_id])
        assert len(positions) == min(k, length) == len(set(positions))
        assert all(0 <= p < length for p in positions)
    other_seed = tmp_path / "other.parquet"
    acts.extract_shard(
        checkpoint,
        records,
        other_seed,
        2,
        acts.ShardFormat("m", "float32", k, 6),
        pesm.ForwardOptions(600),
    )
    ids, pos, _ = read_shard(other_seed)
    assert sorted(zip(ids, pos.tolist(), strict=True)) != sorted(
        (i, p) for i, ps in by_seq[0].items() for p in ps
    )


def test_sample_positions_all_when_short():
    assert acts.sample_positions("x", 5, 10, 0).tolist() == [0, 1, 2, 3, 4]
    assert acts.sample_positions("x", 5, None, 0).tolist() == [0, 1, 2, 3, 4]


# --------------------------------------------------------------------------- shard partition


def sample_table(n: int, offset: int = 0) -> pa.Table:
    ids = [f"UniRef50_{i:06d}" for i in range(offset, offset + n)]
    return pa.table({"id": ids, "sequence": ["MKV" * (1 + i % 5) for i in range(n)]})


def test_a_shard_read_from_the_sample_file_is_the_shard_of_its_table(tmp_path, caplog):
    import pyarrow.parquet as pq

    table = sample_table(200).append_column("length", pa.array([3] * 200, pa.int32()))
    pq.write_table(table, tmp_path / "sample.parquet")
    with caplog.at_level("INFO", logger="protsae"):
        records = acts.read_shard_records(tmp_path / "sample.parquet", 1, 3, 0.1)
    assert records == acts.select_shard_records(table, 1, 3, 0.1)
    assert f"shard 1 of 3: {len(records)} of 200 sequences" in caplog.text


def test_shards_partition_the_training_sequences():
    table = sample_table(600)
    n_shards, holdout = 4, 0.1
    shards = [acts.select_shard_records(table, s, n_shards, holdout) for s in range(n_shards)]
    held = acts.holdout_records(table, holdout, None)
    all_ids = [i for shard in shards for i, _ in shard] + [i for i, _ in held]
    assert sorted(all_ids) == sorted(table.column("id").to_pylist())  # disjoint and complete
    assert 30 <= len(held) <= 90 and all(len(s) > 80 for s in shards)
    assert all(shard_of(i, n_shards) == 2 and not is_holdout(i, holdout) for i, _ in shards[2])
    ids, seqs = table.column("id").to_pylist(), table.column("sequence").to_pylist()
    sequences = dict(zip(ids, seqs, strict=True))
    assert all(sequences[i] == seq for shard in shards for i, seq in shard)


def test_shard_membership_ignores_order_and_growth():
    table = sample_table(500)
    shuffled = table.take(np.random.default_rng(0).permutation(500))
    grown = pa.concat_tables([table, sample_table(300, offset=500)])
    for shard in range(3):
        base = set(acts.select_shard_records(table, shard, 3, 0.05))
        assert set(acts.select_shard_records(shuffled, shard, 3, 0.05)) == base
        assert base < set(acts.select_shard_records(grown, shard, 3, 0.05))


def test_holdout_records_are_deterministic_and_capped():
    table = sample_table(800)
    shuffled = table.take(np.random.default_rng(1).permutation(800))
    first = acts.holdout_records(table, 0.2, 25)
    assert len(first) == 25
    assert acts.holdout_records(shuffled, 0.2, 25) == first
    assert all(is_holdout(i, 0.2) for i, _ in first)
    assert set(first) < set(acts.holdout_records(table, 0.2, None))


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="sequence"):
        acts.select_shard_records(pa.table({"id": ["a"]}), 0, 1, 0.0)
    with pytest.raises(ValueError, match="shard 3 out of range"):
        acts.select_shard_records(sample_table(3), 3, 3, 0.0)


# --------------------------------------------------------------------------- edits, masked LM


def test_forward_without_edit_is_fair_esm_forward(loaded):
    model, alphabet = loaded
    _, _, tokens = alphabet.get_batch_converter()(RECORDS)
    tokens[0, 3] = alphabet.mask_idx  # exercises token-dropout rescaling too
    with torch.no_grad():
        expected = model(tokens)["logits"]
        plain = pesm.forward_with_layer_edit(model, tokens, 2, None)
        identity = pesm.forward_with_layer_edit(model, tokens, 2, lambda h: h)
    assert plain.shape == expected.shape
    scale = expected.abs().max().item()
    assert (plain - expected).abs().max().item() < TOL * max(1.0, scale)
    assert torch.equal(plain, identity)


@pytest.mark.parametrize("layer", [0, 2, LAYERS])
def test_edit_sees_and_replaces_the_layer_output(loaded, layer):
    model, alphabet = loaded
    records = RECORDS[:5]
    _, _, tokens = alphabet.get_batch_converter()(records)
    seen = []

    def capture(h):
        seen.append(h.clone())
        return h

    with torch.no_grad():
        pesm.forward_with_layer_edit(model, tokens, layer, capture)
        # A constant shift would vanish in the pre-layer norms: shift along a random direction.
        direction = torch.randn(DIM, generator=torch.Generator().manual_seed(0))
        shifted = pesm.forward_with_layer_edit(model, tokens, layer, lambda h: h + direction)
        clean = pesm.forward_with_layer_edit(model, tokens, layer, None)
    assert len(seen) == 1 and seen[0].shape == (len(records), tokens.shape[1], DIM)
    reference = fair_esm_representations(model, alphabet, records, layer)
    for i, (seq_id, seq) in enumerate(records):
        assert torch.allclose(seen[0][i, 1 : len(seq) + 1], reference[seq_id], atol=TOL, rtol=0)
    assert (shifted - clean).abs().max() > 1e-2


def test_edit_at_last_layer_feeds_the_lm_head_directly(loaded):
    model, alphabet = loaded
    _, _, tokens = alphabet.get_batch_converter()(RECORDS[:3])
    with torch.no_grad():
        final = model(tokens, repr_layers=[LAYERS])["representations"][LAYERS]
        constant = torch.zeros_like(final)
        logits = pesm.forward_with_layer_edit(model, tokens, LAYERS, lambda h: constant)
        expected = model.lm_head(constant)
    assert torch.allclose(logits, expected, atol=1e-5)


def test_masked_lm_cross_entropy_matches_fair_esm(loaded):
    model, alphabet = loaded
    records = RECORDS
    ce, n = pesm.masked_lm_cross_entropy(
        model, alphabet, records, 2, None, forward=pesm.ForwardOptions(300)
    )
    convert = alphabet.get_batch_converter()
    total, count = 0.0, 0
    for seq_id, seq in records:  # one sequence at a time through fair-esm's own forward
        _, _, tokens = convert([(seq_id, seq)])
        positions = torch.from_numpy(pesm.mask_positions(seq_id, len(seq), 0.15, 0)) + 1
        targets = tokens[0, positions].clone()
        tokens[0, positions] = alphabet.mask_idx
        with torch.no_grad():
            logits = model(tokens)["logits"][0, positions]
        total += torch.nn.functional.cross_entropy(logits, targets, reduction="sum").item()
        count += len(positions)
    assert n == count == sum(max(1, round(0.15 * len(s))) for _, s in records)
    assert ce == pytest.approx(total / count, abs=1e-4)


def test_masked_lm_identity_is_clean_and_ablation_differs(loaded):
    model, alphabet = loaded
    clean = pesm.masked_lm_cross_entropy(model, alphabet, RECORDS, 2, None, pesm.Masking(seed=3))
    identity = pesm.masked_lm_cross_entropy(
        model, alphabet, RECORDS, 2, lambda h: h, pesm.Masking(seed=3)
    )
    zero = pesm.masked_lm_cross_entropy(
        model, alphabet, RECORDS, 2, torch.zeros_like, pesm.Masking(seed=3)
    )
    assert identity == clean
    assert zero[1] == clean[1]
    assert abs(zero[0] - clean[0]) > 1e-3
    rebatched = pesm.masked_lm_cross_entropy(
        model, alphabet, RECORDS, 2, None, pesm.Masking(seed=3), pesm.ForwardOptions(50)
    )
    assert rebatched[1] == clean[1] and rebatched[0] == pytest.approx(clean[0], abs=1e-5)
    other_seed = pesm.masked_lm_cross_entropy(
        model, alphabet, RECORDS, 2, None, pesm.Masking(seed=4)
    )
    assert other_seed[0] != clean[0]
