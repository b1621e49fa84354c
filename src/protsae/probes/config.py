"""What a config asks of the probes: which tasks run, which SAE each probe layer uses.

Kept free of torch and scikit-learn so the Snakefile can import it while building the DAG.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from protsae.config import ConfigError, SaeSpec

TASKS = ("secondary_structure", "localization", "thermostability", "expression")


def probe_tasks(sources: dict[str, Any]) -> list[str]:
    """The probe tasks whose data source the config names, in a fixed order."""
    return [task for task in TASKS if task in sources]


def probe_sae_specs(probes: dict[str, Any], saes: Iterable[SaeSpec]) -> list[SaeSpec]:
    """``probes.sae`` at every probe layer; a ConfigError when one is not in the SAE grid."""
    k, width = probes["sae"]["k"], probes["sae"]["width"]
    grid = set(saes)
    specs = [SaeSpec(layer, k, width) for layer in sorted(set(probes["layers"]))]
    missing = [spec.layer for spec in specs if spec not in grid]
    if missing:
        raise ConfigError(
            f"invalid config:\n  config key probes.sae: k{k}-w{width} is not an SAE of the grid "
            f"(sae.sweeps or sae.pretrained) at probe layer(s) {', '.join(map(str, missing))}"
        )
    return specs


def task_grid(probes: dict[str, Any], task: str) -> list[float]:
    """The regularisation grid of ``task``'s probe (C, alpha or weight decay)."""
    if task == "secondary_structure":
        return list(probes["weight_decay_grid"])
    if task == "thermostability":
        return list(probes["alpha_grid"])
    return list(probes["c_grid"])


def task_training(probes: dict[str, Any], task: str) -> dict[str, float]:
    """Training settings the task's probe uses (only the PyTorch residue classifier has any)."""
    if task != "secondary_structure":
        return {}
    return {"epochs": probes["epochs"], "batch_rows": probes["batch_residues"], "lr": probes["lr"]}
