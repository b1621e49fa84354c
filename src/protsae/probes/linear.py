"""Fitting the probes: regularisation chosen by a continuous score, metric on test.

method.md's table: a PyTorch linear classifier for residue-level secondary structure,
scikit-learn ``LogisticRegression`` for localization and expression, ``Ridge`` for
thermostability. Features are standardised on the rows a model is fitted on (dense: centred
and scaled; sparse: scaled only, which keeps them sparse and, with an intercept, fits the same
model), so coefficients are per standard deviation and comparable between ESM and SAE probes.

Selection (method.md, turn 3): the grid is scored by log-loss (classifiers) or MSE (ridge),
never by accuracy, so a tie on accuracy cannot pick a collapsed model. With a validation split
of at least :data:`MIN_VALIDATION_ITEMS` records holding every train class, models are fitted on
train and scored on validation; otherwise by stratified :data:`CV_FOLDS`-fold cross-validation
over the records of train + validation, and the chosen strength is refitted on all of them.
Test rows are touched once, by the chosen probe. :func:`majority_fit` is the trivial control.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from scipy.stats import spearmanr

from protsae.probes.features import FeatureMatrix

if TYPE_CHECKING:  # torch is imported where the residue classifier runs
    import torch

DEFAULT_C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
DEFAULT_ALPHA_GRID = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
DEFAULT_WEIGHT_DECAY_GRID = (0.0, 1e-4, 1e-3, 1e-2)
MIN_VALIDATION_ITEMS = 50
CV_FOLDS = 5
_EPS = 1e-15


@dataclass
class ProbeFit:
    """A fitted probe: its test metric, the regularisation chosen and its coefficients.

    ``coef`` is ``[outputs, features]`` in standardised units: one row per class (multi-class),
    one row for the positive class (binary: ``outputs[0]`` names it) or for the target.
    ``grid`` maps each grid value to its selection score (lower is better); ``selection`` says
    how it was scored (``validation``, ``cv5``, or ``none`` for a control without a grid).
    ``y_pred`` is the chosen model's prediction for every row of the feature matrix.
    """

    metric: str
    value: float
    param_name: str | None
    param: float | None
    grid: dict[str, float]
    coef: np.ndarray
    intercept: np.ndarray
    outputs: list[str]
    n_train: int
    n_valid: int
    n_test: int
    n_rows: dict[str, int] = field(default_factory=dict)
    selection: str = "validation"
    score: str = "log_loss"
    y_pred: np.ndarray | None = None

    def summary(self) -> dict:
        return {
            "metric": self.metric,
            "value": self.value,
            "regularisation": {"name": self.param_name, "value": self.param},
            "selected": self.param,
            "selection": self.selection,
            "selection_score": self.score,
            "selection_scores": self.grid,
            "outputs": self.outputs,
            "n_train": self.n_train,
            "n_valid": self.n_valid,
            "n_test": self.n_test,
            "n_rows": self.n_rows,
            "n_features": int(self.coef.shape[1]),
        }


def standardiser(X: np.ndarray | sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) from ``rows`` of ``X``; mean is zero for sparse ``X``; constant columns scale 1."""
    if sp.issparse(X):
        sub = X[rows]
        mean = np.asarray(sub.mean(axis=0)).ravel()
        sq = np.asarray(sub.multiply(sub).mean(axis=0)).ravel()
        scale = np.sqrt(np.maximum(sq - mean**2, 0.0))
        mean = np.zeros_like(mean)
    else:
        mean = np.zeros(X.shape[1])
        sq = np.zeros(X.shape[1])
        for start in range(0, len(rows), 65536):
            block = np.asarray(X[rows[start : start + 65536]], dtype=np.float64)
            mean += block.sum(axis=0)
            sq += (block**2).sum(axis=0)
        mean /= max(len(rows), 1)
        scale = np.sqrt(np.maximum(sq / max(len(rows), 1) - mean**2, 0.0))
    scale[scale < 1e-12] = 1.0
    return mean.astype(np.float32), scale.astype(np.float32)


def transform(
    X: np.ndarray | sp.csr_matrix, rows: np.ndarray, mean: np.ndarray, scale: np.ndarray
) -> np.ndarray | sp.csr_matrix:
    """Standardised ``X[rows]``."""
    if sp.issparse(X):
        return (X[rows] @ sp.diags(1.0 / scale)).tocsr().astype(np.float32)
    return ((np.asarray(X[rows], dtype=np.float32) - mean) / scale).astype(np.float32)


