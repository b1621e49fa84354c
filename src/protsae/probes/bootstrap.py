"""95% bootstrap intervals of probe test metrics, and paired intervals of differences.

method.md (turn 3): 1000 resamples of test items, seeded. An item is a protein: for per-residue
tasks a resample draws proteins and pools their residues, so residues of one chain are never
treated as independent. Every feature set of a task is resampled with the same draws (the
seed and the item order fix them), which is what makes SAE − ESM a paired interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

N_RESAMPLES = 1000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile bootstrap interval."""

    value: float
    low: float
    high: float


def resample_counts(n_items: int, n_resamples: int = N_RESAMPLES, seed: int = 0) -> np.ndarray:
    """``[n_resamples, n_items]``: how often each item is drawn in each resample (with
    replacement, ``n_items`` draws each)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_items, size=(n_resamples, n_items))
    counts = np.zeros((n_resamples, n_items), dtype=np.int64)
    np.add.at(counts, (np.arange(n_resamples)[:, None], draws), 1)
    return counts


def _weighted_spearman(y: np.ndarray, y_pred: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row of ``weights`` (integer repeat counts per item): the Pearson
    correlation of mid-ranks among the repeated items, 0 where either side is constant."""
    out = np.zeros(len(weights))
    for i, w in enumerate(weights):
        keep = w > 0
        a = np.repeat(y[keep], w[keep])
        b = np.repeat(y_pred[keep], w[keep])
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            continue
        ra, rb = rankdata(a), rankdata(b)
        out[i] = np.corrcoef(ra, rb)[0, 1]
    return out


def metric_per_resample(
    metric: str, item: np.ndarray, y: np.ndarray, y_pred: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """The test metric on every resample; ``item[i]`` is row i's item index (0..n_items-1)."""
    n_items = counts.shape[1]
    if metric == "accuracy":
        correct = np.bincount(item, weights=(y == y_pred).astype(np.float64), minlength=n_items)
        rows = np.bincount(item, minlength=n_items).astype(np.float64)
        return (counts @ correct) / np.maximum(counts @ rows, 1.0)
    if metric == "spearman":
        if len(np.unique(item)) != len(item):
            raise ValueError("spearman bootstrap expects one row per item")
        order = np.argsort(item)
        return _weighted_spearman(y[order], y_pred[order], counts)
    raise ValueError(f"unknown probe metric {metric!r}")


def percentile_interval(values: np.ndarray, point: float, level: float = LEVEL) -> Interval:
    """The percentile interval of ``values`` around ``point``."""
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(float(point), float(low), float(high))


def item_index(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct ids, each row's index into them): items in an order every feature set
    of a task shares, whatever order its rows come in."""
    distinct, inverse = np.unique(np.asarray(ids, dtype=object).astype(str), return_inverse=True)
    return distinct, inverse
