"""`protsae plan` against the workflow itself: the same jobs, the same config errors, and the
demo's disk estimate against what a finished demo actually left behind."""

from __future__ import annotations

import pytest
import yaml

from protsae.cli import main
from protsae.config import load_config, schema_path
from protsae.costs.plan import build_plan
from protsae.costs.types import CHECKPOINT_BOUNDED

from .conftest import ROOT, run_snakemake
from .test_dag import job_counts


def plan_jobs(config_path, monkeypatch) -> dict[str, int]:
    monkeypatch.chdir(ROOT)  # local sources are relative to the working directory
    return build_plan(load_config(config_path, schema_path())).jobs


def laptop_config(tmp_path):
    """config/laptop.yaml with its one source a user fetches by hand (the CHO expression CSV,
    no license) replaced by the demo's file of the same layout."""
    config = yaml.safe_load((ROOT / "config" / "laptop.yaml").read_text())
    config["sources"]["expression"]["url"] = str(ROOT / "resources/demo/cho_expression.csv")
    path = tmp_path / "laptop.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.parametrize("name", ["demo", "config", "laptop"])
def test_jobs_per_rule_equal_the_dry_run(name, demo_config, monkeypatch, tmp_path):
    paths = {"config": ROOT / "config" / "config.yaml"}
    path = (
        demo_config()
        if name == "demo"
        else laptop_config(tmp_path)
        if name == "laptop"
        else paths[name]
    )
    proc = run_snakemake("-n", "--configfile", str(path), "--cores", "1", "--forceall")
    dry = job_counts(proc.stdout)
    planned = plan_jobs(path, monkeypatch)
    # Every rule the DAG knows from the config has the dry run's count, and no rule is missing.
    exact = {rule: n for rule, n in planned.items() if rule not in CHECKPOINT_BOUNDED}
    assert {rule: dry.get(rule, 0) for rule in exact} == exact
    assert set(dry) <= set(planned)
    # The per-latent steering jobs wait for the latent_families checkpoint: a dry run from
    # scratch cannot list them, the plan counts their upper bound (max_latents per SAE).
    config = load_config(path, schema_path())
    saes = planned["steering_summary"]
    assert saes == planned["latent_families"]
    cap = config["steering"]["max_latents"]
    assert 0 < planned["steer_latent"] == planned["steering_homologs"] <= cap * saes
    assert planned["steering_blastdb"] == 1
    for rule in CHECKPOINT_BOUNDED:
        assert dry.get(rule, 0) <= planned[rule]


def test_config_error_is_the_workflows_message(demo_config, capsys):
    path = demo_config(
        **{
            "sae.sweeps": [{"layers": [2], "ks": [512], "widths": [256]}],
            "sequences.sample_size": 0,
        }
    )
    proc = run_snakemake("-n", "--configfile", str(path), "--cores", "1", check=False)
    assert proc.returncode != 0
    assert main(["plan", str(path)]) == 1
    message = capsys.readouterr().err.strip().splitlines()
    # the file first (protsae.config.load_config), then the lines the workflow stops with
    assert len(message) >= 2 and message[0] == f"{path}: invalid config:"
    for line in message[1:]:
        assert line.strip() in proc.stderr + proc.stdout


def test_disk_estimate_within_20_percent_of_a_finished_demo(finished, monkeypatch):
    config_path = finished / "config" / "small.yaml"
    results = finished / yaml.safe_load(config_path.read_text())["results"]
    monkeypatch.chdir(finished)
    plan = build_plan(load_config(config_path, schema_path()))
    actual = sum(p.stat().st_size for p in results.rglob("*") if p.is_file())
    assert plan.disk_total == pytest.approx(actual, rel=0.2)
    shards = sum(p.stat().st_size for p in (results / "activations").rglob("*.parquet"))
    assert plan.disk["activations/ (all layers)"] == pytest.approx(shards, rel=0.1)
