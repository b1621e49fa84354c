"""Probes on planted features: the latent that decides the label must be found, the grid must
never see the test split, and masked residues must never become training rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from protsae.probes.features import FeatureMatrix, residue_features
from protsae.probes.interpret import top_latents
from protsae.probes.linear import fit_logistic, fit_residue_classifier, fit_ridge
from protsae.probes.tasks import ProbeRecord, TaskData

WIDTH, K = 64, 4


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def sparse_latents(
    n: int, rng: np.random.Generator, planted: dict[int, np.ndarray]
) -> sp.csr_matrix:
    """k random background latents per row (small values) plus planted columns."""
    rows = np.repeat(np.arange(n), K)
    cols = np.concatenate([rng.choice(WIDTH, K, replace=False) for _ in range(n)])
    vals = rng.uniform(0.0, 0.5, n * K)
    X = sp.csr_matrix((vals, (rows, cols)), shape=(n, WIDTH)).tolil()
    for latent, column in planted.items():
        X[:, latent] = column[:, None]
    return X.tocsr().astype(np.float32)


def splits(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(np.array(["train", "valid", "test"]), n, p=[0.6, 0.2, 0.2])


def matrix(X, y, split) -> FeatureMatrix:
    counts = {s: int((split == s).sum()) for s in ("train", "valid", "test")}
    return FeatureMatrix(X, y, split, counts)


def test_one_latent_deciding_the_class_is_the_top_coefficient():
    rng = np.random.default_rng(0)
    n, planted = 600, 17
    y = rng.integers(0, 2, n)
    signal = np.where(y == 1, rng.uniform(1.0, 2.0, n), 0.0)
    features = matrix(sparse_latents(n, rng, {planted: signal}), y, splits(n, rng))
    fit = fit_logistic(features, ["not_expressed", "expressed"])
    assert fit.value > 0.95
    assert fit.outputs == ["expressed"]
    assert int(np.argmax(np.abs(fit.coef[0]))) == planted and fit.coef[0, planted] > 0
    classes = pd.DataFrame({"latent": range(WIDTH), "pattern_class": ["point"] * WIDTH})
    families = pd.DataFrame(
        {"latent": [planted], "family": ["IPR000001"], "f1": [0.9], "family_specific": [True]}
    )
    coef = pd.DataFrame(
        {"output": "expressed", "feature": np.arange(WIDTH), "coefficient": fit.coef[0]}
    )
    top = top_latents(coef, classes, families, top_n=3)
    first = top[(top["sign"] == "positive") & (top["rank"] == 0)].iloc[0]
    assert first.latent == planted and first.family == "IPR000001" and first.f1 == 0.9
    assert first.pattern_class == "point"
    assert (top.groupby("sign").size() <= 3).all()
    negative = top[top["sign"] == "negative"]
    assert (negative.coefficient < 0).all() and negative.coefficient.is_monotonic_increasing


def test_multiclass_probe_names_each_class_latent():
    rng = np.random.default_rng(1)
    n, latents = 900, [5, 9, 13]
    y = rng.integers(0, 3, n)
    planted = {
        lat: np.where(y == c, rng.uniform(1.0, 2.0, n), 0.0) for c, lat in enumerate(latents)
    }
    features = matrix(sparse_latents(n, rng, planted), y, splits(n, rng))
    fit = fit_logistic(features, ["a", "b", "c"])
    assert fit.value > 0.95 and fit.outputs == ["a", "b", "c"]
    assert [int(np.argmax(row)) for row in fit.coef] == latents


def test_regression_target_planted_in_one_latent():
    rng = np.random.default_rng(2)
    n, planted = 500, 40
    value = rng.uniform(0.0, 3.0, n)
    y = 50 + 10 * value + rng.normal(0, 0.5, n)
    features = matrix(sparse_latents(n, rng, {planted: value}), y, splits(n, rng))
    fit = fit_ridge(features)
    assert fit.metric == "spearman" and fit.value > 0.9
    assert int(np.argmax(np.abs(fit.coef[0]))) == planted


def _with_new_test_labels(features: FeatureMatrix, y_test: np.ndarray) -> FeatureMatrix:
    y = features.y.copy()
    y[features.split == "test"] = y_test
    return FeatureMatrix(
        features.X, y, features.split, features.n_records, features.record, features.position
    )


@pytest.mark.parametrize("kind", ["logistic", "ridge"])
def test_grid_never_sees_the_test_split(kind):
    """Replacing every test label changes the test metric and nothing the grid chose."""
    rng = np.random.default_rng(3)
    n = 400
    y = rng.integers(0, 2, n) if kind == "logistic" else rng.normal(size=n)
    signal = y + rng.normal(0, 1.0, n)  # a weak signal: the grid has a real choice to make
    features = matrix(sparse_latents(n, rng, {3: signal}).toarray(), y, splits(n, rng))
    n_test = int((features.split == "test").sum())
    other = _with_new_test_labels(
        features, 1 - y[features.split == "test"] if kind == "logistic" else rng.normal(size=n_test)
    )
    fit = fit_logistic if kind == "logistic" else fit_ridge
    args = (["a", "b"],) if kind == "logistic" else ()
    a, b = fit(features, *args), fit(other, *args)
    assert a.param == b.param and a.grid == b.grid
    assert np.array_equal(a.coef, b.coef)
    assert a.value != b.value


def residue_task(rng: np.random.Generator, n_chains: int = 60) -> TaskData:
    records = []
    for i in range(n_chains):
        length = int(rng.integers(20, 60))
        labels = rng.integers(0, 3, length).astype(np.int8)
        mask = rng.random(length) > 0.3
        split = ["train", "train", "train", "valid", "test"][i % 5]
        records.append(ProbeRecord(f"c{i}", "M" * length, split, None, labels, mask))
    return TaskData("secondary_structure", records, ["H", "E", "C"])


def planted_residue_encoder(data: TaskData, latents=(5, 9, 13), sparse: bool = True):
    """Per residue, the latent of its class fires; masked residues get NaN (dense) or a latent
    that contradicts the label (sparse), so a masked residue in training would be seen."""
    by_id = {r.id: r for r in data.records}
    index = {str(i): r for i, r in enumerate(data.records)}

    def encode(pairs):
        for key, _seq in pairs:
            record = index.get(key) or by_id[key]
            labels, mask = record.residue_labels, record.mask
            if sparse:
                idx = np.tile(np.arange(K, dtype=np.int32) + 40, (len(labels), 1))
                vals = np.full((len(labels), K), 0.1, np.float32)
                wrong = (labels + 1) % 3
                idx[:, 0] = np.where(mask, np.take(latents, labels), np.take(latents, wrong))
                vals[:, 0] = 1.5
                yield key, (vals, idx)
            else:
                dense = np.zeros((len(labels), WIDTH), np.float32)
                dense[np.arange(len(labels)), np.take(latents, labels)] = 1.5
                dense[~mask] = np.nan
                yield key, dense

    return encode


@pytest.mark.parametrize("sparse", [True, False])
def test_residue_probe_never_trains_on_masked_residues(sparse):
    rng = np.random.default_rng(4)
    data = residue_task(rng)
    features = residue_features(
        data,
        planted_residue_encoder(data, sparse=sparse),
        WIDTH,
        sparse_k=K if sparse else None,
        chunk_records=7,
    )
    train_records = [r for r in data.records if r.split == "train"]
    assert features.X.shape[0] == sum(int(r.mask.sum()) for r in data.records)
    assert (features.split == "train").sum() == sum(int(r.mask.sum()) for r in train_records)
    fit = fit_residue_classifier(
        features, data.classes, weight_decay_grid=(0.0, 1e-3), epochs=5, batch_rows=256
    )
    assert np.isfinite(fit.coef).all()
    assert fit.value > 0.95
    assert [int(np.argmax(row)) for row in fit.coef] == [5, 9, 13]
    # 12 validation proteins (< 50): chosen by 5-fold CV over proteins, refitted on train + valid
    assert fit.selection == "cv5" and fit.score == "log_loss"
    assert (fit.n_train, fit.n_valid, fit.n_test) == (48, 12, 12)
    assert len(fit.y_pred) == features.X.shape[0]


def test_residue_grid_never_sees_the_test_split():
    rng = np.random.default_rng(5)
    data = residue_task(rng, 30)
    features = residue_features(data, planted_residue_encoder(data), WIDTH, sparse_k=K)
    other = _with_new_test_labels(features, (features.y[features.split == "test"] + 1) % 3)
    kwargs = {"weight_decay_grid": (0.0, 0.1), "epochs": 10, "batch_rows": 64}
    a = fit_residue_classifier(features, data.classes, **kwargs)
    b = fit_residue_classifier(other, data.classes, **kwargs)
    assert a.param == b.param and a.grid == b.grid and np.array_equal(a.coef, b.coef)
    assert a.value > 0.9 > b.value


def test_features_are_encoded_a_chunk_at_a_time():
    rng = np.random.default_rng(6)
    data = residue_task(rng, 25)
    seen = []
    inner = planted_residue_encoder(data)

    def encode(pairs):
        seen.append(len(pairs))
        yield from inner(pairs)

    residue_features(data, encode, WIDTH, sparse_k=K, chunk_records=4)
    assert max(seen) <= 4 and sum(seen) == 25
