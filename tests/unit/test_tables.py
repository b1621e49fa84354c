"""Grid-wide tables: one row per SAE, coordinates given beside each file, every class a column."""

from __future__ import annotations

import json

import pytest

from protsae.latents.classes import PATTERN_CLASSES
from protsae.tables import latent_summary_table, sae_metrics_table, write_csv


def put(path, payload):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return path


def sae(layer, k, width, model="m"):
    return {"model": model, "layer": layer, "k": k, "width": width}


def test_metrics_table_sorted_by_layer_k_width(tmp_path):
    # File names say nothing: the coordinates come from the caller, never from the path.
    paths = [
        put(tmp_path / "a.json", {"fve": 0.8, "loss_recovered": 0.9}),
        put(tmp_path / "b.json", {"fve": 0.7, "loss_recovered": 0.8}),
        put(tmp_path / "c.json", {"fve": 0.6, "loss_recovered": 0.5}),
    ]
    table = sae_metrics_table(paths, [sae(8, 64, 4096), sae(4, 64, 4096), sae(4, 16, 2048)])
    assert list(zip(table.layer, table.k, table.width, strict=True)) == [
        (4, 16, 2048),
        (4, 64, 4096),
        (8, 64, 4096),
    ]
    assert table.fve.tolist() == [0.6, 0.7, 0.8]
    write_csv(table, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text().splitlines()[0].startswith("model,layer,k,width")


def test_summary_table_has_every_class(tmp_path):
    summary = {
        "class_counts": {"dead": 3, "point": 2},
        "n_latents": 8,
        "n_family_specific": 1,
        "n_concept_specific": 2,
    }
    table = latent_summary_table([put(tmp_path / "s.json", summary)], [sae(2, 8, 8)])
    row = table.iloc[0]
    assert row["dead"] == 3 and row["point"] == 2 and row["whole"] == 0
    assert set(PATTERN_CLASSES) <= set(table.columns)
    assert row["family_specific"] == 1 and row["n_latents"] == 8
    assert row["concept_specific"] == 2
    assert (row["model"], row["layer"], row["k"], row["width"]) == ("m", 2, 8, 8)


def test_files_and_coordinates_must_pair_up(tmp_path):
    path = put(tmp_path / "e.json", {"fve": 0.5})
    with pytest.raises(ValueError, match="1 files but 2 SAE coordinates"):
        sae_metrics_table([path], [sae(1, 2, 4), sae(1, 2, 8)])


def test_bad_json_names_the_file(tmp_path):
    bad = tmp_path / "m/L2/k8-w8/eval.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{")
    with pytest.raises(ValueError, match="eval.json"):
        sae_metrics_table([bad], [sae(2, 8, 8)])
