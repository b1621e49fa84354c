"""Published InterProt SAEs (`sae.pretrained`) enter the same DAG as trained ones."""

from __future__ import annotations

import hashlib
import json

import torch
from safetensors.torch import save_file

from protsae.sae.formats import load_sae

from .conftest import ROOT, run_snakemake
from .test_dag import job_counts


def interprot_file(path, d_model=64, width=128):
    generator = torch.Generator().manual_seed(0)
    save_file(
        {
            "w_enc": torch.randn(d_model, width, generator=generator),
            "w_dec": torch.randn(width, d_model, generator=generator),
            "b_enc": torch.randn(width, generator=generator),
            "b_pre": torch.randn(d_model, generator=generator),
        },
        str(path),
    )
    return path


def test_pretrained_sae_is_imported_and_analysed_not_trained(demo_config, tmp_path):
    weights = interprot_file(tmp_path / "esm2_plm64_l3_sae128.safetensors")
    config = demo_config(random_esm=True, **{"sae.pretrained": {3: {"path": str(weights), "k": 8}}})
    proc = run_snakemake("-n", "--configfile", str(config), "--cores", "1", "--forceall")
    counts = job_counts(proc.stdout)
    assert counts["import_sae"] == 1
    assert counts["train_sae"] == 3  # the demo's own sweeps, nothing more
    assert counts["latent_stats"] == 4 and counts["evaluate_sae"] == 4
    # layer 3 is extracted only if an SAE is trained there: the import needs no activations
    assert counts["extract_pass_L2_3"] == 2  # the demo's layers 2 and 3, one pass per shard
    assert "extract_activations" not in counts

    target = tmp_path / "results/sae/random-t4-d64-s0/L3/k8-w128/sae.safetensors"
    run_snakemake("--configfile", str(config), "--cores", "1", str(target))
    meta = json.loads(target.with_name("sae.json").read_text())
    assert (meta["layer"], meta["k"], meta["width"], meta["d_model"]) == (3, 8, 128, 64)
    assert meta["activation_convention"] == "interprot"
    # the ESM-2 it is paired with here: the random init, named by its file
    checkpoint = "resources/downloads/random-t4-d64-s0.pt"
    assert meta["esm"] == {
        "model_name": "random-t4-d64-s0",
        "model": checkpoint,
        "model_sha256": hashlib.sha256((ROOT / checkpoint).read_bytes()).hexdigest(),
        "n_layers": 4,
        "d_model": 64,
    }
    sae = load_sae(target)
    assert sae.cfg.normalize == "token_standardize"
    assert sae.cfg.activation_convention == "interprot"


def test_pretrained_without_k_stops_before_any_job(demo_config, tmp_path):
    weights = interprot_file(tmp_path / "esm2_plm64_l3_sae128.safetensors")
    config = demo_config(**{"sae.pretrained": {3: str(weights)}})
    proc = run_snakemake("-n", "--configfile", str(config), "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "sae.pretrained.3.k: required" in proc.stdout + proc.stderr


def test_pretrained_clashing_with_a_trained_sae_is_a_config_error(demo_config, tmp_path):
    weights = interprot_file(tmp_path / "w.safetensors", width=256)
    config = demo_config(**{"sae.pretrained": {2: {"path": str(weights), "k": 8}}})
    proc = run_snakemake("-n", "--configfile", str(config), "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "sae.pretrained" in proc.stdout + proc.stderr
    assert "also trained by sae.sweeps" in proc.stdout + proc.stderr


def test_missing_pretrained_file_names_it(demo_config, tmp_path):
    missing = str(tmp_path / "nope.safetensors")
    config = demo_config(**{"sae.pretrained": {3: {"path": missing, "k": 8}}})
    proc = run_snakemake("-n", "--configfile", str(config), "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "nope.safetensors: no such file" in proc.stdout + proc.stderr
