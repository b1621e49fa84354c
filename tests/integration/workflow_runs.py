"""Helpers for tests that run Snakemake on a private copy of this repository's workflow.

A copy keeps each test's results, downloads, logs and `.snakemake/` metadata out of the
working tree, and lets a test edit config files freely.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
# What a run needs: the workflow, its config and library, the profiles (with the root symlink)
# and the bundled inputs; never results/, resources/downloads/ or .snakemake/.
WORKFLOW_ITEMS = (
    "Snakefile",
    "workflow",
    "config",
    "src",
    "profiles",
    "slurm",
    "envs",
    "resources",
)
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "downloads", ".snakemake", "*.egg-info")


def copy_workflow(dst: Path) -> Path:
    """Copy the workflow's files into `dst` (created), keeping symlinks as links."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_ITEMS:
        src = REPO / name
        if src.is_symlink():
            os.symlink(os.readlink(src), dst / name)
        elif src.is_dir():
            shutil.copytree(src, dst / name, symlinks=True, ignore=SKIP)
        elif src.exists():
            shutil.copy2(src, dst / name)
    return dst


def snakemake(
    workdir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run `python -m snakemake ARGS` in `workdir`; stdout and stderr are kept apart."""
    cmd = [sys.executable, "-m", "snakemake", *args]
    done = subprocess.run(
        cmd,
        cwd=workdir,
        env=env if env is not None else os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({done.returncode}) in {workdir}\n"
            f"--- stdout ---\n{done.stdout[-4000:]}\n--- stderr ---\n{done.stderr[-8000:]}"
        )
    return done


def pending_files(workdir: Path, *args: str, **kw) -> dict[str, str]:
    """{output file: rule} for every file a run would (re)create, from `--summary`'s plan column.

    `--summary` is Snakemake's machine-readable dry run: one TSV row per output file of the
    DAG, naming its rule, its status and whether an update is pending.
    """
    done = snakemake(workdir, "--summary", *args, **kw)
    rows = csv.DictReader(io.StringIO(done.stdout), delimiter="\t")
    if rows.fieldnames is None or "plan" not in rows.fieldnames:
        raise AssertionError(f"no --summary table in snakemake's output:\n{done.stdout[-2000:]}")
    return {r["output_file"]: r["rule"] for r in rows if r["plan"] != "no update"}


def pending_rules(workdir: Path, *args: str, **kw) -> Counter:
    """How many files of each rule a run would (re)create."""
    return Counter(pending_files(workdir, *args, **kw).values())


JOB_HEADER = re.compile(r"^(localrule|rule|checkpoint|localcheckpoint) (\w+):$", re.MULTILINE)
SLURM_SUBMIT = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+)")


def job_headers(log: str) -> list[tuple[str, str]]:
    """(kind, rule) for every job block Snakemake printed, e.g. ('localrule', 'all')."""
    return JOB_HEADER.findall(log)


def write_config(workdir: Path, name: str, edit) -> Path:
    """Write config/<name>.yaml: config/demo.yaml as `edit(dict)` changed it."""
    config = yaml.safe_load((workdir / "config" / "demo.yaml").read_text())
    edited = edit(config)
    path = workdir / "config" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(edited if edited is not None else config, sort_keys=False))
    return path
