"""Fitting the probes: regularisation chosen on the validation split, metric on test.

method.md's table: a PyTorch linear classifier for residue-level secondary structure,
scikit-learn ``LogisticRegression`` for localization and expression, ``Ridge`` for
thermostability. Features are standardised on the train rows (dense: centred and scaled;
sparse: scaled only, which keeps them sparse and, with an intercept, fits the same model), so
coefficients are per standard deviation and comparable between ESM and SAE probes.

The grid is scored on validation rows only; test rows are touched once, by the chosen probe.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from scipy.stats import spearmanr

from protsae.probes.features import FeatureMatrix

if TYPE_CHECKING:  # torch is imported where the residue classifier runs
    import torch

DEFAULT_C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
DEFAULT_ALPHA_GRID = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
DEFAULT_WEIGHT_DECAY_GRID = (0.0, 1e-4, 1e-3, 1e-2)


@dataclass
class ProbeFit:
    """A fitted probe: its test metric, the regularisation chosen and its coefficients.

    ``coef`` is ``[outputs, features]`` in standardised units: one row per class (multi-class),
    one row for the positive class (binary: ``outputs[0]`` names it) or for the target.
    """

    metric: str
    value: float
    param_name: str
    param: float
    grid: dict[str, float]
    coef: np.ndarray
    intercept: np.ndarray
    outputs: list[str]
    n_train: int
    n_valid: int
    n_test: int
    n_rows: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "metric": self.metric,
            "value": self.value,
            "regularisation": {"name": self.param_name, "value": self.param},
            "validation_scores": self.grid,
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
    for name, rows in (("train", train), ("valid", valid), ("test", test)):
        if len(rows) == 0:
            raise ValueError(f"no {name} rows to fit a probe with")
    return train, valid, test


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho; 0 when either side is constant (no ranking to compare)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def _best(scores: dict[float, float]) -> float:
    """The grid value with the highest validation score; ties go to the first listed."""
    return max(scores, key=lambda value: (scores[value], -list(scores).index(value)))


def fit_logistic(
    features: FeatureMatrix, classes: list[str], c_grid=DEFAULT_C_GRID, seed: int = 0
) -> ProbeFit:
    """Multinomial (or binary) logistic regression, ``C`` chosen by validation accuracy."""
    from sklearn.linear_model import LogisticRegression

    train, valid, test = _splits(features)
    mean, scale = standardiser(features.X, train)
    X_train, X_valid = (transform(features.X, r, mean, scale) for r in (train, valid))
    y = features.y
    models, scores = {}, {}
    for c in c_grid:
        model = LogisticRegression(C=float(c), max_iter=2000, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings at extreme C
            model.fit(X_train, y[train])
        models[c] = model
        scores[c] = float((model.predict(X_valid) == y[valid]).mean())
    best = _best(scores)
    model = models[best]
    accuracy = float((model.predict(transform(features.X, test, mean, scale)) == y[test]).mean())
    present = [classes[int(i)] for i in model.classes_]
    outputs = present if len(present) > 2 else present[1:]
    return _result(
        features, "accuracy", accuracy, "C", best, scores, model.coef_, model.intercept_, outputs
    )


def fit_ridge(features: FeatureMatrix, alpha_grid=DEFAULT_ALPHA_GRID) -> ProbeFit:
    """Ridge regression, ``alpha`` chosen by validation Spearman; Spearman on test."""
    from sklearn.linear_model import Ridge

    train, valid, test = _splits(features)
    mean, scale = standardiser(features.X, train)
    X_train, X_valid = (transform(features.X, r, mean, scale) for r in (train, valid))
    y = features.y
    models, scores = {}, {}
    for alpha in alpha_grid:
        model = Ridge(alpha=float(alpha)).fit(X_train, y[train])
        models[alpha] = model
        scores[alpha] = spearman(model.predict(X_valid), y[valid])
    best = _best(scores)
    model = models[best]
    rho = spearman(model.predict(transform(features.X, test, mean, scale)), y[test])
    return _result(
        features, "spearman", rho, "alpha", best, scores, model.coef_, model.intercept_, ["target"]
    )


def _result(
    features: FeatureMatrix,
    metric: str,
    value: float,
    name: str,
    best: float,
    scores: dict[float, float],
    coef: np.ndarray,
    intercept: np.ndarray,
    outputs: list[str],
) -> ProbeFit:
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    intercept = np.atleast_1d(np.asarray(intercept, dtype=np.float64))
    return ProbeFit(
        metric=metric,
        value=float(value),
        param_name=name,
        param=float(best),
        grid={repr(float(k)): float(v) for k, v in scores.items()},
        coef=coef,
        intercept=intercept,
        outputs=list(outputs),
        n_train=features.n_records["train"],
        n_valid=features.n_records["valid"],
        n_test=features.n_records["test"],
        n_rows={s: int((features.split == s).sum()) for s in ("train", "valid", "test")},
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

    def __call__(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
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


def _accuracy(
    layer: torch.nn.Linear, batches: _Batches, rows: np.ndarray, batch_rows: int
) -> float:
    import torch

    correct = 0
    with torch.no_grad():
        for start in range(0, len(rows), batch_rows):
            x, y = batches(rows[start : start + batch_rows])
            correct += int((layer(x).argmax(dim=1) == y).sum())
    return correct / max(len(rows), 1)


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
    """A PyTorch linear classifier over residue rows, weight decay chosen by validation accuracy.

    Rows are only the resolved residues (see :func:`protsae.probes.features.residue_features`),
    so masked residues are never trained or scored on. Minibatches are read and standardised
    one at a time: memory is a batch, not the task.
    """

    train, valid, test = _splits(features)
    mean, scale = standardiser(features.X, train)
    batches = _Batches(features, mean, scale, device)
    n_features, n_classes = features.X.shape[1], len(classes)
    layers, scores = {}, {}
    for decay in weight_decay_grid:
        layer = _train_linear(
            batches, train, n_features, n_classes, decay, epochs, batch_rows, lr, seed, device
        )
        layers[decay] = layer
        scores[decay] = _accuracy(layer, batches, valid, batch_rows)
    best = _best(scores)
    layer = layers[best]
    value = _accuracy(layer, batches, test, batch_rows)
    coef = layer.weight.detach().cpu().double().numpy()
    intercept = layer.bias.detach().cpu().double().numpy()
    return _result(
        features, "accuracy", value, "weight_decay", best, scores, coef, intercept, classes
    )
