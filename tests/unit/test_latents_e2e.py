"""The latent stages end to end through the real protsae.esm and protsae.sae on tiny random models.

The reference runs fair-esm's own forward (``model(tokens, repr_layers=[L])``) one sequence
at a time and a dense ``[length, width]`` SAE activation, so the streaming, batched path is
checked against an independent computation.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from protsae.latents import (
    PATTERN_CLASSES,
    classes_from_files,
    families_from_files,
    summarize,
)

esm_mod = pytest.importorskip("protsae.esm", reason="protsae.esm not available")
sae_mod = pytest.importorskip("protsae.sae", reason="protsae.sae not available")
encode_mod = pytest.importorskip("protsae.latents.stats")
from protsae.sae.at_layer import EsmSaeFiles, esm_sae_encoder  # noqa: E402

LAYER, WIDTH, K = 2, 128, 8
LETTERS = "ACDEFGHIKLMNPQRSTVWY"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: more threads only contend
    tmp = tmp_path_factory.mktemp("e2e")
    rng = np.random.default_rng(0)
    n = 30
    ids = [f"P{i:05d}" for i in range(n)]
    seqs = ["".join(rng.choice(list(LETTERS), int(rng.integers(20, 120)))) for _ in range(n)]
    fams = [[f"IPR00000{i % 3}"] if i % 4 else [] for i in range(n)]
    # Pairs of sequences share a cluster; only the representative (first) is evaluated.
    clusters = [ids[i - i % 2] for i in range(n)]
    split = ["test" if (i // 2) % 3 else "train" for i in range(n)]
    pq.write_table(
        pa.table({"accession": ids, "sequence": seqs, "families": fams}), tmp / "swissprot.parquet"
    )
    pq.write_table(
        pa.table({"accession": ids, "cluster": clusters, "split": split}),
        tmp / "clusters.parquet",
    )
    esm_mod.save_random_init(tmp / "esm2_tiny.pt", 4, 64, 4, seed=0)
    cfg = sae_mod.SAEConfig(d_model=64, width=WIDTH, k=K, layer=LAYER)
    sae = sae_mod.TopKSAE(cfg, seed=0)
    with torch.no_grad():
        sae.b_enc.fill_(0.05)  # a few latents fire on long runs
    sae_mod.save_sae(sae, tmp / "sae.safetensors", tmp / "sae.json")
    n_seq, n_rows = encode_mod.latent_stats_from_files(
        EsmSaeFiles(tmp / "esm2_tiny.pt", tmp / "sae.safetensors", LAYER),
        encode_mod.EvaluationSet(tmp / "swissprot.parquet", tmp / "clusters.parquet", chunk_size=7),
        top_examples=3,
        seq_stats_path=tmp / "seq_stats.parquet",
        top_examples_path=tmp / "top_examples.parquet",
        forward=esm_mod.ForwardOptions(300, "cpu"),
    )
    reps = {i: s for i, (a, c, s) in enumerate(zip(ids, clusters, split, strict=True)) if a == c}
    yield tmp, n_seq, n_rows, reps, ids, seqs
    torch.set_num_threads(threads)


def reference_dense(tmp, ids, seqs, reps, dense_latents):
    model, alphabet = esm_mod.load_model(tmp / "esm2_tiny.pt", "cpu")
    sae = sae_mod.load_sae(tmp / "sae.safetensors")
    convert = alphabet.get_batch_converter()
    dense = {}
    for i in reps:
        _, _, tokens = convert([(ids[i], seqs[i])])
        with torch.no_grad():
            x = model(tokens, repr_layers=[LAYER])["representations"][LAYER][0, 1:-1]
            dense[ids[i]] = dense_latents(sae, x).numpy()
    return dense


def test_stats_match_fair_esm_reference(pipeline, dense_latents):
    tmp, n_seq, n_rows, reps, ids, seqs = pipeline
    assert n_seq == len(reps) == 15
    dense = reference_dense(tmp, ids, seqs, reps, dense_latents)
    rows = pq.read_table(tmp / "seq_stats.parquet").to_pylist()
    assert len(rows) == n_rows
    assert {r["id"] for r in rows} == set(dense)
    got = {(r["latent"], r["id"]): r for r in rows}
    want = {(lat, sid) for sid, a in dense.items() for lat in np.flatnonzero(a.max(0) > 0)}
    # Batching changes float rounding (~1e-6), which may flip a top-k choice on a near tie.
    assert len(set(got) ^ want) <= 0.01 * len(want)
    close = 0
    for key in set(got) & want:
        lat, sid = key
        col = dense[sid][:, lat]
        row = got[key]
        assert row["length"] == len(col)
        assert row["max_act"] == pytest.approx(col.max(), rel=1e-3, abs=1e-4)
        close += row["n_active"] == int((col > 0).sum()) and row["argmax"] == int(col.argmax())
    assert close >= 0.99 * len(set(got) & want)
    assert max(r["n_active"] for r in rows) > 5  # regions, distances were exercised


def test_top_examples_rank_by_max_activation(pipeline):
    tmp, _, _, reps, _, _ = pipeline
    top = pq.read_table(tmp / "top_examples.parquet").to_pandas()
    assert set(top["split"]) == {"train", "test"}
    assert (top.groupby(["latent", "split"]).size() <= 3).all()
    for _, group in top.groupby(["latent", "split"]):
        assert group.sort_values("rank")["max_act"].is_monotonic_decreasing
        for _, ex in group.iterrows():
            assert max(ex["values"]) == ex["max_act"]
            assert len(ex["positions"]) == len(ex["values"])


def test_classes_families_summary_on_real_outputs(pipeline):
    tmp, *_ = pipeline
    classes = classes_from_files(tmp / "seq_stats.parquet", tmp / "top_examples.parquet", WIDTH)
    assert len(classes) == WIDTH
    assert set(classes["pattern_class"].to_pylist()) <= set(PATTERN_CLASSES)
    families = families_from_files(
        tmp / "seq_stats.parquet", tmp / "swissprot.parquet", tmp / "clusters.parquet", WIDTH
    )
    pq.write_table(families, tmp / "families.parquet")
    assert families["latent"].to_pylist() == list(range(WIDTH))
    summary = summarize(classes, tmp / "families.parquet")
    assert sum(summary["class_counts"].values()) == WIDTH


def test_layer_mismatch_is_reported(pipeline, tmp_path):
    tmp, *_ = pipeline
    with pytest.raises(ValueError, match="trained on layer 2, not 3"):
        encode_mod.latent_stats_from_files(
            EsmSaeFiles(tmp / "esm2_tiny.pt", tmp / "sae.safetensors", 3),
            encode_mod.EvaluationSet(tmp / "swissprot.parquet", tmp / "clusters.parquet"),
            top_examples=3,
            seq_stats_path=tmp_path / "s.parquet",
            top_examples_path=tmp_path / "t.parquet",
            forward=esm_mod.ForwardOptions(300, "cpu"),
        )


@pytest.mark.parametrize("convention", ["fair-esm", "interprot"])
def test_encoder_uses_the_sae_activation_convention(tmp_path, convention):
    """Latents of an interprot SAE come from InterProt's activations, residues only."""
    path = tmp_path / "esm2_t3_tiny.pt"
    esm_mod.save_random_init(path, num_layers=3, embed_dim=32, attention_heads=4, seed=1)
    model, alphabet = esm_mod.load_model(path)
    cfg = sae_mod.SAEConfig(d_model=32, width=64, k=4, activation_convention=convention)
    sae = sae_mod.TopKSAE(cfg, seed=2)
    records = [("a", "MKTAYIAKQR"), ("b", "GSHMLEDPVDAFQ"), ("c", "W")]
    encoder = esm_sae_encoder(model, alphabet, sae, 3, 64, "cpu")
    got = {seq_id: (values, indices) for seq_id, values, indices in encoder(records)}
    for other in ("fair-esm", "interprot"):
        reps = dict(
            esm_mod.layer_representations(
                model, alphabet, records, 3, esm_mod.ForwardOptions(64), convention=other
            )
        )
        same = []
        for seq_id, seq in records:
            with torch.no_grad():
                top = sae.encode(reps[seq_id])
            assert got[seq_id][0].shape == (len(seq), 4)  # residues only
            same.append(np.allclose(got[seq_id][0], top.values.numpy(), atol=1e-5))
        assert all(same) if other == convention else not all(same)


