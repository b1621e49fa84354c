"""`protsae plan` against the workflow itself: the same jobs, the same config errors, and the
demo's disk estimate against what a finished demo actually left behind."""

from __future__ import annotations

import pytest
import yaml

from protsae.cli import main
from protsae.costs import build_plan
from protsae.plan import load_config, schema_path

from .conftest import ROOT, run_snakemake
from .test_dag import job_counts


def plan_jobs(config_path, monkeypatch) -> dict[str, int]:
    monkeypatch.chdir(ROOT)  # local sources are relative to the working directory
    return build_plan(load_config(config_path, schema_path())).jobs


@pytest.mark.parametrize("name", ["demo", "config"])
def test_jobs_per_rule_equal_the_dry_run(name, demo_config, monkeypatch):
    path = demo_config() if name == "demo" else ROOT / "config" / "config.yaml"
    proc = run_snakemake("-n", "--configfile", str(path), "--cores", "1", "--forceall")
    dry = job_counts(proc.stdout)
    planned = plan_jobs(path, monkeypatch)
    # Every rule the plan prices has the dry run's count; rules of stages the plan does not
    # model yet would show here as missing keys in `planned` and are reported, not hidden.
    assert {rule: dry.get(rule, 0) for rule in planned} == planned
    unpriced = sorted(set(dry) - set(planned))
    print("rules the plan does not price:", unpriced)


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
    # the file first (protsae.plan.load_config), then the lines the workflow stops with
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
