"""The project's own checks: ruff, ruff format, snakefmt and snakemake --lint are clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import ROOT, run_snakemake

BIN = Path(sys.executable).parent
PYTHON_TREES = ("src", "tests", "workflow", "benchmarks")


def assert_clean(tool: str, *args: str) -> None:
    proc = subprocess.run([str(BIN / tool), *args], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_is_clean():
    assert_clean("ruff", "check", *PYTHON_TREES)


def test_ruff_format_is_clean():
    assert_clean("ruff", "format", "--check", *PYTHON_TREES)


def test_snakefmt_is_clean():
    assert_clean("snakefmt", "--check", ".")


def test_snakemake_lint_is_clean():
    proc = run_snakemake("--lint", "--configfile", "config/demo.yaml", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in output, output
