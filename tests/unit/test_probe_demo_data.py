"""The demo's probe data files are what make_probe_data.py builds, byte for byte, and load."""

from __future__ import annotations

import importlib.util

import numpy as np

from protsae.probes.data import load_task


def _generator(demo_dir):
    spec = importlib.util.spec_from_file_location(
        "make_probe_data", demo_dir / "make_probe_data.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generator_rebuilds_the_bundled_files_byte_for_byte(demo_dir, tmp_path):
    built = _generator(demo_dir).build(tmp_path)
    assert set(built) == {
        "flip_ss_splits.zip",
        "deeploc_probe.fasta",
        "meltome_splits.zip",
        "cho_expression.csv",
    }
    for name, data in built.items():
        assert (demo_dir / name).read_bytes() == data, f"{name} differs from the generator's output"


def test_demo_files_load_with_the_planted_labels(demo_dir):
    thermo = load_task("thermostability", demo_dir / "meltome_splits.zip")
    share = np.array(
        [sum(c in "ILVFM" for c in r.sequence) / len(r.sequence) for r in thermo.records]
    )
    target = np.array([r.label for r in thermo.records])
    assert np.corrcoef(share, target)[0, 1] > 0.99
    cho = load_task("expression", demo_dir / "cho_expression.csv")
    assert all(("WHCW" in r.sequence) == (r.label == 1) for r in cho.records)
    assert cho.counts["dropped_status"] == 5
    deeploc = load_task("localization", demo_dir / "deeploc_probe.fasta")
    assert deeploc.counts["read"] == 150 and deeploc.split_counts()["test"] == 45
    ss = load_task("secondary_structure", demo_dir / "flip_ss_splits.zip")
    assert ss.split_counts() == {"train": 70, "valid": 15, "test": 15}
