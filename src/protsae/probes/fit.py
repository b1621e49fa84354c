"""One probe job end to end (rule ``probe_fit``).

``probe_from_files`` reads ``probes/data/{task}.parquet``, encodes it with ESM-2 (and the SAE
for SAE features), fits the task's probe and writes ``{features}.json``,
``{features}.coef.parquet`` and ``{features}-predictions.parquet``. The controls
(:mod:`.control`) fit the same way without a language model; :mod:`.table` gathers everything
into ``tables/probes.csv`` with bootstrap intervals.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from protsae.io import write_json, write_parquet
from protsae.probes.features import (
    FeatureMatrix,
    feature_name,
    task_features,
)
from protsae.probes.linear import (
    DEFAULT_ALPHA_GRID,
    DEFAULT_C_GRID,
    DEFAULT_WEIGHT_DECAY_GRID,
    ProbeFit,
    fit_logistic,
    fit_residue_classifier,
    fit_ridge,
)
from protsae.probes.tasks import REGRESSION_TASKS, RESIDUE_TASKS, TaskData, read_task_data
from protsae.progress import get_logger

if TYPE_CHECKING:
    from protsae.esm import ForwardOptions

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
    forward: ForwardOptions | None = None,
    settings: ProbeSettings | None = None,
) -> ProbeFit:
    """Encode one task's records at ``layer`` (ESM, or the SAE at ``sae_path``) with ESM-2 run
    as ``forward`` says (default: 4096 tokens per batch, device "auto"), fit, write."""
    from protsae.esm import ForwardOptions, load_model, resolve_device

    settings = settings or ProbeSettings()
    forward = forward or ForwardOptions()
    max_tokens_per_batch = forward.max_tokens_per_batch
    device = resolve_device(forward.device or "auto")
    data = read_task_data(data_path)
    model, alphabet = load_model(model_path, device)
    if sae_path is None:
        from protsae.probes.features import esm_encoder

        encode = esm_encoder(model, alphabet, layer, max_tokens_per_batch, device)
        n_features, sparse_k, name = model.embed_dim, None, feature_name()
    else:
        from protsae.probes.features import sae_encoder
        from protsae.sae.at_layer import load_sae_for_model

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
    log_fit(data.task, name, fit)
    meta = {"task": data.task, "layer": int(layer), "features": name, "classes": data.classes}
    write_probe(fit, meta, json_path, coef_path, predictions)
    return fit


def log_fit(task: str, name: str, fit: ProbeFit) -> None:
    """Log one fitted probe: its test metric and the regularisation chosen."""
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
