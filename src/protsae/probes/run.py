"""One probe job end to end, and the table over all of them (what the workflow scripts call).

``probe_from_files`` reads ``probes/data/{task}.parquet``, encodes it with ESM-2 (and the SAE
for SAE features), fits the task's probe and writes ``{features}.json``,
``{features}.coef.parquet`` and ``{features}-predictions.parquet``; ``control_from_files`` fits
the two controls (``majority``, ``composition``) the same way without a language model;
``probes_table`` gathers everything into ``tables/probes.csv`` with bootstrap intervals.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from protsae.io import write_json, write_parquet
from protsae.probes.bootstrap import (
    item_index,
    metric_per_resample,
    percentile_interval,
    resample_counts,
)
from protsae.probes.data import REGRESSION_TASKS, RESIDUE_TASKS, TaskData, read_task_data
from protsae.probes.features import (
    FeatureMatrix,
    composition_features,
    feature_name,
    task_features,
)
from protsae.probes.fit import (
    DEFAULT_ALPHA_GRID,
    DEFAULT_C_GRID,
    DEFAULT_WEIGHT_DECAY_GRID,
    ProbeFit,
    fit_logistic,
    fit_residue_classifier,
    fit_ridge,
    majority_fit,
)
from protsae.progress import get_logger

#: The two controls every task reports beside ESM and SAE (method.md, turn 3).
CONTROLS = ("majority", "composition")
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
COEF_SCHEMA = pa.schema(
    [("output", pa.string()), ("feature", pa.int32()), ("coefficient", pa.float32())]
)


@dataclass
class ProbeSettings:
    """Grids and training settings of the probes (config ``probes.*``)."""

    c_grid: tuple[float, ...] = DEFAULT_C_GRID
    alpha_grid: tuple[float, ...] = DEFAULT_ALPHA_GRID
    weight_decay_grid: tuple[float, ...] = DEFAULT_WEIGHT_DECAY_GRID
    epochs: int = 10
    batch_rows: int = 4096
    lr: float = 1e-2
    seed: int = 0
    chunk_records: int = 256


def settings_for_task(task: str, grid: Iterable[float], training: dict, seed: int) -> ProbeSettings:
    """ProbeSettings from a rule's params: ``grid`` is the task's own (C, alpha or weight decay)."""
    name = {"secondary_structure": "weight_decay_grid", "thermostability": "alpha_grid"}
    values = tuple(float(v) for v in grid)
    return ProbeSettings(**{name.get(task, "c_grid"): values}, **dict(training), seed=int(seed))


def fit_probe(
    data: TaskData, features: FeatureMatrix, settings: ProbeSettings, device: str = "cpu"
) -> ProbeFit:
    """The task's probe (method.md's table) on ``features``."""
    if data.task in RESIDUE_TASKS:
        return fit_residue_classifier(
            features,
            data.classes,
            settings.weight_decay_grid,
            epochs=settings.epochs,
            batch_rows=settings.batch_rows,
            lr=settings.lr,
            seed=settings.seed,
            device=device,
        )
    if data.task in REGRESSION_TASKS:
        return fit_ridge(features, settings.alpha_grid, settings.seed)
    return fit_logistic(features, data.classes, settings.c_grid, settings.seed)


def predictions_table(data: TaskData, features: FeatureMatrix, fit: ProbeFit) -> pa.Table:
    """Every row's record id, position (-1 per protein), split, label and the probe's prediction."""
    regression = data.classes is None
    value_type = pa.float64() if regression else pa.int32()
    ids = np.array([r.id for r in data.records], dtype=object)[features.record]
    return pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "position": pa.array(features.position, pa.int32()),
            "split": pa.array(features.split, pa.string()),
            "y": pa.array(features.y, value_type),
            "y_pred": pa.array(fit.y_pred, value_type),
        }
    )


def predictions_path(json_path: str | os.PathLike[str]) -> Path:
    """``{features}-predictions.parquet`` beside a probe's ``{features}.json``."""
    path = Path(json_path)
    return path.with_name(f"{path.stem}-predictions.parquet")


