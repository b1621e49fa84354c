"""Which probes a config asks for."""

from __future__ import annotations

import pytest

from protsae.config import ConfigError, SaeSpec
from protsae.probes.config import probe_sae_specs, probe_tasks, task_grid, task_training

PROBES = {
    "layers": [4, 2, 4],
    "sae": {"k": 8, "width": 256},
    "c_grid": [1.0],
    "alpha_grid": [2.0],
    "weight_decay_grid": [0.0],
    "epochs": 3,
    "batch_residues": 64,
    "lr": 0.1,
}


def test_probe_saes_are_the_configured_sae_at_each_layer():
    grid = [SaeSpec(2, 8, 256), SaeSpec(4, 8, 256), SaeSpec(2, 4, 256)]
    assert probe_sae_specs(PROBES, grid) == [SaeSpec(2, 8, 256), SaeSpec(4, 8, 256)]


def test_probe_sae_missing_at_a_layer_is_a_config_error():
    with pytest.raises(ConfigError, match=r"probes\.sae: k8-w256 .* probe layer\(s\) 4"):
        probe_sae_specs(PROBES, [SaeSpec(2, 8, 256), SaeSpec(4, 4, 256)])


def test_tasks_follow_the_sources_and_each_gets_its_own_grid():
    sources = {"uniref50": {}, "expression": {}, "secondary_structure": {}}
    assert probe_tasks(sources) == ["secondary_structure", "expression"]
    assert task_grid(PROBES, "expression") == [1.0]
    assert task_grid(PROBES, "thermostability") == [2.0]
    assert task_grid(PROBES, "secondary_structure") == [0.0]
    assert task_training(PROBES, "localization") == {}
    assert task_training(PROBES, "secondary_structure") == {
        "epochs": 3,
        "batch_rows": 64,
        "lr": 0.1,
    }
