"""The DAG the Snakefile builds from a config: what runs, and what stops a run before it starts."""

from __future__ import annotations

import re

import pytest
import yaml

from .conftest import ROOT, copy_workflow, run_snakemake, snakemake


def job_counts(output: str) -> dict[str, int]:
    """Parse the 'Job stats' table of a dry run into {rule: count}."""
    counts: dict[str, int] = {}
    lines = output.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("Job stats"))
    except StopIteration:
        return counts
    for line in lines[start + 3 :]:
        match = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not match:
            break
        if match[1] != "total":
            counts[match[1]] = int(match[2])
    return counts


def test_demo_dag_has_every_stage_once_per_sae(demo_config):
    config = demo_config()
    proc = run_snakemake("-n", "--configfile", str(config), "--cores", "1", "--forceall")
    counts = job_counts(proc.stdout)
    # demo sweeps: (2,8,256), (3,8,256), (2,4,256) -> 3 SAEs on layers 2 and 3, 2 shards each
    assert counts["train_sae"] == 3
    assert counts["evaluate_sae"] == 3
    # layers 2 and 3 from one pass per shard (activations.layer_passes), none alone
    assert counts["extract_pass_L2_3"] == 2
    assert "extract_activations" not in counts
    assert counts["latent_stats"] == 3
    assert counts["latent_classes"] == 3
    assert counts["latent_summary"] == 3
    assert counts["latent_concepts"] == counts["latent_descriptions"] == 3  # per SAE
    assert counts["steering_summary"] == 3  # its per-latent jobs follow the families checkpoint
    assert counts["sample_uniref50"] == 1
    assert counts["cluster_swissprot"] == 1
    assert counts["download"] == 7  # 3 sequence sources + 4 probe data sets
    # the demo's small ESM-2 is bundled (resources/demo/esm2_t4_demo.pt): nothing builds a model
    assert "pretrain_esm" not in counts
    assert "esm_random_init" not in counts
    assert counts["sae_metrics_table"] == 1
    # probes: 4 tasks read once; per (layer 2, 3) x task an ESM and an SAE probe, one interpretation
    assert counts["probe_data"] == 4
    assert counts["probe_fit"] == 16
    assert counts["probe_interpret"] == 8
    assert counts["probes_table"] == 1
    # the browser: one job per SAE and the index; the demo fetches no structures (synthetic)
    assert counts["browser_sae"] == 3 and counts["browser_index"] == 1
    assert "structures" not in counts


def test_a_sweep_listed_twice_trains_once(demo_config):
    sweeps = [
        {"layers": [2], "ks": [8], "widths": [256]},
        {"layers": [2, 2], "ks": [8], "widths": [256]},
    ]
    config = demo_config(**{"sae.sweeps": sweeps, "probes.layers": [2]})
    proc = run_snakemake("-n", "--configfile", str(config), "--cores", "1", "--forceall")
    assert job_counts(proc.stdout)["train_sae"] == 1


