"""Rerun semantics of the demo, asserted on Snakemake's own plan for a finished run.

The plan comes from `snakemake --summary` (one row per output file of the DAG with its rule
and whether an update is pending): the machine-readable form of a dry run. Config changes
go through a config file that extends config/demo.yaml, as a user would make them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from protsae.config import model_num_layers

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from workflow_runs import (  # noqa: E402
    copy_workflow,
    pending_files,
    shrink_demo,
    snakemake,
    write_config,
)

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

DEMO = shrink_demo(
    yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "demo.yaml").read_text())
)
SMALL = ("--configfile", "config/small.yaml")  # the finished run's config (conftest.finished)
RESULTS = DEMO["results"]
TABLES = {"sae_metrics_table", "latent_summary_table"}
# Aggregates over the grid that any new SAE changes (figures drawn from the tables, the browser)
TABLES |= {"figure_sweep", "figure_sae_quality", "browser_index"}
OWN_FIGURES = {
    "figure_max_activation",
    "figure_best_concepts",
    "figure_steering",
    "browser_sae",
}  # one per SAE, named -L{layer}-k{k}-w{width} (the browser: its folder browser/L{layer}-k{k}-w{width})
SAE_SUBTREE = {
    "train_sae",
    "evaluate_sae",
    "latent_stats",
    "latent_classes",
    "latent_families",
    "latent_concepts",  # per SAE: a new SAE adds only its own concept jobs
    "latent_descriptions",
    "latent_summary",
    "steering_summary",  # the steering jobs it fans out to are known only after latent_families
}


def test_finished_run_has_nothing_to_do(finished: Path):
    assert pending_files(finished, *SMALL) == {}
    done = snakemake(finished, *SMALL, "--dry-run")
    assert "Nothing to be done" in done.stdout + done.stderr


def test_adding_a_layer_runs_only_that_layer_and_the_tables(finished: Path):
    layers = DEMO["sae"]["sweeps"][0]["layers"]
    new = next(n for n in range(1, model_num_layers(DEMO["esm"]) + 1) if n not in layers)

    def add_layer(config):
        config["sae"]["sweeps"][0]["layers"] = [*layers, new]

    config = write_config(finished, "add_layer", add_layer, base="small")
    pending = pending_files(finished, "--configfile", str(config))
    assert pending, "adding a layer scheduled nothing"
    for path, rule in pending.items():
        mine = f"/L{new}/" in path or f"-L{new}-" in path or f"/L{new}-" in path
        assert mine or rule in TABLES, f"{path} ({rule}) should not rerun"
    rules = set(pending.values())
    assert rules == SAE_SUBTREE | TABLES | {"extract_activations"} | OWN_FIGURES
    shards = [p for p, r in pending.items() if r == "extract_activations"]
    assert len(shards) == DEMO["activations"]["shards"]


def test_changing_one_sae_k_runs_only_that_sae(finished: Path):
    sweep = DEMO["sae"]["sweeps"][1]
    layer, width, old_k = sweep["layers"][0], sweep["widths"][0], sweep["ks"][0]
    taken = {k for s in DEMO["sae"]["sweeps"] for k in s["ks"]}
    new_k = next(k for k in range(old_k + 1, 10 * old_k) if k not in taken)

    def change_k(config):
        config["sae"]["sweeps"][1]["ks"] = [new_k, *sweep["ks"][1:]]

    config = write_config(finished, "change_k", change_k, base="small")
    pending = pending_files(finished, "--configfile", str(config))
    subtree = f"/L{layer}/k{new_k}-w{width}/"
    figure = f"-L{layer}-k{new_k}-w{width}."
    browser = f"/L{layer}-k{new_k}-w{width}"
    for path, rule in pending.items():
        assert subtree in path or figure in path or path.endswith(browser) or rule in TABLES, (
            f"{path} ({rule}) should not rerun"
        )
    assert set(pending.values()) == SAE_SUBTREE | TABLES | OWN_FIGURES
    # the browser: the new SAE's folder and the index, no other SAE's folder
    rebuilt = {p for p, r in pending.items() if r == "browser_sae"}
    assert rebuilt == {f"{RESULTS}/browser/L{layer}-k{new_k}-w{width}"}


def test_replacing_swissprot_reruns_its_tables_and_latents_only(finished: Path):
    source = finished / DEMO["sources"]["swissprot"]["url"]
    entries = source.read_text().split("//\n")
    replacement = finished / "resources" / "swissprot_v2.dat"
    replacement.write_text("//\n".join(entries[:-2] + entries[-1:]))  # one entry fewer

    def replace_source(config):
        config["sources"]["swissprot"]["url"] = str(replacement.relative_to(finished))

    config = write_config(finished, "new_swissprot", replace_source, base="small")
    rules = set(pending_files(finished, "--configfile", str(config)).values())
    required = {"download", "parse_swissprot", "cluster_swissprot", "latent_stats"}
    required |= {"latent_classes", "latent_families", "latent_summary", "latent_summary_table"}
    assert required <= rules, f"not rerun: {required - rules}"
    forbidden = {"extract_activations", "train_sae", "evaluate_sae", "sample_uniref50"}
    forbidden |= {"esm_random_init", "pretrain_esm", "sae_metrics_table"}
    assert not forbidden & rules, f"rerun without cause: {forbidden & rules}"


def test_adding_a_multiplier_reruns_only_steering_and_its_summaries(finished: Path):
    multipliers = DEMO.get("steering", {}).get("multipliers", [0.5, 1, 1.5, 2, 4])
    new = max(multipliers) * 2

    def add_multiplier(config):
        config.setdefault("steering", {})["multipliers"] = [*multipliers, new]

    config = write_config(finished, "add_multiplier", add_multiplier, base="small")
    pending = pending_files(finished, "--configfile", str(config))
    steered = list((finished / RESULTS / "steering").glob("*/L*/k*-w*/latent-*.parquet"))
    if not steered:  # no family-specific latent in this demo: nothing reads the multipliers
        assert pending == {}
        return
    # and what draws the summaries: each SAE's steering figure, browser folder and the index
    assert set(pending.values()) == {
        "steer_latent",
        "steering_summary",
        "figure_steering",
        "browser_sae",
        "browser_index",
    }, pending
    assert {p for p, r in pending.items() if r == "steer_latent"} == {
        str(p.relative_to(finished)) for p in steered
    }


def test_killed_training_resumes_from_its_checkpoint(finished: Path, tmp_path: Path):
    """A training job killed mid-run (as a node failure would) resumes on rerun."""
    workdir = tmp_path / "repo"
    shutil.copytree(finished, workdir, symlinks=True)
    layer, width = DEMO["sae"]["sweeps"][0]["layers"][0], DEMO["sae"]["sweeps"][0]["widths"][0]
    taken = {k for s in DEMO["sae"]["sweeps"] for k in s["ks"]}
    k = next(k for k in (16, 12, 20, 24) if k not in taken)
    training = DEMO["sae"]["training"]

    def long_training(config):
        config["sae"]["sweeps"].append({"layers": [layer], "ks": [k], "widths": [width]})
        config["sae"]["training"]["total_tokens"] = training["batch_tokens"] * 600
        config["sae"]["training"]["epochs"] = 100  # many steps to interrupt, not fresh tokens
        config["sae"]["training"]["checkpoint_every"] = 20

    config = str(write_config(workdir, "long_training", long_training, base="small"))
    sae_dir = workdir / RESULTS / "sae"
    target = next(sae_dir.glob(f"*/L{layer}")) / f"k{k}-w{width}" / "sae.safetensors"
    checkpoints = target.parent / "checkpoint"
    args = ["--configfile", config, "--cores", "1", str(target.relative_to(workdir))]
    run = subprocess.Popen(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill takes the script too
    )
    try:
        deadline = time.monotonic() + 180
        # checkpoint.pt itself: the temporary file it is written to shows up first
        while not (checkpoints / "checkpoint.pt").is_file():
            assert run.poll() is None, f"training ended ({run.returncode}) before a checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 180 s"
            time.sleep(0.2)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
    assert not target.exists()

    snakemake(workdir, "--unlock", *args)
    done = snakemake(workdir, "--rerun-incomplete", *args, timeout=600)
    assert target.exists(), done.stderr[-2000:]
    logs = list((workdir / RESULTS / "logs" / "sae").glob(f"*/L{layer}/k{k}-w{width}/train.log"))
    assert len(logs) == 1, logs
    log = logs[0].read_text()
    resumed = [line for line in log.splitlines() if "resuming from" in line]
    assert resumed, f"the rerun did not resume:\n{log[-2000:]}"
    tokens_done = int(resumed[0].split("(")[-1].split()[0].replace(",", ""))
    assert tokens_done > 0


SECTION_CHECK = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import (
    ConfigSettings, DAGSettings, OutputSettings, ResourceSettings, StorageSettings,
)

def sections(node, path):
    # every non-empty mapping, and every list of mappings, in the validated config
    if isinstance(node, dict):
        if node:
            yield path, node
        for key, value in node.items():
            yield from sections(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list) and node and all(isinstance(v, dict) for v in node):
        yield path, node

def offenders(name, params, found):
    for key, value in params.items():
        for path, section in found:
            if value == section:
                yield f"rule {name}: params.{key} holds the config section {path or '<all>'}"

with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
    workflow_api = api.workflow(
        resource_settings=ResourceSettings(cores=1),
        config_settings=ConfigSettings(),
        storage_settings=StorageSettings(),
        snakefile=Path("Snakefile"),
        workdir=Path("."),
    )
    dag_api = workflow_api.dag(DAGSettings())
    dag_api.execute_workflow(executor="dryrun")
    workflow = workflow_api._workflow
    found = list(sections(dict(workflow.config), ""))
    problems = set()
    for rule in workflow.rules:  # literal params, also of rules the demo does not run
        literal = {k: v for k, v in rule.params.items() if not callable(v)}
        problems.update(offenders(rule.name, literal, found))
    for job in workflow.dag.jobs:  # params as jobs see them, functions evaluated
        problems.update(offenders(job.rule.name, dict(job.params.items()), found))
    print(json.dumps({"rules": len(workflow.rules), "jobs": len(workflow.dag.jobs),
                      "problems": sorted(problems)}))
"""