def write_probe(
    fit: ProbeFit,
    meta: dict,
    json_path: str | os.PathLike[str],
    coef_path: str | os.PathLike[str] | None,
    predictions: pa.Table | None = None,
) -> None:
    """``{features}.json`` (metric, regularisation, counts, ``meta``), the coefficients and the
    predictions (beside the JSON, see :func:`predictions_path`)."""
    if predictions is not None:
        write_parquet(predictions, predictions_path(json_path))
    if coef_path is None:
        write_json({**meta, **fit.summary()}, json_path)
        return
    n_out, n_features = fit.coef.shape
    table = pa.table(
        {
            "output": np.repeat(np.array(fit.outputs, dtype=object), n_features),
            "feature": np.tile(np.arange(n_features, dtype=np.int32), n_out),
            "coefficient": fit.coef.astype(np.float32).ravel(),
        },
        schema=COEF_SCHEMA,
    )
    write_parquet(table, coef_path)
    write_json({**meta, **fit.summary()}, json_path)


def probe_from_files(
    data_path: str | os.PathLike[str],
    model_path: str | os.PathLike[str],
    layer: int,
    json_path: str | os.PathLike[str],
    coef_path: str | os.PathLike[str],
    sae_path: str | os.PathLike[str] | None = None,
    max_tokens_per_batch: int = 4096,
    settings: ProbeSettings | None = None,
    device: str = "auto",
) -> ProbeFit:
    """Encode one task's records at ``layer`` (ESM, or the SAE at ``sae_path``), fit, write."""
    from protsae.esm import load_model, resolve_device

    settings = settings or ProbeSettings()
    device = resolve_device(device)
    data = read_task_data(data_path)
    model, alphabet = load_model(model_path, device)
    if sae_path is None:
        from protsae.probes.features import esm_encoder

        encode = esm_encoder(model, alphabet, layer, max_tokens_per_batch, device)
        n_features, sparse_k, name = model.embed_dim, None, feature_name()
    else:
        from protsae.latents.encode import load_sae_for_model
        from protsae.probes.features import sae_encoder

        sae = load_sae_for_model(sae_path, model, model_path, layer, device)
        encode = sae_encoder(model, alphabet, sae, layer, max_tokens_per_batch, device)
        n_features, sparse_k = sae.cfg.width, sae.cfg.k
        name = feature_name(sae.cfg.k, sae.cfg.width)
    get_logger().info(
        "probe %s, layer %d, %s features: %d records", data.task, layer, name, len(data.records)
    )
    with tempfile.TemporaryDirectory(prefix="protsae-probe-") as tmp:
        features = task_features(
            data,
            encode,
            n_features,
            sparse_k=sparse_k,
            chunk_records=settings.chunk_records,
            memmap_path=Path(tmp, "residues.npy") if data.task in RESIDUE_TASKS else None,
        )
        fit = fit_probe(data, features, settings, str(device))
        predictions = predictions_table(data, features, fit)
        del features
    _log_fit(data.task, name, fit)
    meta = {"task": data.task, "layer": int(layer), "features": name, "classes": data.classes}
    write_probe(fit, meta, json_path, coef_path, predictions)
    return fit


def _log_fit(task: str, name: str, fit: ProbeFit) -> None:
    get_logger().info(
        "probe %s %s: %s = %.4f (%s %s chosen by %s %s)",
        task,
        name,
        fit.metric,
        fit.value,
        fit.param_name,
        fit.param,
        fit.score,
        fit.selection,
    )


def control_from_files(
    data_path: str | os.PathLike[str],
    control: str,
    json_path: str | os.PathLike[str],
    settings: ProbeSettings | None = None,
) -> ProbeFit:
    """One control of a task: ``majority`` (most frequent class / mean target) or ``composition``
    (amino-acid frequencies, one-hot residue for residue tasks) through the task's own probe and
    selection; writes ``{control}.json`` and its predictions."""
    if control not in CONTROLS:
        raise ValueError(f"unknown probe control {control!r}; expected one of {CONTROLS}")
    settings = settings or ProbeSettings()
    data = read_task_data(data_path)
    features = composition_features(data)
    if control == "majority":
        fit = majority_fit(features, data.classes)
    else:
        fit = fit_probe(data, features, settings)
    _log_fit(data.task, control, fit)
    meta = {"task": data.task, "layer": None, "features": control, "classes": data.classes}
    write_probe(fit, meta, json_path, None, predictions_table(data, features, fit))
    return fit


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