def _splits(features: FeatureMatrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    train, valid, test = (features.rows(s) for s in ("train", "valid", "test"))
    for name, rows in (("train", train), ("test", test)):
        if len(rows) == 0:
            raise ValueError(f"no {name} rows to fit a probe with")
    return train, valid, test


@dataclass
class SelectionPlan:
    """How the grid is scored: ``folds`` of (fit rows, score rows), and the rows the chosen
    strength is finally fitted on."""

    method: str
    folds: list[tuple[np.ndarray, np.ndarray]]
    final_rows: np.ndarray


def selection_plan(features: FeatureMatrix, stratify: bool, seed: int = 0) -> SelectionPlan:
    """Validation split when it has >= MIN_VALIDATION_ITEMS records and every train class
    (``stratify``: a classifier); otherwise CV_FOLDS-fold CV over train + validation records,
    stratified by class for protein-level classifiers, seeded."""
    from sklearn.model_selection import KFold, StratifiedKFold

    train, valid, _ = _splits(features)
    n_valid_items = len(np.unique(features.record[valid]))
    lacks_class = stratify and not set(np.unique(features.y[train])) <= set(
        np.unique(features.y[valid])
    )
    if n_valid_items >= MIN_VALIDATION_ITEMS and not lacks_class:
        return SelectionPlan("validation", [(train, valid)], train)
    pool = np.sort(np.concatenate([train, valid]))
    records, first = np.unique(features.record[pool], return_index=True)
    n_splits = min(CV_FOLDS, len(records))
    if n_splits < 2:
        raise ValueError(f"{len(records)} train + validation record(s): too few to select on")
    per_record = len(records) == len(pool)  # protein rows: one row per record
    labels = features.y[pool][first] if stratify and per_record else None
    if labels is not None and np.bincount(labels.astype(np.int64)).max() >= n_splits:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    else:  # residue rows, regression, or no class with n_splits members
        splitter, labels = KFold(n_splits=n_splits, shuffle=True, random_state=seed), None
    folds = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "least populated class has only 1 member"
        split = splitter.split(records, labels) if labels is not None else splitter.split(records)
        for fit_records, _ in split:
            in_fit = np.isin(features.record[pool], records[fit_records])
            folds.append((pool[in_fit], pool[~in_fit]))
    return SelectionPlan(f"cv{n_splits}", folds, pool)


def _choose(
    grid: Sequence[float],
    fit: Callable[[float, np.ndarray], Any],
    score: Callable[[Any, np.ndarray], float],
    plan: SelectionPlan,
) -> tuple[float, dict[float, float]]:
    """The grid value with the lowest mean score over the plan's folds (ties: first listed)."""
    scores = {}
    for value in grid:
        fold_scores = [score(fit(value, rows), held) for rows, held in plan.folds]
        scores[value] = float(np.mean(fold_scores))
    order = list(grid)
    return min(order, key=lambda v: (scores[v], order.index(v))), scores


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-probability of the true class (``proba`` [rows, all classes]),
    clipped at 1e-15 so a class a fold never saw costs a finite amount."""
    picked = proba[np.arange(len(y)), y.astype(np.int64)]
    return float(-np.mean(np.log(np.clip(picked, _EPS, 1.0))))


def _full_proba(model: Any, X: Any, n_classes: int) -> np.ndarray:
    """``predict_proba`` spread over every class index (absent classes get probability 0)."""
    proba = np.zeros((X.shape[0], n_classes))
    proba[:, model.classes_.astype(np.int64)] = model.predict_proba(X)
    return proba


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho; 0 when either side is constant (no ranking to compare)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def fit_logistic(
    features: FeatureMatrix, classes: list[str], c_grid=DEFAULT_C_GRID, seed: int = 0
) -> ProbeFit:
    """Multinomial (or binary) logistic regression, ``C`` chosen by log-loss."""
    from sklearn.linear_model import LogisticRegression

    X, y = features.X, features.y

    def fit(c: float, rows: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray]:
        mean, scale = standardiser(X, rows)
        model = LogisticRegression(C=float(c), max_iter=2000, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings at extreme C
            model.fit(transform(X, rows, mean, scale), y[rows])
        return model, mean, scale

    def score(fitted: tuple, rows: np.ndarray) -> float:
        model, mean, scale = fitted
        return log_loss(y[rows], _full_proba(model, transform(X, rows, mean, scale), len(classes)))

    plan = selection_plan(features, stratify=True, seed=seed)
    best, scores = _choose(c_grid, fit, score, plan)
    model, mean, scale = fit(best, plan.final_rows)
    y_pred = model.predict(transform(X, np.arange(X.shape[0]), mean, scale))
    test = features.rows("test")
    accuracy = float((y_pred[test] == y[test]).mean())
    present = [classes[int(i)] for i in model.classes_]
    outputs = present if len(present) > 2 else present[1:]
    return _result(
        features, plan, "accuracy", accuracy, "C", best, scores, model.coef_, model.intercept_,
        outputs, "log_loss", y_pred,
    )  # fmt: skip


def fit_ridge(features: FeatureMatrix, alpha_grid=DEFAULT_ALPHA_GRID, seed: int = 0) -> ProbeFit:
    """Ridge regression, ``alpha`` chosen by MSE; Spearman on test."""
    from sklearn.linear_model import Ridge

    X, y = features.X, features.y

    def fit(alpha: float, rows: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray]:
        mean, scale = standardiser(X, rows)
        return Ridge(alpha=float(alpha)).fit(transform(X, rows, mean, scale), y[rows]), mean, scale

    def score(fitted: tuple, rows: np.ndarray) -> float:
        model, mean, scale = fitted
        return float(np.mean((model.predict(transform(X, rows, mean, scale)) - y[rows]) ** 2))

    plan = selection_plan(features, stratify=False, seed=seed)
    best, scores = _choose(alpha_grid, fit, score, plan)
    model, mean, scale = fit(best, plan.final_rows)
    y_pred = model.predict(transform(X, np.arange(X.shape[0]), mean, scale))
    test = features.rows("test")
    rho = spearman(y_pred[test], y[test])
    return _result(
        features, plan, "spearman", rho, "alpha", best, scores, model.coef_, model.intercept_,
        ["target"], "mse", y_pred,
    )  # fmt: skip


def majority_fit(features: FeatureMatrix, classes: list[str] | None) -> ProbeFit:
    """The trivial control: the most frequent class of the fitting rows (train + validation),
    or their mean target; Spearman of a constant prediction is 0."""
    train, valid, test = _splits(features)
    rows = np.concatenate([train, valid])
    y = features.y
    if classes is None:
        constant, metric = float(np.mean(y[rows])), "spearman"
        y_pred = np.full(len(y), constant)
        value = spearman(y_pred[test], y[test])
    else:
        constant, metric = int(np.argmax(np.bincount(y[rows].astype(np.int64)))), "accuracy"
        y_pred = np.full(len(y), constant, dtype=np.int64)
        value = float((y_pred[test] == y[test]).mean())
    plan = SelectionPlan("none", [], rows)
    return _result(
        features, plan, metric, value, None, None, {}, np.zeros((1, 0)), np.array([constant]),
        [classes[constant]] if classes else ["target"], "none", y_pred,
    )  # fmt: skip


def _result(
    features: FeatureMatrix,
    plan: SelectionPlan,
    metric: str,
    value: float,
    name: str | None,
    best: float | None,
    scores: dict[float, float],
    coef: np.ndarray,
    intercept: np.ndarray,
    outputs: list[str],
    score: str,
    y_pred: np.ndarray,
) -> ProbeFit:
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    intercept = np.atleast_1d(np.asarray(intercept, dtype=np.float64))
    fitted_records = len(np.unique(features.record[plan.final_rows]))
    return ProbeFit(
        metric=metric,
        value=float(value),
        param_name=name,
        param=None if best is None else float(best),
        grid={repr(float(k)): float(v) for k, v in scores.items()},
        coef=coef,
        intercept=intercept,
        outputs=list(outputs),
        n_train=fitted_records,
        n_valid=features.n_records["valid"],
        n_test=features.n_records["test"],
        n_rows={s: int((features.split == s).sum()) for s in ("train", "valid", "test")},
        selection=plan.method,
        score=score,
        y_pred=np.asarray(y_pred),
    )


# --------------------------------------------------------------------------- residue level


class _Batches:
    """Standardised minibatches of rows as float32 tensors (dense or CSR ``X``)."""

    def __init__(
        self, features: FeatureMatrix, mean: np.ndarray, scale: np.ndarray, device: str
    ) -> None:
        import torch

        self.X, self.y = features.X, features.y
        self.mean, self.scale, self.device = mean, scale, device
        self.torch = torch

    def __call__(
        self, rows: np.ndarray, keep_order: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not keep_order:
            rows = np.sort(rows)  # sequential reads from a memory-mapped matrix
        block = transform(self.X, rows, self.mean, self.scale)
        if sp.issparse(block):
            block = block.toarray()
        x = self.torch.from_numpy(np.ascontiguousarray(block)).to(self.device)
        y = self.torch.from_numpy(self.y[rows]).to(self.device)
        return x, y


def _train_linear(
    batches: _Batches,
    train: np.ndarray,
    n_features: int,
    n_classes: int,
    weight_decay: float,
    epochs: int,
    batch_rows: int,
    lr: float,
    seed: int,
    device: str,
) -> torch.nn.Linear:
    import torch

    generator = torch.Generator().manual_seed(seed)
    layer = torch.nn.Linear(n_features, n_classes)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(n_classes, n_features, generator=generator) * 0.01)
        layer.bias.zero_()
    layer.to(device)
    optimiser = torch.optim.Adam(
        [
            {"params": [layer.weight], "weight_decay": float(weight_decay)},
            {"params": [layer.bias], "weight_decay": 0.0},
        ],
        lr=lr,
    )
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(train)
        for start in range(0, len(order), batch_rows):
            x, y = batches(order[start : start + batch_rows])
            loss = torch.nn.functional.cross_entropy(layer(x), y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    return layer


def _logits_pass(
    layer: torch.nn.Linear, batches: _Batches, rows: np.ndarray, batch_rows: int
) -> tuple[float, np.ndarray]:
    """(mean cross-entropy, predicted class per row) over ``rows`` in their given order."""
    import torch

    total, predicted = 0.0, []
    with torch.no_grad():
        for start in range(0, len(rows), batch_rows):
            chunk = rows[start : start + batch_rows]
            x, y = batches(chunk, keep_order=True)
            logits = layer(x)
            total += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
            predicted.append(logits.argmax(dim=1).cpu().numpy())
    pred = np.concatenate(predicted) if predicted else np.empty(0, np.int64)
    return total / max(len(rows), 1), pred


def fit_residue_classifier(
    features: FeatureMatrix,
    classes: list[str],
    weight_decay_grid=DEFAULT_WEIGHT_DECAY_GRID,
    epochs: int = 10,
    batch_rows: int = 4096,
    lr: float = 1e-2,
    seed: int = 0,
    device: str = "cpu",
) -> ProbeFit:
    """A PyTorch linear classifier over residue rows, weight decay chosen by cross-entropy.

    Rows are only the resolved residues (see :func:`protsae.probes.features.residue_features`),
    so masked residues are never trained or scored on; CV folds split by protein. Minibatches
    are read and standardised one at a time: memory is a batch, not the task.
    """
    n_features, n_classes = features.X.shape[1], len(classes)

    def fit(decay: float, rows: np.ndarray) -> tuple[Any, _Batches]:
        mean, scale = standardiser(features.X, rows)
        batches = _Batches(features, mean, scale, device)
        layer = _train_linear(
            batches, rows, n_features, n_classes, decay, epochs, batch_rows, lr, seed, device
        )
        return layer, batches

    def score(fitted: tuple, rows: np.ndarray) -> float:
        layer, batches = fitted
        return _logits_pass(layer, batches, rows, batch_rows)[0]

    plan = selection_plan(features, stratify=False, seed=seed)
    best, scores = _choose(weight_decay_grid, fit, score, plan)
    layer, batches = fit(best, plan.final_rows)
    _, y_pred = _logits_pass(layer, batches, np.arange(features.X.shape[0]), batch_rows)
    test = features.rows("test")
    value = float((y_pred[test] == features.y[test]).mean())
    coef = layer.weight.detach().cpu().double().numpy()
    intercept = layer.bias.detach().cpu().double().numpy()
    return _result(
        features, plan, "accuracy", value, "weight_decay", best, scores, coef, intercept,
        classes, "log_loss", y_pred,
    )  # fmt: skip
