"""Probe jobs end to end through the real ESM-2 and SAE code on tiny random models: features
against an independent dense computation, counts against the loader, the JSON and tables."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from protsae.esm import ForwardOptions, layer_representations, load_model, save_random_init
from protsae.probes.control import CONTROLS, control_from_files
from protsae.probes.data import task_data_from_file
from protsae.probes.features import esm_encoder, protein_features, sae_encoder
from protsae.probes.fit import ProbeSettings, probe_from_files
from protsae.probes.interpret import ProbePair, interpret_from_files
from protsae.probes.table import TABLE_COLUMNS, probes_table
from protsae.probes.tasks import read_task_data
from protsae.sae import SAEConfig, TopKSAE, load_sae, save_sae

LAYER, WIDTH, K = 2, 64, 4


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("probes")
    save_random_init(tmp / "esm.pt", 3, 32, 4, seed=0)
    sae = TopKSAE(SAEConfig(d_model=32, width=WIDTH, k=K, layer=LAYER), seed=0)
    save_sae(sae, tmp / "sae.safetensors", tmp / "sae.json")
    yield tmp
    torch.set_num_threads(threads)


def meltome(tmp, n=60):
    rng = np.random.default_rng(0)
    lines = ["sequence,target,set,validation"]
    for i in range(n):
        seq = "M" + "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), int(rng.integers(10, 40))))
        split, val = ("test", "") if i % 5 == 0 else ("train", str(i % 5 == 1))
        lines.append(f"{seq},{40 + seq.count('L')},{split},{val}")
    path = tmp / "meltome.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("splits/mixed_split.csv", "\n".join(lines) + "\n")
    return path


def test_pooled_features_match_a_dense_reference(tiny):
    data = task_data_from_file(
        "thermostability", meltome(tiny), tiny / "m.parquet", tiny / "m.json"
    )
    model, alphabet = load_model(tiny / "esm.pt", "cpu")
    sae = load_sae(tiny / "sae.safetensors")
    esm_rows = protein_features(
        data, esm_encoder(model, alphabet, LAYER, 200, "cpu"), 32, chunk_records=7
    )
    sae_rows = protein_features(
        data, sae_encoder(model, alphabet, sae, LAYER, 200, "cpu"), WIDTH, chunk_records=7
    )
    records = [(r.id, r.sequence) for r in data.records]
    reps = dict(
        layer_representations(model, alphabet, records, LAYER, ForwardOptions(10_000, "cpu"))
    )
    for i, record in enumerate(data.records):
        rep = reps[record.id]
        np.testing.assert_allclose(esm_rows.X[i], rep.mean(0).numpy(), rtol=1e-4, atol=1e-5)
        with torch.no_grad():
            top = sae.encode(rep)
        dense = torch.zeros(len(rep), WIDTH).scatter_(1, top.indices, top.values)
        # pooled after encoding: the mean of per-residue latents, not the latents of the mean
        np.testing.assert_allclose(sae_rows.X[i], dense.mean(0).numpy(), rtol=1e-4, atol=1e-5)


def test_probe_job_counts_match_the_loader_and_table(tiny, demo_dir):
    source = tiny / "ss.zip"
    with zipfile.ZipFile(source, "w") as archive:
        for name in ("sequences", "sampled", "mask"):
            archive.write(demo_dir / "flip_ss" / f"{name}.fasta", f"splits/{name}.fasta")
    loaded = task_data_from_file(
        "secondary_structure", source, tiny / "ss.parquet", tiny / "ss.json"
    )
    settings = ProbeSettings(epochs=1, weight_decay_grid=(0.0,), chunk_records=16)
    out = tiny / "probes"
    for name, sae_path in (("esm", None), (f"sae-k{K}-w{WIDTH}", tiny / "sae.safetensors")):
        probe_from_files(
            tiny / "ss.parquet",
            tiny / "esm.pt",
            LAYER,
            out / f"{name}.json",
            out / f"{name}.coef.parquet",
            sae_path=sae_path,
            forward=ForwardOptions(600, "cpu"),
            settings=settings,
        )
    result = json.loads((out / "esm.json").read_text())
    counts = loaded.split_counts()
    # 15 validation proteins (< 50): 5-fold CV over train + valid, refitted on both
    assert result["selection"] == "cv5" and result["selected"] == 0.0
    assert (result["n_train"], result["n_valid"], result["n_test"]) == (
        counts["train"] + counts["valid"],
        counts["valid"],
        counts["test"],
    )
    resolved = sum(
        int(r.mask.sum()) for r in read_task_data(tiny / "ss.parquet").records if r.split == "test"
    )
    assert result["n_rows"]["test"] == resolved
    assert (
        result["features"] == "esm" and result["layer"] == LAYER and result["metric"] == "accuracy"
    )
    predictions = pq.read_table(out / "esm-predictions.parquet").to_pandas()
    assert list(predictions.columns) == ["id", "position", "split", "y", "y_pred"]
    assert len(predictions) == sum(result["n_rows"].values())
    test_rows = predictions[predictions.split == "test"]
    assert (test_rows.y == test_rows.y_pred).mean() == pytest.approx(result["value"])
    for control in CONTROLS:
        control_from_files(tiny / "ss.parquet", control, out / f"{control}.json", settings)
    table = probes_table(
        [out / "esm.json", out / f"sae-k{K}-w{WIDTH}.json"],
        [out / f"{control}.json" for control in CONTROLS],
    )
    assert list(table.columns) == TABLE_COLUMNS
    assert table.features.tolist() == ["composition", "esm", "majority", f"sae-k{K}-w{WIDTH}"]
    assert table.layer.tolist() == [LAYER] * 4  # controls repeated at the probes' layer
    assert table.n_train.tolist() == [85] * 4 and table.n_test.tolist() == [15] * 4
    assert (table.ci_low <= table.value).all() and (table.value <= table.ci_high).all()
    sae = table[table.features.str.startswith("sae")].iloc[0]
    esm = table[table.features == "esm"].iloc[0]
    assert sae.delta_vs_esm == pytest.approx(sae.value - esm.value)
    assert sae.delta_ci_low <= sae.delta_vs_esm <= sae.delta_ci_high
    assert table[~table.features.str.startswith("sae")].delta_vs_esm.isna().all()
    coef = pq.read_table(out / "esm.coef.parquet").to_pandas()
    assert len(coef) == 3 * 32 and set(coef.output) == {"H", "E", "C"}

    classes = pd.DataFrame({"latent": range(WIDTH), "pattern_class": ["motif_short"] * WIDTH})
    families = pd.DataFrame(
        {
            "latent": range(WIDTH),
            "family": [None] * WIDTH,
            "f1": [None] * WIDTH,
            "family_specific": [False] * WIDTH,
        }
    )
    classes.to_parquet(tiny / "classes.parquet")
    families.to_parquet(tiny / "families.parquet")
    interpret_from_files(
        LAYER,
        "secondary_structure",
        ProbePair(
            out / "esm.coef.parquet", out / f"sae-k{K}-w{WIDTH}.coef.parquet", f"sae-k{K}-w{WIDTH}"
        ),
        tiny / "classes.parquet",
        tiny / "families.parquet",
        3,
        out / "top_latents.parquet",
        out / "coefficients.parquet",
    )
    top = pq.read_table(out / "top_latents.parquet").to_pandas()
    assert set(top.output) == {"H", "E", "C"} and (top.pattern_class == "motif_short").all()
    both = pq.read_table(out / "coefficients.parquet").to_pandas()
    assert both.groupby("features").size().to_dict() == {
        "esm": 3 * 32,
        f"sae-k{K}-w{WIDTH}": 3 * WIDTH,
    }


def test_sae_features_use_the_sae_activation_convention(tiny):
    """An InterProt-convention SAE is fed InterProt-convention activations, not fair-esm ones."""
    data = task_data_from_file(
        "thermostability", meltome(tiny, 10), tiny / "c.parquet", tiny / "c.json"
    )
    model, alphabet = load_model(tiny / "esm.pt", "cpu")
    cfg = SAEConfig(d_model=32, width=WIDTH, k=K, layer=LAYER, activation_convention="interprot")
    sae = TopKSAE(cfg, seed=1).eval()
    rows = protein_features(data, sae_encoder(model, alphabet, sae, LAYER, 200, "cpu"), WIDTH)
    records = [(r.id, r.sequence) for r in data.records]
    for convention, should_match in (("interprot", True), ("fair-esm", False)):
        reps = dict(
            layer_representations(
                model,
                alphabet,
                records,
                LAYER,
                ForwardOptions(10_000, "cpu"),
                convention=convention,
            )
        )
        pooled = []
        for record in data.records:
            with torch.no_grad():
                top = sae.encode(reps[record.id])
            dense = torch.zeros(len(top.values), WIDTH).scatter_(1, top.indices, top.values)
            pooled.append(dense.mean(0).numpy())
        assert np.allclose(rows.X, np.stack(pooled), rtol=1e-4, atol=1e-5) == should_match
