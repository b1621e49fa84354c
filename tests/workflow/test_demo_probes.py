"""The finished demo's probes: every (layer, task, features) probed, counts that match the
loaded data, and the planted signals of the synthetic thermostability and CHO sets found."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from protsae.config import model_name
from protsae.probes.table import TABLE_COLUMNS

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

TASKS = ["secondary_structure", "localization", "thermostability", "expression"]


@pytest.fixture(scope="module")
def run(finished: Path):
    config = yaml.safe_load((finished / "config/small.yaml").read_text())
    return finished / config["results"], config


def test_probe_table_covers_every_layer_task_and_feature_set(run):
    results, config = run
    table = pd.read_csv(results / "tables/probes.csv")
    assert list(table.columns) == TABLE_COLUMNS
    sae = f"sae-k{config['probes']['sae']['k']}-w{config['probes']['sae']['width']}"
    expected = {
        (layer, task, f)
        for layer in config["probes"]["layers"]
        for task in TASKS
        for f in ("esm", sae, "majority", "composition")
    }
    assert set(zip(table.layer, table.task, table.features, strict=True)) == expected
    assert len(table) == len(expected)
    for task in TASKS:
        counts = json.loads((results / "probes/data" / f"{task}.json").read_text())["counts"]
        rows = table[table.task == task]
        # n_train: records the chosen probe was fitted on (train + valid after CV selection)
        fitted = rows.n_train.where(rows.selection != "cv5", rows.n_train - counts["valid"])
        assert (fitted[rows.selection != "none"] == counts["train"]).all()
        assert (rows.n_test == counts["test"]).all()
        assert counts["kept"] == counts["train"] + counts["valid"] + counts["test"]
        assert (rows.ci_low <= rows.value + 1e-12).all() and (
            rows.value <= rows.ci_high + 1e-12
        ).all()
        assert rows[rows.features == sae].delta_ci_low.notna().all()
    metrics = dict(zip(table.task, table.metric, strict=False))
    assert metrics["thermostability"] == "spearman" and metrics["secondary_structure"] == "accuracy"


def test_planted_labels_are_found(run):
    results, _ = run
    table = pd.read_csv(results / "tables/probes.csv")
    probed = table[table.features.isin(["esm"]) | table.features.str.startswith("sae-")]
    thermo = probed[probed.task == "thermostability"]
    expression = probed[probed.task == "expression"]
    assert (thermo.value > 0.9).all(), thermo
    assert (expression.value > 0.9).all(), expression


def test_top_latents_are_annotated_from_the_latent_tables(run):
    results, config = run
    k, width = config["probes"]["sae"]["k"], config["probes"]["sae"]["width"]
    top_n = config["probes"]["top_latents"]
    model = model_name(config["esm"])
    for layer in config["probes"]["layers"]:
        classes = pq.read_table(
            results / f"latents/{model}/L{layer}/k{k}-w{width}/classes.parquet"
        ).to_pandas()
        pattern = dict(zip(classes.latent, classes.pattern_class, strict=True))
        for task in TASKS:
            folder = results / f"probes/{model}/L{layer}/{task}"
            top = pq.read_table(folder / "top_latents.parquet").to_pandas()
            assert not top.empty
            assert top.groupby(["output", "sign"]).size().max() <= top_n
            assert ((top.sign == "positive") == (top.coefficient > 0)).all()
            assert all(
                pattern[lat] == cls for lat, cls in zip(top.latent, top.pattern_class, strict=True)
            )
            coef = pq.read_table(folder / "coefficients.parquet").to_pandas()
            sizes = coef.groupby("features").feature.max().to_dict()
            for features in ("esm", f"sae-k{k}-w{width}"):
                probe = json.loads((folder / f"{features}.json").read_text())
                assert sizes[features] == probe["n_features"] - 1
            assert sizes[f"sae-k{k}-w{width}"] == width - 1
            assert set(top.output) <= set(probe["outputs"])