def test_bad_config_stops_before_any_job_naming_the_key(demo_config, tmp_path):
    config = demo_config(**{"sae.sweeps": [{"layers": [2], "ks": [512], "widths": [256]}]})
    proc = run_snakemake("--configfile", str(config), "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "sae.sweeps[0]" in proc.stderr + proc.stdout
    assert "k=512" in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists()

    config = demo_config(**{"sae.sweeps": [{"layers": [9], "ks": [8], "widths": [256]}]})
    proc = run_snakemake("--configfile", str(config), "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "layer 9 is deeper than the model" in proc.stderr + proc.stdout

    config = demo_config(**{"sequences.sample_size": 0})
    proc = run_snakemake("--configfile", str(config), "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "sequences.sample_size" in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists()


def test_gpu_rules_request_a_gpu_and_no_job_gets_a_config_section(demo_config):
    config = demo_config()
    proc = run_snakemake(
        "-n", "--configfile", str(config), "--cores", "1", "--forceall", "--printshellcmds"
    )
    assert proc.returncode == 0
    rules = (ROOT / "workflow/rules").glob("*.smk")
    text = "\n".join(path.read_text() for path in rules)
    for rule in ("extract_activations", "train_sae", "evaluate_sae", "latent_stats", "probe_fit"):
        body = text.split(f"rule {rule}:", 1)[1].split("\nrule ", 1)[0]
        assert "gpu=1" in body, rule
    # params name single values: config["section"]["key"], never a bare section
    for match in re.finditer(r"^\s+\w+=config(\[[^\]]+\])+,?$", text, flags=re.M):
        assert match.group(0).count("[") >= 2, match.group(0)


PRETRAIN = {"layers": 4, "embed_dim": 32, "heads": 4, "steps": 20, "batch_tokens": 2048}


def test_random_init_and_pretrain_exclude_each_other(demo_config):
    config = demo_config(
        **{"esm.random_init": {"layers": 2, "embed_dim": 32}, "esm.pretrain": PRETRAIN}
    )
    proc = run_snakemake("-n", "--configfile", str(config), "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "random_init and pretrain exclude each other" in proc.stderr + proc.stdout


def test_esm_pretrain_trains_one_model_that_every_esm_job_reads(demo_config):
    config = demo_config(**{"esm.pretrain": PRETRAIN})
    proc = run_snakemake(
        "-n", "--configfile", str(config), "--cores", "1", "--forceall", "--printshellcmds"
    )
    counts = job_counts(proc.stdout)
    assert counts["pretrain_esm"] == 1
    assert "pretrained-t4-d32-s0" in proc.stdout
    assert "esm2_t4_demo" not in proc.stdout


def test_a_random_init_demo_builds_no_trained_model(demo_config):
    config = demo_config(random_esm=True)
    proc = run_snakemake("-n", "--configfile", str(config), "--cores", "1", "--forceall")
    counts = job_counts(proc.stdout)
    assert counts["esm_random_init"] == 1
    assert "pretrain_esm" not in counts


def test_structures_from_a_folder_add_one_job_per_sae_and_the_viewer(demo_config, tmp_path):
    viewer = ROOT / "tools/viewer/node_modules/3dmol/build"
    if not (viewer / "3Dmol-min.js").is_file():
        pytest.skip("3Dmol.js not installed (make setup runs npm ci in tools/viewer)")
    (tmp_path / "models").mkdir()
    config = demo_config(**{"structures": {"source": "dir", "dir": str(tmp_path / "models")}})
    proc = run_snakemake("-n", "--configfile", str(config))
    counts = job_counts(proc.stdout)
    assert counts["structures"] == 3 and counts["browser_sae"] == 3
    assert "3Dmol-min.js" in proc.stdout  # the index job copies the viewer
    config = demo_config(**{"structures": {"source": "dir"}})
    proc = run_snakemake("-n", "--configfile", str(config), check=False)
    assert proc.returncode != 0 and "structures.dir is not set" in proc.stdout + proc.stderr


def test_structures_without_the_viewer_installed_still_plan_and_say_so(tmp_path):
    """A checkout without 3Dmol.js (no npm) still dry-runs a config that fetches structures:
    the run is planned without the viewer and the log says the pages will show no 3D view."""
    workdir = copy_workflow(tmp_path / "repo")  # the copy has no tools/viewer/node_modules
    (tmp_path / "models").mkdir()
    config = yaml.safe_load((ROOT / "config/demo.yaml").read_text())
    config["results"] = str(tmp_path / "results")
    config["structures"] = {"source": "dir", "dir": str(tmp_path / "models")}
    (workdir / "config" / "viewerless.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(workdir, "-n", "--configfile", "config/viewerless.yaml")
    counts = job_counts(proc.stdout)
    assert counts["structures"] == 3 and counts["browser_index"] == 1
    assert "3Dmol-min.js" not in proc.stdout
    assert "the 3D viewer (3Dmol.js) is not installed" in proc.stdout + proc.stderr