def test_concepts_match_the_fair_esm_reference(pipeline, dense_latents):
    """Concept rows from the streaming encoder equal precision and recall counted on fair-esm's
    dense reference at the row's threshold (a fraction of the train max in seq_stats)."""
    from protsae.sequences.features import SWISSPROT_FEATURES_SCHEMA

    tmp, _, _, reps, ids, seqs = pipeline
    rng = np.random.default_rng(5)
    rows = []
    for i in reps:  # one 5-residue REGION and one ACT_SITE per evaluated protein
        start = int(rng.integers(1, len(seqs[i]) - 5))
        site = int(rng.integers(1, len(seqs[i]) + 1))
        rows += [
            (ids[i], "REGION", start, start + 4, "REGION:r"),
            (ids[i], "ACT_SITE", site, site, "ACT_SITE"),
        ]
    features = pa.Table.from_pylist(
        [dict(accession=a, type=t, start=s, end=e, start_uncertain=False, end_uncertain=False,
              concept=c, qualifiers="{}") for a, t, s, e, c in rows],
        schema=SWISSPROT_FEATURES_SCHEMA,
    )  # fmt: skip
    pq.write_table(features, tmp / "features.parquet")
    table = encode_mod.concepts_from_files(
        EsmSaeFiles(tmp / "esm2_tiny.pt", tmp / "sae.safetensors", LAYER),
        encode_mod.EvaluationSet(tmp / "swissprot.parquet", tmp / "clusters.parquet", chunk_size=7),
        tmp / "features.parquet",
        tmp / "seq_stats.parquet",
        fractions=(0.0, 0.15, 0.5, 0.6, 0.8),
        min_proteins=1,
        forward=esm_mod.ForwardOptions(300, "cpu"),
    )
    assert table.num_rows > 0
    dense = reference_dense(tmp, ids, seqs, reps, dense_latents)
    split = {ids[i]: s for i, s in reps.items()}
    train_max = np.max([a.max(0) for sid, a in dense.items() if split[sid] == "train"], axis=0)
    spans = {}
    for a, _, s, e, c in rows:
        spans.setdefault(c, []).append((a, s - 1, e))
    agree = 0
    for row in table.to_pylist():
        cut = row["threshold"] * train_max[row["latent"]]
        predicted = labelled = found = 0
        for sid, a in dense.items():
            if split[sid] != "test":
                continue
            above = a[:, row["latent"]] > cut
            mask = np.zeros(len(above), bool)
            for acc, s, e in spans[row["concept"]]:
                if acc == sid:
                    mask[s:e] = True
                    found += above[s:e].any()
            predicted += above.sum()
            labelled += (above & mask).sum()
        n_test = sum(split[acc] == "test" for acc, _, _ in spans[row["concept"]])
        assert row["n_test"] == n_test
        precision = labelled / predicted if predicted else 0.0
        agree += row["precision"] == pytest.approx(precision, abs=1e-6) and row[
            "recall"
        ] == pytest.approx(found / n_test, abs=1e-6)
    assert agree >= 0.97 * table.num_rows  # batching may flip a top-k choice on a near tie
