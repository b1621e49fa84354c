"""One control of a probe task (rule ``probe_control``): the majority class or mean target, or
amino-acid composition through the task's own probe, fitted without a language model."""

from __future__ import annotations

import os

from protsae.probes.features import composition_features
from protsae.probes.fit import ProbeSettings, fit_probe, log_fit, predictions_table, write_probe
from protsae.probes.linear import ProbeFit, majority_fit
from protsae.probes.tasks import read_task_data

#: The two controls every task reports beside ESM and SAE (method.md, turn 3).
CONTROLS = ("majority", "composition")


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
    log_fit(data.task, control, fit)
    meta = {"task": data.task, "layer": None, "features": control, "classes": data.classes}
    write_probe(fit, meta, json_path, None, predictions_table(data, features, fit))
    return fit
