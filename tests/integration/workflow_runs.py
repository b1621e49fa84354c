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


def write_config(workdir: Path, name: str, edit, base: str = "demo") -> Path:
    """Write config/<name>.yaml: config/<base>.yaml as `edit(dict)` changed it."""
    config = yaml.safe_load((workdir / "config" / f"{base}.yaml").read_text())
    edited = edit(config)
    path = workdir / "config" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(edited if edited is not None else config, sort_keys=False))
    return path


def shrink_demo(config: dict) -> dict:
    """The demo's DAG (same sources, layers, SAEs, shards) with SAE training and evaluation
    capped at the demo's own sizes, so tests that run it whole stay within their time budget
    on 2 CPUs even if the demo grows.

    The data, the bundled ESM-2 and the demo's SAE budgets stay as they are: what the
    finished demo must show (tests/workflow/test_demo_outputs.py) rests on the model and the
    SAEs learning the planted families. Tests that need any model at all take `random_esm`.
    """
    training = config["sae"]["training"]
    cap = 200 * training["batch_tokens"]  # total_tokens null (one pass) is capped too
    training["total_tokens"] = min(training["total_tokens"] or cap, cap)
    config["sae"].setdefault("eval", {})
    config["sae"]["eval"]["max_sequences"] = min(config["sae"]["eval"].get("max_sequences", 30), 30)
    probes = config.get("probes") or {}
    if probes.get("layers"):
        probes["layers"] = probes["layers"][-1:]  # every task, one layer
    return config


RANDOM_ESM = {"layers": 4, "embed_dim": 64, "heads": 4, "seed": 0}


def random_esm(config: dict) -> dict:
    """The demo with a seeded random-init ESM-2 instead of its trained one (built in seconds),
    for tests of the workflow's mechanics rather than of what the demo shows."""
    config["esm"].pop("pretrain", None)
    config["esm"]["random_init"] = dict(RANDOM_ESM)
    return config


# ---- comparing two runs' results ------------------------------------------------------

DATA_SUFFIXES = (".parquet", ".json", ".csv", ".safetensors")
RUN_SPECIFIC = ("logs", "benchmarks")  # timings and paths differ between any two runs


def data_files(results: Path) -> set[str]:
    """Relative paths of the data outputs under `results` (tables, JSON, CSV, weights)."""
    return {
        str(p.relative_to(results))
        for p in results.rglob("*")
        if p.is_file()
        and p.suffix in DATA_SUFFIXES
        and not set(p.relative_to(results).parts) & set(RUN_SPECIFIC)
    }


def _close(a, b, rtol: float, atol: float, where: str, out: list[str]) -> None:
    """Append to `out` every place where a and b differ beyond the float tolerance."""
    import math

    import numpy as np

    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            out.append(f"{where}: keys {sorted(set(a) ^ set(b))} differ")
        for key in set(a) & set(b):
            _close(a[key], b[key], rtol, atol, f"{where}.{key}", out)
    elif isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            out.append(f"{where}: lengths {len(a)} != {len(b)}")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _close(x, y, rtol, atol, f"{where}[{i}]", out)
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or not np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
            out.append(f"{where}: arrays differ (shapes {a.shape} {b.shape})")
    elif isinstance(a, float) and isinstance(b, float | int):
        if not (math.isclose(a, b, rel_tol=rtol, abs_tol=atol) or (a != a and b != b)):
            out.append(f"{where}: {a!r} != {b!r}")
    elif a != b:
        out.append(f"{where}: {a!r} != {b!r}")


def _parquet_rows(path: Path):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    columns = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if pa.types.is_fixed_size_binary(column.type) and b"protsae.dtype" in meta:
            # activation vectors: compare as numbers, not bytes
            dtype = np.dtype(meta[b"protsae.dtype"].decode()).newbyteorder("<")
            columns[name] = np.frombuffer(b"".join(column.to_pylist()), dtype=dtype)
        else:
            columns[name] = column.to_pylist()
    return {"schema": str(table.schema.remove_metadata()), "columns": columns}


def load_data(path: Path):
    """A comparable Python view of one data output."""
    if path.suffix == ".parquet":
        return _parquet_rows(path)
    if path.suffix == ".json":
        import json

        return json.loads(path.read_text())
    if path.suffix == ".csv":
        import pandas as pd

        frame = pd.read_csv(path)
        return {"columns": list(frame.columns), "rows": frame.to_dict("records")}
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        return load_file(str(path))
    raise ValueError(f"{path}: not a data output")


def compare_results(a: Path, b: Path, rtol: float = 1e-5, atol: float = 1e-6) -> list[str]:
    """Differences between two runs' data outputs: missing files, then values."""
    files_a, files_b = data_files(a), data_files(b)
    problems = [f"only in {a}: {f}" for f in sorted(files_a - files_b)]
    problems += [f"only in {b}: {f}" for f in sorted(files_b - files_a)]
    for name in sorted(files_a & files_b):
        _close(load_data(a / name), load_data(b / name), rtol, atol, name, problems)
    return problems
