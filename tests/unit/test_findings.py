"""The findings summary: lines computed from planted tables, rounded to their spread."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from protsae.cli import main
from protsae.findings import FINDINGS, decimals_for, findings, round_to_spread
from protsae.latents.classes import PATTERN_CLASSES
from protsae.steering.summary import SUMMARY_SCHEMA


def test_rounding_follows_the_spread():
    assert decimals_for(0.021) == 2 and decimals_for(0.0021) == 3 and decimals_for(0.3) == 1
    assert round_to_spread(0.95913, 0.0214) == "0.96 ± 0.02"
    assert round_to_spread(0.95913, 0.0031) == "0.959 ± 0.003"


def planted_results(root):
    tables = root / "tables"
    tables.mkdir(parents=True)
    sae = {"model": "m", "layer": 2, "k": 8, "width": 256}
    pd.DataFrame(
        [
            sae
            | {"fve": 0.8123, "l0": 8.0, "loss_recovered": 0.9591, "loss_recovered_std": 0.0214}
            | {"mask_draws": 5}
        ]  # fmt: skip
    ).to_csv(tables / "sae_metrics.csv", index=False)
    counts = dict.fromkeys(PATTERN_CLASSES, 0) | {"periodic": 3, "dead": 10}
    pd.DataFrame([sae | {"n_latents": 256} | counts | {"family_specific": 12}]).to_csv(
        tables / "latent_summary.csv", index=False
    )
    rows = [
        ("esm", 0.24, 0.13, 0.38, None, None, None),
        ("sae-k8-w256", 0.40, 0.27, 0.53, 0.16, -0.07, 0.31),
        ("majority", 0.24, 0.13, 0.38, None, None, None),
        ("composition", 0.33, 0.2, 0.47, None, None, None),
    ]
    pd.DataFrame(
        [
            {"layer": 2, "task": "localization", "features": f, "metric": "accuracy", "value": v}
            | {"ci_low": lo, "ci_high": hi, "n_test": 45, "delta_vs_esm": d}
            | {"delta_ci_low": dl, "delta_ci_high": dh}
            for f, v, lo, hi, d, dl, dh in rows
        ]
    ).to_csv(tables / "probes.csv", index=False)
    steering = root / "steering" / "m" / "L2" / "k8-w256"
    steering.mkdir(parents=True)
    summary = [
        {"scope": "latent", "latent": 1, "kept": True},
        {"scope": "latent", "latent": 2, "kept": False},
    ]
    for low, high, n, value in ((0.0, 0.5, 40, 0.3), (0.5, 0.9, 12, 0.9), (0.9, 1.0, 25, 0.7)):
        summary.append(
            {"scope": "average", "multiplier": 4.0, "bin_low": low, "bin_high": high}
            | {"n_positions": n, "n_latents": 1, "fraction_unchanged": value}
            | {"fraction_baseline_unchanged": 0.95}
        )
    pq.write_table(pa.Table.from_pylist(summary, SUMMARY_SCHEMA), steering / "summary.parquet")
    return root


def test_findings_state_each_result_with_its_spread(tmp_path):
    lines = findings(planted_results(tmp_path / "results"))
    assert lines[0] == (
        "SAE L2-k8-w256: loss recovered 0.96 ± 0.02 (mean ± sd over 5 mask draws); FVE 0.81, L0 8.0"
    )
    assert lines[1].startswith("SAE L2-k8-w256: 12 of 256 latents family-specific")
    (probe,) = [line for line in lines if line.startswith("probe")]
    assert "SAE 0.40 [0.27, 0.53] vs ESM 0.24 [0.13, 0.38]" in probe
    assert "SAE − ESM +0.16 [-0.07, +0.31]: no difference shown" in probe
    assert "majority 0.24, composition 0.33" in probe
    (steer,) = [line for line in lines if line.startswith("steering")]
    assert "(1 of 2 latents kept)" in steer
    # the 12-position bin is never the trend's end; the 25-position one is
    assert (
        "0.30 at conservation 0–0.5 (n=40" in steer and "0.70 at conservation 0.9–1 (n=25" in steer
    )


def test_a_finding_can_be_added_and_absent_tables_print_nothing(tmp_path, monkeypatch, capsys):
    root = tmp_path / "results"
    (root / "tables").mkdir(parents=True)
    assert findings(root) == []
    monkeypatch.setattr("protsae.findings.FINDINGS", [*FINDINGS, lambda results: ["motif: 1"]])
    assert findings(root) == ["motif: 1"]
    assert main(["findings", str(root)]) == 0
    assert "motif: 1" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="no tables/"):
        findings(tmp_path / "nothing")


def test_residue_concepts_count_latents_and_motif_latents(tmp_path):
    from protsae.findings import residue_concepts

    root = tmp_path / "results"
    for name, rows in {
        "k8-w256": [(3, "MOTIF:planted motif A.m1", 0.8), (3, "HELIX", 0.6), (5, "HELIX", 0.7)],
        "k4-w256": [(1, "MOTIF:planted motif B.m2", 0.51), (2, "MOTIF:x", 0.5), (7, "TURN", 0.1)],
    }.items():
        folder = root / "latents" / "m" / "L2" / name
        folder.mkdir(parents=True)
        pd.DataFrame(rows, columns=["latent", "concept", "f1_test"]).to_parquet(
            folder / "concepts.parquet"
        )
    lines = residue_concepts(root)
    assert lines[0].startswith("SAE L2-k4-w256: 1 latents concept-specific") and lines[0].endswith(
        "3 concepts scored), 1 on a MOTIF"
    )  # 0.5 is not above 0.5
    assert lines[1].startswith("SAE L2-k8-w256: 2 latents") and lines[1].endswith("1 on a MOTIF")
    assert lines[2] == "motif-specific latents over 2 SAEs (test F1 > 0.5): 2"
    assert residue_concepts(tmp_path / "none") == []
