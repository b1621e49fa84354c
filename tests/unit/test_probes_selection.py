"""Probe selection, controls and bootstrap intervals (method.md, turn 3), on planted answers and
against scikit-learn / SciPy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import bootstrap, spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss as sklearn_log_loss

from protsae.probes.bootstrap import (
    metric_per_resample,
    percentile_interval,
    resample_counts,
)
from protsae.probes.features import FeatureMatrix, composition_features
from protsae.probes.linear import (
    fit_logistic,
    fit_ridge,
    log_loss,
    majority_fit,
    selection_plan,
    standardiser,
    transform,
)
from protsae.probes.tasks import ProbeRecord, TaskData

GRID = (1e-3, 1e-2, 1.0, 10.0)  # strongest regularisation first, as the config lists C


def tie_set(seed: int = 0) -> FeatureMatrix:
    """Class 1 (20%) separated on feature 0. Validation: 40 clear class-0 items, 5 class-0 items
    at 1.4 (past a fitted boundary) and 5 class-1 items: a fitted model makes 5 errors, the
    collapsed all-class-0 model makes 5 too, so accuracy ties at 0.9 across the grid."""
    rng = np.random.default_rng(seed)
    x_train = np.concatenate([rng.uniform(-0.5, 0.5, 80), rng.uniform(1.6, 2.4, 20)])
    x_valid = np.concatenate([np.zeros(40), np.full(5, 1.4), np.full(5, 2.0)])
    x_test = np.concatenate([rng.uniform(-0.5, 0.5, 16), rng.uniform(1.6, 2.4, 4)])
    x = np.concatenate([x_train, x_valid, x_test])
    X = np.column_stack([x, rng.normal(0, 1, (len(x), 3))]).astype(np.float32)
    y = np.array([0] * 80 + [1] * 20 + [0] * 45 + [1] * 5 + [0] * 16 + [1] * 4)
    split = np.array(["train"] * 100 + ["valid"] * 50 + ["test"] * 20)
    return FeatureMatrix(X, y, split, {"train": 100, "valid": 50, "test": 20})


def test_accuracy_tie_at_the_strongest_regularisation_does_not_collapse_the_probe():
    features = tie_set()
    train, valid, test = (features.rows(s) for s in ("train", "valid", "test"))
    mean, scale = standardiser(features.X, train)
    accuracy, predicted_classes = {}, {}
    for c in GRID:  # what selection by validation accuracy saw
        model = LogisticRegression(C=c, max_iter=2000).fit(
            transform(features.X, train, mean, scale), features.y[train]
        )
        predicted = model.predict(transform(features.X, valid, mean, scale))
        accuracy[c] = (predicted == features.y[valid]).mean()
        predicted_classes[c] = set(predicted.tolist())
    assert len(set(accuracy.values())) == 1  # the planted tie ...
    assert predicted_classes[GRID[0]] == {0}  # ... which the first listed C wins collapsed
    fit = fit_logistic(features, ["a", "b"], c_grid=GRID)
    assert fit.selection == "validation" and fit.score == "log_loss"
    assert fit.param != GRID[0] and min(fit.grid.values()) == fit.grid[repr(float(fit.param))]
    assert set(fit.y_pred[test].tolist()) == {0, 1} and fit.value == 1.0


def test_log_loss_equals_scikit_learn_and_charges_unseen_classes():
    rng = np.random.default_rng(1)
    proba = rng.dirichlet(np.ones(4), 50)
    y = rng.integers(0, 4, 50)
    assert log_loss(y, proba) == pytest.approx(sklearn_log_loss(y, proba, labels=range(4)))
    proba[:, 3] = 0.0  # a class the fold never saw: finite, large
    y[0] = 3
    assert np.isfinite(log_loss(y, proba)) and log_loss(y, proba) > 30 / 50


def small_validation_set(n_valid: int, seed: int = 2) -> FeatureMatrix:
    rng = np.random.default_rng(seed)
    n = 200 + n_valid + 40
    y = rng.integers(0, 3, n)
    X = (np.eye(3)[y] * 1.5 + rng.normal(0, 1, (n, 3))).astype(np.float32)
    split = np.array(["train"] * 200 + ["valid"] * n_valid + ["test"] * 40)
    return FeatureMatrix(X, y, split, {"train": 200, "valid": n_valid, "test": 40})


def test_small_or_incomplete_validation_selects_by_stratified_cv():
    assert selection_plan(small_validation_set(60), stratify=True).method == "validation"
    plan = selection_plan(small_validation_set(10), stratify=True)
    assert plan.method == "cv5" and len(plan.folds) == 5
    features = small_validation_set(10)
    pool = np.concatenate([features.rows("train"), features.rows("valid")])
    held = np.concatenate([h for _, h in plan.folds])
    assert np.array_equal(np.sort(held), np.sort(pool))  # every item held out exactly once
    assert not np.isin(features.rows("test"), np.concatenate([r for r, _ in plan.folds])).any()
    for _, held_rows in plan.folds:  # stratified: each fold holds every class
        assert set(features.y[held_rows].tolist()) == {0, 1, 2}
    # 60 validation items but one class missing from them: CV as well
    lacking = small_validation_set(60)
    valid = lacking.rows("valid")
    lacking.y[valid] = np.where(lacking.y[valid] == 2, 0, lacking.y[valid])
    assert selection_plan(lacking, stratify=True).method == "cv5"
    fit = fit_logistic(small_validation_set(10), ["a", "b", "c"])
    assert fit.selection == "cv5" and fit.n_train == 210 and fit.value > 0.6


def test_residue_folds_keep_each_protein_whole():
    rng = np.random.default_rng(3)
    record = np.repeat(np.arange(30), 7)
    split = np.where(record < 20, "train", np.where(record < 25, "valid", "test"))
    X = rng.normal(size=(len(record), 4)).astype(np.float32)
    features = FeatureMatrix(X, rng.integers(0, 3, len(record)), split, {}, record)
    plan = selection_plan(features, stratify=False)
    for fit_rows, held_rows in plan.folds:
        assert not set(record[fit_rows]) & set(record[held_rows])


def test_ridge_selects_by_mse():
    rng = np.random.default_rng(4)
    n = 300
    X = rng.normal(size=(n, 30)).astype(np.float32)
    y = X[:, 0] + rng.normal(0, 2.0, n)  # one informative feature of 30: needs shrinkage
    split = np.array(["train"] * 120 + ["valid"] * 100 + ["test"] * 80)
    counts = {"train": 120, "valid": 100, "test": 80}
    fit = fit_ridge(FeatureMatrix(X, y, split, counts), alpha_grid=(1e-3, 10.0, 1e4))
    assert fit.score == "mse" and fit.param == 10.0 and fit.value > 0.3


def protein_task(labels: list[int], sequences: list[str], splits: list[str]) -> TaskData:
    records = [
        ProbeRecord(f"P{i}", s, sp, label=lab)
        for i, (lab, s, sp) in enumerate(zip(labels, sequences, splits, strict=True))
    ]
    return TaskData("localization", records, ["x", "y"])


def test_controls_majority_and_composition():
    data = protein_task(
        [0, 0, 1, 0, 1], ["AAC", "AW", "CCCC", "A", "CW"], ["train"] * 3 + ["test"] * 2
    )
    features = composition_features(data)
    assert features.X.shape == (5, 20)
    assert features.X[0, 0] == pytest.approx(2 / 3) and features.X[0, 1] == pytest.approx(1 / 3)
    assert np.allclose(features.X.sum(axis=1), 1.0)
    majority = majority_fit(features, data.classes)
    assert majority.y_pred.tolist() == [0] * 5 and majority.value == 0.5
    assert majority.outputs == ["x"] and majority.selection == "none" and majority.param is None
    residue = TaskData(
        "secondary_structure",
        [
            ProbeRecord(
                "S",
                "ACW",
                "train",
                residue_labels=np.array([0, 1, 2]),
                mask=np.array([True, False, True]),
            )
        ],
        ["H", "E", "C"],
    )
    one_hot = composition_features(residue)
    assert one_hot.X.tolist() == np.eye(20)[[0, 18]].tolist()  # A and W; C is masked
    assert one_hot.position.tolist() == [0, 2]


def test_bootstrap_intervals_cover_a_planted_accuracy():
    rng = np.random.default_rng(5)
    n, p, covered = 200, 0.7, 0
    for trial in range(200):
        correct = rng.random(n) < p
        draws = metric_per_resample(
            "accuracy", np.arange(n), correct.astype(int), np.ones(n, int),
            resample_counts(n, n_resamples=500, seed=trial),
        )  # fmt: skip
        interval = percentile_interval(draws, correct.mean())
        covered += interval.low <= p <= interval.high
    assert 0.90 <= covered / 200 <= 0.99


def test_paired_interval_covers_a_planted_difference_and_excludes_zero():
    rng = np.random.default_rng(6)
    n = 600
    y = rng.integers(0, 2, n)
    sae = np.where(rng.random(n) < 0.85, y, 1 - y)
    esm = np.where(rng.random(n) < 0.70, y, 1 - y)
    counts = resample_counts(n, seed=0)
    item = np.arange(n)
    diff = metric_per_resample("accuracy", item, y, sae, counts) - metric_per_resample(
        "accuracy", item, y, esm, counts
    )
    interval = percentile_interval(diff, (sae == y).mean() - (esm == y).mean())
    assert interval.low > 0 and interval.low <= 0.15 <= interval.high


def test_bootstrap_agrees_with_scipy_and_pools_residues_by_protein():
    rng = np.random.default_rng(7)
    correct = (rng.random(300) < 0.6).astype(float)
    ours = percentile_interval(
        metric_per_resample(
            "accuracy", np.arange(300), correct, np.ones(300), resample_counts(300)
        ),
        correct.mean(),
    )
    theirs = bootstrap(
        (correct,), np.mean, n_resamples=1000, method="percentile", random_state=0
    ).confidence_interval
    assert ours.low == pytest.approx(theirs.low, abs=0.015)
    assert ours.high == pytest.approx(theirs.high, abs=0.015)
    # residues: a resample weighs each drawn protein's residues together
    item = np.array([0, 0, 0, 1])
    y, y_pred = np.array([1, 1, 1, 1]), np.array([1, 1, 1, 0])
    counts = np.array([[1, 1], [2, 0], [0, 2]])
    assert metric_per_resample("accuracy", item, y, y_pred, counts).tolist() == [0.75, 1.0, 0.0]
    # spearman on a resample equals SciPy's on the repeated items
    y, y_pred = rng.normal(size=40), rng.normal(size=40)
    counts = resample_counts(40, n_resamples=3, seed=1)
    ours = metric_per_resample("spearman", np.arange(40), y, y_pred, counts)
    for row, value in zip(counts, ours, strict=True):
        expected = spearmanr(np.repeat(y, row), np.repeat(y_pred, row)).statistic
        assert value == pytest.approx(expected)
