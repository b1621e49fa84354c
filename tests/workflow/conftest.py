"""Helpers for tests that drive the real Snakefile."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from workflow_runs import (  # noqa: E402
    RANDOM_ESM,
    copy_workflow,
    shrink_demo,
    snakemake,
    write_config,
)

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def run_snakemake(*args: str, cwd: Path = ROOT, check: bool = True, timeout: int = 600):
    """Run snakemake on the project's Snakefile; return the completed process."""
    env = dict(os.environ)
    env.pop("SNAKEMAKE_PROFILE", None)
    proc = subprocess.run(
        [*SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@pytest.fixture
def demo_config(tmp_path):
    """Write a copy of config/demo.yaml (results in tmp) with overrides; return its path.

    ``random_esm=True`` swaps the demo's trained ESM-2 for a random-init one (seconds to build)
    for tests that run jobs but do not look at what the model learnt.
    """

    def make(random_esm: bool = False, **overrides):
        config = yaml.safe_load((ROOT / "config/demo.yaml").read_text())
        config["results"] = str(tmp_path / "results")
        if random_esm:
            config["esm"].pop("pretrain", None)
            config["esm"]["random_init"] = dict(RANDOM_ESM)
        for key, value in overrides.items():
            node = config
            *parents, last = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    return make


@pytest.fixture(scope="session")
def finished(tmp_path_factory) -> Path:
    """A private copy of the workflow with the demo (SAE budgets capped, see shrink_demo) run to
    completion with config/small.yaml; shared by the tests that read or replan it."""
    workdir = copy_workflow(tmp_path_factory.mktemp("rerun") / "repo")
    write_config(workdir, "small", shrink_demo)
    # probes, steering, figures and the browser make this the longest run of the suite
    snakemake(workdir, "--configfile", "config/small.yaml", "--cores", "2", timeout=1800)
    return workdir
