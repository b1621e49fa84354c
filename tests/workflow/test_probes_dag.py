"""The probe part of the DAG: which jobs a config asks for, and what stops it before any job."""

from __future__ import annotations

import yaml

from .conftest import run_snakemake
from .test_dag import job_counts


def test_probe_sae_outside_the_grid_stops_the_run_naming_the_key(demo_config, tmp_path):
    config = demo_config(**{"probes.sae": {"k": 16, "width": 256}})
    proc = run_snakemake("--configfile", str(config), "--cores", "1", check=False)
    assert proc.returncode != 0
    output = proc.stderr + proc.stdout
    assert "config key probes.sae: k16-w256 is not an SAE of the grid" in output
    assert "probe layer(s) 2, 3" in output
    assert not (tmp_path / "results").exists()


def test_only_tasks_with_a_source_are_probed(demo_config):
    config = demo_config(**{"probes.layers": [3]})
    # demo_config cannot delete keys: drop two sources from the written file
    data = yaml.safe_load(config.read_text())
    for name in ("localization", "expression"):
        del data["sources"][name]
    config.write_text(yaml.safe_dump(data))
    proc = run_snakemake("-n", "--configfile", str(config), "--cores", "1", "--forceall")
    counts = job_counts(proc.stdout)
    assert counts["probe_data"] == 2
    assert counts["probe_fit"] == 4  # 1 layer x 2 tasks x (esm, sae)
    assert counts["probe_interpret"] == 2
    assert "L3/secondary_structure/top_latents.parquet" in proc.stdout
    assert "/localization/" not in proc.stdout
