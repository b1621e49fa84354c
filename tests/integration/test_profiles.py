"""The profiles resolve the way profiles/README.md says, and give each rule the resources
the cluster needs; checked on Snakemake's own dry runs of the demo (no SLURM needed)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from workflow_runs import REPO, copy_workflow, snakemake

from protsae.config import PASS_PREFIX

pytestmark = pytest.mark.workflow

# The demo extracts its layers 2 and 3 in one pass per shard (activations.layer_passes).
GPU_RULES = (
    "extract_pass_L2_3",
    "train_sae",
    "evaluate_sae",
    "latent_stats",
    "latent_concepts",
    "probe_fit",
)
BLOCK = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):\n((?:    .*\n)+)", re.MULTILINE)
RULE_RESOURCES = re.compile(r"^    resources:\n((?:        .*\n)+)", re.MULTILINE)


def declared_resources(rule: str) -> dict[str, str]:
    """The ``resources:`` a rule states in workflow/rules/*.smk (name=integer entries)."""
    text = "".join(p.read_text() for p in sorted((REPO / "workflow" / "rules").glob("*.smk")))
    if rule.startswith(PASS_PREFIX):  # made in a loop over the groups, as an indented rule
        start = re.search(r"^for _group in LAYER_PASSES:\n", text, re.MULTILINE)
        assert start, "the layer_passes loop not found"
        end = re.compile(r"^\S", re.MULTILINE).search(text, start.end())
        body = text[start.end() : end.start() if end else len(text)]
        body = "\n".join(line[4:] for line in body.splitlines()) + "\n"
        found = RULE_RESOURCES.search(body)
        return dict(re.findall(r"(\w+)=(\d+)", found.group(1))) if found else {}
    start = re.search(rf"^(?:rule|checkpoint) {rule}:\n", text, re.MULTILINE)
    assert start, f"rule {rule} not found"
    end = re.compile(r"^\S", re.MULTILINE).search(text, start.end())
    found = RULE_RESOURCES.search(text[start.end() : end.start() if end else len(text)])
    return dict(re.findall(r"(\w+)=(\d+)", found.group(1))) if found else {}


def planned_resources(dry_run_log: str) -> dict[str, list[dict[str, str]]]:
    """{rule: [resources of each planned job]} parsed from a dry run's job blocks."""
    jobs: dict[str, list[dict[str, str]]] = {}
    for rule, body in BLOCK.findall(dry_run_log):
        fields = dict(line.strip().split(": ", 1) for line in body.splitlines() if ": " in line)
        resources = dict(
            item.split("=", 1) for item in fields.get("resources", "").split(", ") if "=" in item
        )
        resources["threads"] = fields.get("threads", "1")
        jobs.setdefault(rule, []).append(resources)
    return jobs


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("profiles"))


def test_profile_slurm_resolves_at_the_repository_root(workspace: Path):
    done = snakemake(workspace, "--profile", "slurm", "--cores", "all", "--dry-run")
    log = done.stdout + done.stderr
    assert "Using profiles slurm and workflow specific profile profiles/default" in log
    jobs = planned_resources(log)
    assert set(GPU_RULES) <= set(jobs), f"GPU rules missing from the demo DAG: {sorted(jobs)}"
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    for rule in GPU_RULES:
        wanted = profile["set-resources"][rule]
        declared = declared_resources(rule)
        # Stated once: the rule holds gpu, memory and time; the profile only SLURM's CPU mapping.
        assert {"gpu", "mem_mb", "runtime"} <= set(declared), (rule, declared)
        assert not {"gpu", "mem_mb", "runtime"} & set(wanted), (rule, wanted)
        for resources in jobs[rule]:
            assert resources.get("gpu") == declared["gpu"] == "1", (rule, resources)
            assert resources.get("cpus_per_gpu") == str(wanted["cpus_per_gpu"]), (rule, resources)
            # 0 lifts the default cpus_per_task so that sbatch gets --cpus-per-gpu
            assert resources.get("cpus_per_task") == "0", (rule, resources)
            assert resources.get("mem_mb") == declared["mem_mb"], (rule, resources)
            assert resources.get("runtime") == declared["runtime"], (rule, resources)
    for rule, planned in jobs.items():
        if rule in GPU_RULES or rule == "all":
            continue
        for resources in planned:
            # default-resources `cpus_per_task: threads` follows each rule's threads
            assert resources.get("cpus_per_task") == resources["threads"], (rule, resources)
            assert "gpu" not in resources, (rule, resources)


def test_profile_name_needs_the_root_symlink(workspace: Path, tmp_path: Path):
    """Without `slurm -> profiles/slurm`, `--profile slurm` is not found in profiles/."""
    bare = copy_workflow(tmp_path / "bare")
    os.unlink(bare / "slurm")
    done = snakemake(bare, "--profile", "slurm", "--dry-run", check=False)
    assert done.returncode != 0
    assert "profile directory given (slurm)" in done.stderr
    assert os.readlink(workspace / "slurm") == "profiles/slurm"


def test_set_resources_name_existing_rules(workspace: Path):
    """A renamed GPU rule would silently lose its GPU on the cluster."""
    rules = set(snakemake(workspace, "--list-rules").stdout.split())
    # the paper config's rules too: its layer_passes group has a rule of its own
    paper = snakemake(workspace, "--list-rules", "--configfile", "config/config.yaml")
    rules |= set(paper.stdout.split())
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert set(profile["set-resources"]) <= rules
    # extract_activations: layers of no group (none in the demo); the paper's group rule
    others = {"extract_activations", "extract_pass_L4_8_12_16_20_24_28_32"}
    assert set(profile["set-resources"]) == set(GPU_RULES) | others


def test_workflow_profile_sets_nothing_that_would_override_the_cluster_profile():
    """profiles/default is read on every run and wins per key over --profile slurm."""
    default = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
    cluster_keys = {"executor", "jobs", "default-resources", "set-resources", "resources"}
    assert not cluster_keys & set(default)
    assert default["rerun-incomplete"] is True
    assert default["keep-going"] is False