def section_report(workdir: Path) -> dict:
    """Run SECTION_CHECK on the workflow in `workdir`; {rules, jobs, problems}."""
    done = subprocess.run(
        [sys.executable, "-c", SECTION_CHECK],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_no_rule_params_hold_a_whole_config_section(tmp_path: Path):
    """Params hold values, never a section: a section in params reruns every job holding it
    when any key in it changes (docs/design.md, rerun rule)."""
    report = section_report(copy_workflow(tmp_path / "repo"))
    assert report["rules"] > 5 and report["jobs"] > 5, report
    assert report["problems"] == [], "\n".join(report["problems"])


PLANTED = """
config.setdefault("sae", {"training": {"lr": 1, "k": 2}, "sweeps": [{"layers": [1]}]})
config.setdefault("pretrained", {})
rule all:
    input: "a.txt", "b.txt"
rule a:
    output: "a.txt"
    params: training=config["sae"]["training"], lr=config["sae"]["training"]["lr"], none={}
    shell: "touch {output}"
rule b:
    output: "b.txt"
    params: sweeps=lambda wildcards: config["sae"]["sweeps"]
    shell: "touch {output}"
rule not_in_dag:
    output: "c.txt"
    params: everything=config
    shell: "touch {output}"
"""


def test_section_check_finds_planted_sections(tmp_path: Path):
    """The check above catches a literal section, a function returning one, and the whole
    config in a rule outside the DAG, and leaves single values and empty mappings alone."""
    (tmp_path / "Snakefile").write_text(PLANTED)
    report = section_report(tmp_path)
    assert report["problems"] == [
        "rule a: params.training holds the config section sae.training",
        "rule b: params.sweeps holds the config section sae.sweeps",
        "rule not_in_dag: params.everything holds the config section <all>",
    ]
