"""Broken inputs stop the run before any ESM job, with a message saying what is wrong."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from workflow_runs import copy_workflow, snakemake  # noqa: E402

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _config(workdir: Path, swissprot: str) -> str:
    config = yaml.safe_load((workdir / "config/demo.yaml").read_text())
    config["results"] = "results/bad"
    config["sources"]["swissprot"] = {"url": swissprot}
    (workdir / "config" / "bad.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return "config/bad.yaml"


def test_empty_swissprot_stops_before_any_job(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "repo")
    (workdir / "resources" / "empty.dat").write_bytes(b"")
    config = _config(workdir, "resources/empty.dat")
    done = snakemake(workdir, "--configfile", config, "--cores", "1", "-n", check=False)
    assert done.returncode != 0
    assert "sources.swissprot: resources/empty.dat: it is empty" in done.stdout + done.stderr


def test_unreadable_ft_line_stops_parse_swissprot_naming_the_source(tmp_path: Path) -> None:
    """Issue 26's bad input: an FT location that cannot be read stops parse_swissprot, naming
    the sources key, the entry, the line and the switch; no features table is left behind."""
    workdir = copy_workflow(tmp_path / "repo")
    dat = (ROOT / "resources/demo/uniprot_sprot.dat").read_text()
    good = "FT   MOTIF           111..119\n"
    assert good in dat
    (workdir / "resources" / "bad_ft.dat").write_text(
        dat.replace(good, "FT   MOTIF           111..1x9\n", 1)
    )
    config = _config(workdir, "resources/bad_ft.dat")
    target = "results/bad/sequences/swissprot_features.parquet"
    done = snakemake(workdir, "--configfile", config, "--cores", "1", target, check=False)
    assert done.returncode != 0
    log = (workdir / "results/bad/logs/sequences/parse_swissprot.log").read_text()
    assert "sources.swissprot: resources/bad_ft.dat" in log
    assert "entry SYNF01M001" in log and "cannot read position '1x9'" in log
    assert "sequences.swissprot_invalid: skip" in log
    assert not (workdir / target).exists()


@pytest.mark.heavy  # runs the demo's jobs (probes included) until the cluster job fails
def test_evaluation_set_without_test_cluster_stops_before_any_esm_job(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "repo")
    entry = (ROOT / "resources/demo/uniprot_sprot.dat").read_text().split("//\n")[0] + "//\n"
    accession = entry.split("\nAC   ")[1].split(";")[0]
    twin = entry.replace(accession, "Q00001")  # the same sequence: one cluster
    (workdir / "resources" / "one_cluster.dat").write_text(entry + twin)
    config = _config(workdir, "resources/one_cluster.dat")
    done = snakemake(workdir, "--configfile", config, "--cores", "2", check=False, timeout=900)
    assert done.returncode != 0
    log = (workdir / "results/bad/logs/sequences/cluster_swissprot.log").read_text()
    assert "the evaluation set has no test representative: 2 entries in 1 cluster" in log
    assert not (workdir / "results/bad/activations").exists(), "an ESM job ran"


def test_probe_task_with_one_class_stops_at_probe_data(tmp_path: Path) -> None:
    """Issue 24's bad input: an expression CSV whose proteins all pass stops at probe_data,
    naming the sources key, the user's path and the task; no ESM job runs, nothing is written."""
    from protsae.config import source_file_name

    workdir = copy_workflow(tmp_path / "repo")
    rows = "".join(f"Pass,MKV{'L' * i}W\n" for i in range(30))
    (workdir / "resources" / "one_class.csv").write_text("Status,Construct.seq..aa.\n" + rows)
    config = yaml.safe_load((workdir / "config/demo.yaml").read_text())
    config["results"] = "results/bad"
    config["sources"]["expression"] = {"url": "resources/one_class.csv"}
    (workdir / "config" / "bad.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    target = "results/bad/probes/data/expression.parquet"
    done = snakemake(
        workdir, "--configfile", "config/bad.yaml", "--cores", "1", target, check=False
    )
    assert done.returncode != 0
    link = f"resources/downloads/{source_file_name('expression', 'resources/one_class.csv')}"
    log = (workdir / "results/bad/logs/probes/data/expression.log").read_text()
    assert (
        f"sources.expression: resources/one_class.csv (cached copy {link}): probe task "
        "expression: every labelled record has class 'expressed' (30 records); a probe needs "
        "at least two classes"
    ) in log
    assert not list((workdir / "results/bad/probes/data").glob("expression*"))
