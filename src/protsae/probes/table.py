"""``tables/probes.csv`` (rule ``probes_table``): every probe and control of every task, with
95% bootstrap intervals of the test metric and, on SAE rows, the paired SAE - ESM difference."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from protsae.probes.bootstrap import (
    item_index,
    metric_per_resample,
    percentile_interval,
    resample_counts,
)
from protsae.probes.fit import predictions_path

TABLE_COLUMNS = [
    "layer",
    "task",
    "features",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "selected",
    "selection",
    "n_train",
    "n_test",
    "delta_vs_esm",
    "delta_ci_low",
    "delta_ci_high",
]


_JSON_KEYS = ["task", "features", "metric", "value", "n_train", "n_test"]


def _read_result(path: str | os.PathLike[str]) -> dict:
    try:
        payload = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    missing = [c for c in _JSON_KEYS if c not in payload]
    if missing:
        raise ValueError(f"{path}: not a probe result (no {', '.join(missing)})")
    return payload


def _test_predictions(json_path: str | os.PathLike[str]) -> pd.DataFrame:
    path = predictions_path(json_path)
    if not path.exists():
        raise ValueError(f"{json_path}: its predictions {path.name} are missing")
    frame = pd.read_parquet(path)
    return frame[frame["split"] == "test"].reset_index(drop=True)


def _resampled(
    path: str, frame: pd.DataFrame, items: np.ndarray, counts: np.ndarray, metric: str
) -> np.ndarray:
    """The test metric of one probe's predictions on every bootstrap resample."""
    ids, item = item_index(frame["id"].to_numpy())
    if not np.array_equal(ids, items):
        raise ValueError(f"{path}: its test proteins differ from the other probes of its task")
    return metric_per_resample(
        metric, item, frame["y"].to_numpy(), frame["y_pred"].to_numpy(), counts
    )


def probes_table(
    json_paths: Iterable[str | os.PathLike[str]],
    control_paths: Iterable[str | os.PathLike[str]] = (),
    seed: int = 0,
) -> pd.DataFrame:
    """``tables/probes.csv``: one row per (layer, task, features), sorted, with 95% bootstrap
    intervals of the test metric (proteins resampled, the same draws for every feature set of
    a task) and on SAE rows the paired SAE − ESM difference and its interval. Control rows
    (fitted once per task, no language model) are repeated at every layer of their task."""
    results = [(path, _read_result(path)) for path in json_paths]
    controls = [(path, _read_result(path)) for path in control_paths]
    rows = []
    for task in sorted({r["task"] for _, r in results + controls}):
        task_results = [(p, r) for p, r in results if r["task"] == task]
        task_controls = [(p, r) for p, r in controls if r["task"] == task]
        test = {str(p): _test_predictions(p) for p, _ in task_results + task_controls}
        items, _ = item_index(next(iter(test.values()))["id"].to_numpy())
        counts = resample_counts(len(items), seed=seed)

        def resampled(path: str, metric: str, test=test, items=items, counts=counts) -> np.ndarray:
            return _resampled(path, test[path], items, counts, metric)

        esm_draws = {}
        for path, r in task_results:
            if r["features"] == "esm":
                esm_draws[r["layer"]] = (r["value"], resampled(str(path), r["metric"]))
        layers = sorted({r["layer"] for _, r in task_results})
        for path, r in task_results + task_controls:
            draws = resampled(str(path), r["metric"])
            interval = percentile_interval(draws, r["value"])
            row = {c: r.get(c) for c in _JSON_KEYS}
            row |= {"ci_low": interval.low, "ci_high": interval.high}
            row |= {"selected": r.get("selected"), "selection": r.get("selection")}
            for layer in [r["layer"]] if r["layer"] is not None else layers:
                out = {**row, "layer": layer}
                if r["features"].startswith("sae") and layer in esm_draws:
                    esm_value, esm = esm_draws[layer]
                    delta = percentile_interval(draws - esm, r["value"] - esm_value)
                    out |= {
                        "delta_vs_esm": delta.value,
                        "delta_ci_low": delta.low,
                        "delta_ci_high": delta.high,
                    }
                rows.append(out)
    frame = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    return frame.sort_values(["layer", "task", "features"]).reset_index(drop=True)
