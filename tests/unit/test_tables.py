"""Grid-wide tables: one row per SAE, coordinates read from the path, every class a column."""

from __future__ import annotations

import json

import pytest

from protsae.latents.classes import PATTERN_CLASSES
from protsae.tables import latent_summary_table, sae_coordinates, sae_metrics_table, write_csv


def put(path, payload):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return path


def test_coordinates_from_path():
    assert sae_coordinates("results/sae/esm2_t33_650M_UR50D/L24/k64-w4096/eval.json") == {
        "model": "esm2_t33_650M_UR50D",
        "layer": 24,
        "k": 64,
        "width": 4096,
    }
    with pytest.raises(ValueError, match="not under"):
        sae_coordinates("results/sae/eval.json")


def test_metrics_table_sorted_by_layer_k_width(tmp_path):
    paths = [
        put(tmp_path / "m/L8/k64-w4096/eval.json", {"fve": 0.8, "loss_recovered": 0.9}),
        put(tmp_path / "m/L4/k64-w4096/eval.json", {"fve": 0.7, "loss_recovered": 0.8}),
        put(tmp_path / "m/L4/k16-w4096/eval.json", {"fve": 0.6, "loss_recovered": 0.5}),
    ]
    table = sae_metrics_table(paths)
    assert list(zip(table.layer, table.k, strict=True)) == [(4, 16), (4, 64), (8, 64)]
    assert table.fve.tolist() == [0.6, 0.7, 0.8]
    write_csv(table, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text().splitlines()[0].startswith("model,layer,k,width")


def test_summary_table_has_every_class(tmp_path):
    summary = {"class_counts": {"dead": 3, "point": 2}, "n_latents": 8, "n_family_specific": 1}
    table = latent_summary_table([put(tmp_path / "m/L2/k8-w8/summary.json", summary)])
    row = table.iloc[0]
    assert row["dead"] == 3 and row["point"] == 2 and row["whole"] == 0
    assert set(PATTERN_CLASSES) <= set(table.columns)
    assert row["family_specific"] == 1 and row["n_latents"] == 8


def test_bad_json_names_the_file(tmp_path):
    bad = tmp_path / "m/L2/k8-w8/eval.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{")
    with pytest.raises(ValueError, match="eval.json"):
        sae_metrics_table([bad])
