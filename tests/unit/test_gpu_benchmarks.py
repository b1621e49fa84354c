"""benchmarks/gpu_*.py run end to end on the CPU (``--device cpu --quick``: tiny shapes, bf16
autocast on CPU), so the GPU benchmarks cannot rot while no GPU runs them."""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
RATE = r"[\d,]+ tokens/s"


def run_benchmark(name: str, monkeypatch: pytest.MonkeyPatch, capsys) -> str:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setattr(sys, "argv", [name, "--device", "cpu", "--quick"])
    try:
        runpy.run_path(str(BENCHMARKS / name), run_name="__main__")
    except SystemExit as stop:
        assert stop.code in (0, None), f"{name} exited with {stop.code}"
    return capsys.readouterr().out


def test_gpu_sae_runs_on_cpu(monkeypatch, capsys) -> None:
    out = run_benchmark("gpu_sae.py", monkeypatch, capsys)
    assert "TopK SAE training on cpu" in out and "bf16 autocast" in out
    for line in ("protsae (sparse)", "encoder matmul", "dense baseline"):
        assert re.search(rf"{re.escape(line)}\s*:\s*{RATE}", out), (line, out)


def test_gpu_extraction_runs_on_cpu(monkeypatch, capsys) -> None:
    out = run_benchmark("gpu_extraction.py", monkeypatch, capsys)
    assert out.startswith("device cpu")
    for line in ("protsae layer_representations", "fair-esm full forward", "extract_shard"):
        assert re.search(rf"{re.escape(line)}.*\s{RATE}", out), (line, out)
    error = re.search(r"bf16 vs fp32 vectors: rms error ([\d.e-]+) \(rms value ([\d.e-]+)\)", out)
    assert error, out
    # bf16 moved the vectors (the autocast ran) but by well under 1% of their size.
    assert 0 < float(error.group(1)) < 0.01 * float(error.group(2))
