"""Family specificity with planted latents; the family-specific list; the per-SAE summary."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from protsae.latents import (
    PATTERN_CLASSES,
    EvalRecord,
    EvaluationFamilies,
    f1_sweep,
    families_from_files,
    family_specific_latents,
    family_specificity,
    stream_latent_stats,
    summarize,
    summary_from_files,
)

N = 300
FAM_A, FAM_B = "IPR000100", "IPR000200"
OTHER = [f"IPR0009{i:02d}" for i in range(10)]
WIDTH = 8
LATENT = {
    "family_a": 0,
    "random": 1,
    "second_family": 2,
    "test_only": 3,
    "dead": 4,
    "no_family": 5,
    "family_a_weak": 6,
    "test_peak_elsewhere": 7,
}


def planted_set(seed: int = 0):
    """Sequences, splits, families and each (latent, sequence) max activation."""
    rng = np.random.default_rng(seed)
    ids = [f"Q{i:04d}" for i in range(N)]
    split = ["test" if i % 2 else "train" for i in range(N)]
    families = [[str(rng.choice(OTHER))] if rng.random() < 0.8 else [] for _ in range(N)]
    in_a = [i % 5 == 0 or i % 5 == 1 for i in range(N)]  # 120 members, half in each split
    in_b = [i % 7 == 3 for i in range(N)]
    for i in range(N):
        families[i] = sorted(families[i] + [FAM_A] * in_a[i] + [FAM_B] * in_b[i])
    no_family = next(i for i in range(N) if split[i] == "train" and not families[i])
    both = next(i for i in range(N) if split[i] == "train" and in_a[i] and in_b[i])
    b_only_test = next(i for i in range(N) if split[i] == "test" and in_b[i] and not in_a[i])
    acts = np.zeros((WIDTH, N), np.float32)
    for i in range(N):
        if in_a[i]:
            acts[0, i] = rng.uniform(0.5, 1.0)
        elif rng.random() < 0.2:
            acts[0, i] = rng.uniform(0.0, 0.05)  # weak off-family firing: below every threshold
        if rng.random() < 0.3:
            acts[1, i] = rng.uniform(0.01, 1.0)
        if in_b[i]:
            acts[2, i] = rng.uniform(0.6, 0.9)
        if split[i] == "test" and rng.random() < 0.5:
            acts[3, i] = rng.uniform(0.1, 1.0)
        if rng.random() < 0.3:
            acts[5, i] = rng.uniform(0.01, 0.5)
    acts[0, [i for i in range(N) if in_a[i] and split[i] == "test"][:2]] = 0  # 2 missed members
    acts[2, both] = 1.0  # top train sequence of latent 2 is in families A and B
    acts[5, no_family] = 1.0
    # Latent 6: family A high, many others low: the best threshold is neither end of the sweep.
    off = rng.random(N) < 0.5
    acts[6] = np.where(in_a, rng.uniform(0.3, 1.0, N), off * rng.uniform(0.05, 0.35, N))
    # Latent 7: family A in both splits, but one test sequence of family B alone fires 5x
    # higher. The test split must neither pick family B nor shrink the scores of family A.
    acts[7] = np.where(in_a, acts[0], 0)
    acts[7, b_only_test] = 5.0
    return ids, split, families, acts


def write_inputs(tmp_path, seed: int = 0):
    ids, split, families, acts = planted_set(seed)
    pq.write_table(
        pa.table(
            {
                "accession": ids,
                "sequence": ["MKV"] * N,
                "families": pa.array(families, pa.list_(pa.string())),
            }
        ),
        tmp_path / "swissprot.parquet",
    )
    pq.write_table(
        pa.table({"accession": ids, "cluster": ids, "split": split}), tmp_path / "clusters.parquet"
    )
    # One residue carries each latent's planted max; the others stay below it.
    index = {seq_id: i for i, seq_id in enumerate(ids)}

    def encode(records):
        for seq_id, seq in records:
            values = np.zeros((len(seq), WIDTH), np.float32)
            values[0] = acts[:, index[seq_id]]
            values[1] = values[0] / 2
            yield seq_id, values, np.tile(np.arange(WIDTH, dtype=np.int32), (len(seq), 1))

    records = [EvalRecord(i, "MKV", s) for i, s in zip(ids, split, strict=True)]
    stream_latent_stats(
        [records[:100], records[100:]],
        encode,
        WIDTH,
        10,
        tmp_path / "seq_stats.parquet",
        tmp_path / "top_examples.parquet",
    )
    return families, split, acts


@pytest.fixture(scope="module")
def families(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("families")
    write_inputs(tmp)
    table = families_from_files(
        tmp / "seq_stats.parquet", tmp / "swissprot.parquet", tmp / "clusters.parquet", WIDTH
    )
    pq.write_table(table, tmp / "families.parquet")
    return {row["latent"]: row for row in table.to_pylist()}, tmp


def test_latent_planted_on_one_family_is_family_specific(families):
    rows, _ = families
    row = rows[LATENT["family_a"]]
    assert row["family"] == FAM_A
    assert row["f1"] > 0.9 and row["family_specific"]
    assert row["threshold"] == 0.1
    assert row["precision"] == 1.0
    assert row["recall"] == pytest.approx(58 / 60)  # two test members never fire
    assert (row["n_train_positive"], row["n_test_positive"]) == (60, 60)


def test_random_latent_is_not_family_specific(families):
    rows, _ = families
    row = rows[LATENT["random"]]
    assert row["family"] is not None
    assert row["f1"] < 0.5 and not row["family_specific"]


def test_threshold_is_chosen_on_train_and_reported_on_test(families):
    rows, tmp = families
    _, split, fams, acts = planted_set()
    row = rows[LATENT["family_a_weak"]]
    score = acts[6] / acts[6][np.array(split) == "train"].max()
    member = np.array([FAM_A in f for f in fams])
    train = np.array([s == "train" for s in split])
    thresholds = np.round(np.arange(1, 10) * 0.1, 1)
    f1_train = [
        2 * (member & train & (score >= t)).sum() / ((train & (score >= t)).sum() + 60)
        for t in thresholds
    ]
    assert row["threshold"] == thresholds[int(np.argmax(f1_train))]
    assert 0.1 < row["threshold"] < 0.9
    t = row["threshold"]
    tp = (member & ~train & (score >= t)).sum()
    assert row["recall"] == pytest.approx(tp / 60)
    assert row["f1"] == pytest.approx(2 * tp / ((~train & (score >= t)).sum() + 60))


def test_several_families_choose_best_on_train(families):
    rows, _ = families
    row = rows[LATENT["second_family"]]
    assert row["family"] == FAM_B
    assert row["family_specific"]


def test_family_and_normalisation_come_from_the_train_split(families):
    rows, _ = families
    row = rows[LATENT["test_peak_elsewhere"]]
    assert row["family"] == FAM_A  # the top test sequence is in family B only
    assert row["threshold"] == 0.1 and row["family_specific"]
    # Family A's scores keep their train scale; the family-B sequence is one false positive.
    assert row["precision"] == pytest.approx(58 / 59) and row["recall"] == pytest.approx(58 / 60)


@pytest.mark.parametrize("name", ["test_only", "dead", "no_family"])
def test_untestable_latents_have_null_family(families, name):
    rows, _ = families
    row = rows[LATENT[name]]
    assert row["family"] is None and row["f1"] is None and row["family_specific"] is False


def test_one_row_per_latent(families):
    rows, _ = families
    assert sorted(rows) == list(range(WIDTH))


def test_family_specific_latents_order_and_cap(tmp_path):
    table = pa.table(
        {
            "latent": pa.array([5, 2, 9, 1, 7], pa.int32()),
            "f1": [0.8, 0.95, 0.8, 0.99, 0.5],
            "family_specific": [True, True, True, False, False],
        }
    )
    pq.write_table(table, tmp_path / "families.parquet")
    assert family_specific_latents(tmp_path / "families.parquet", None) == [2, 5, 9]
    assert family_specific_latents(tmp_path / "families.parquet", 2) == [2, 5]


def test_f1_sweep_counts_unscored_members():
    score = np.array([1.0, 0.5, 0.15])
    member = np.array([True, False, True])
    f1, precision, recall = f1_sweep(score, member, 4, np.array([0.1, 0.2, 0.9, 1.1]))
    assert recall.tolist() == [0.5, 0.25, 0.25, 0.0]
    assert precision.tolist() == [2 / 3, 0.5, 1.0, 0.0]
    assert f1.tolist() == pytest.approx([4 / 7, 1 / 3, 0.4, 0.0])


def test_summary_counts_every_class(families):
    _, tmp = families
    classes = pa.table(
        {"latent": list(range(WIDTH)), "pattern_class": ["point"] * 6 + ["dead"] * 2}
    )
    pq.write_table(classes, tmp / "classes.parquet")
    summary = summary_from_files(tmp / "classes.parquet", tmp / "families.parquet")
    assert list(summary["class_counts"]) == list(PATTERN_CLASSES)
    assert summary["class_counts"]["point"] == 6 and summary["class_counts"]["dead"] == 2
    assert summary["class_counts"]["whole"] == 0
    assert summary["n_latents"] == WIDTH
    specific = family_specific_latents(tmp / "families.parquet")
    assert summary["family_specific_latents"] == specific
    assert summary["n_family_specific"] == len(specific) >= 2
    with pytest.raises(ValueError, match="unknown pattern class 'blob'"):
        summarize(pa.table({"pattern_class": ["blob"]}), tmp / "families.parquet")


def test_unknown_sequence_in_seq_stats_is_reported(tmp_path):
    write_inputs(tmp_path)
    clusters = pq.read_table(tmp_path / "clusters.parquet")
    pq.write_table(clusters.slice(1), tmp_path / "clusters.parquet")  # drop Q0000
    with pytest.raises(ValueError, match="seq_stats.parquet row group 0: sequence Q0000"):
        families_from_files(
            tmp_path / "seq_stats.parquet",
            tmp_path / "swissprot.parquet",
            tmp_path / "clusters.parquet",
            WIDTH,
        )


def test_scores_are_normalized_by_the_train_max():
    # Train holds the latent's maximum (10); test scores are 0.5 / 0.25 / 0.15 of it.
    evaluation = EvaluationFamilies(
        ["t0", "t1", "t2", "s0", "s1", "s2"],
        ["train"] * 3 + ["test"] * 3,
        [[FAM_A], [FAM_A], [FAM_B], [FAM_A], [FAM_A], [FAM_B]],
    )
    codes = evaluation.codes(pa.array(["t0", "t1", "t2", "s0", "s1", "s2"]), "test")
    acts = np.array([10, 5, 1.5, 5, 2.5, 1.5], np.float32)
    row = family_specificity(1, evaluation, np.zeros(6, np.int32), codes, acts).to_pylist()[0]
    assert row["family"] == FAM_A and row["top_sequence"] == "t0"
    assert row["threshold"] == 0.2  # train F1: 0.8 at 0.1, 1.0 at 0.2 (first best)
    assert (row["f1"], row["precision"], row["recall"]) == (1.0, 1.0, 1.0)


def test_family_tie_on_train_goes_to_smallest_accession():
    ids = ["t0", "t1", "s0", "s1"]
    evaluation = EvaluationFamilies(
        ids, ["train", "train", "test", "test"], [[FAM_B, FAM_A], [], [FAM_B, FAM_A], []]
    )
    codes = evaluation.codes(pa.array(ids), "test")
    acts = np.array([1.0, 0.5, 1.0, 0.5], np.float32)
    row = family_specificity(1, evaluation, np.zeros(4, np.int32), codes, acts).to_pylist()[0]
    assert row["family"] == FAM_A  # A and B have the same members, so the same train F1
    assert row["threshold"] == 0.6 and row["f1"] == 1.0


def test_family_with_too_few_train_members_is_not_testable():
    ids = ["t0", "t1", "t2", "s0", "s1", "s2"]
    fam_c = "IPR000300"  # one train member: the top train sequence itself
    evaluation = EvaluationFamilies(
        ids, ["train"] * 3 + ["test"] * 3, [[fam_c], [], [FAM_A], [fam_c], [], [FAM_A]]
    )
    codes = evaluation.codes(pa.array(ids), "test")
    acts = np.array([1.0, 0.3, 0.2, 0.9, 0.3, 0.2], np.float32)
    lat = np.zeros(6, np.int32)
    only_c = family_specificity(1, evaluation, lat, codes, acts, min_train_members=2).to_pylist()[0]
    assert only_c["family"] == fam_c and only_c["top_sequence"] == "t0"
    assert (only_c["n_train_positive"], only_c["n_test_positive"]) == (1, 1)
    assert only_c["f1"] is None and only_c["threshold"] is None
    assert only_c["family_specific"] is False
    # The same latent is tested when one train member is enough.
    relaxed = family_specificity(1, evaluation, lat, codes, acts, min_train_members=1).to_pylist()[
        0
    ]
    assert relaxed["f1"] == 1.0 and relaxed["family_specific"] is True
