"""activations.layer_passes in the workflow: one pass job per shard makes every layer of a
group, a layer of no group keeps its own early-exit jobs, and adding such a layer reruns
nothing of the group. Run for real (extraction and one small SAE) on a random-init ESM-2."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import yaml

from protsae.activations import iter_shard, shard_info
from protsae.config import model_name

from .conftest import run_snakemake
from .test_dag import job_counts

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from workflow_runs import (  # noqa: E402
    copy_workflow,
    pending_files,
    random_esm,
    snakemake,
    write_config,
)

pytestmark = [pytest.mark.workflow, pytest.mark.slow, pytest.mark.heavy]  # whole runs

GROUP = [2, 4]
RULE = "extract_pass_L2_4"


def grouped(config: dict, passes=(GROUP,), layers=(2, 4)) -> dict:
    """The demo on a random-init ESM-2 with one SAE sweep over ``layers``, a small SAE budget
    and ``passes`` as activations.layer_passes."""
    config = random_esm(config)
    config["activations"]["layer_passes"] = [list(group) for group in passes]
    config["sae"]["sweeps"] = [{"layers": list(layers), "ks": [8], "widths": [256]}]
    config["sae"]["training"].update(total_tokens=4096, batch_tokens=1024)
    config["probes"]["layers"] = list(layers)
    return config


def test_a_group_is_one_pass_job_per_shard_and_no_early_exit_job(demo_config):
    config = demo_config(
        random_esm=True,
        **{
            "activations.layer_passes": [GROUP],
            "sae.sweeps": [{"layers": [1, 2, 4], "ks": [8], "widths": [256]}],
            "probes.layers": GROUP,
        },
    )
    counts = job_counts(
        run_snakemake("-n", "--configfile", str(config), "--cores", "1", "--forceall").stdout
    )
    shards = 2  # the demo's
    assert counts[RULE] == shards
    assert counts["extract_activations"] == shards  # layer 1 only: it is in no group


def test_a_layer_in_two_groups_stops_the_run(demo_config, tmp_path):
    config = demo_config(**{"activations.layer_passes": [[2, 4], [4]]})
    proc = run_snakemake("-n", "--configfile", str(config), "--cores", "1", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "activations.layer_passes[1]: layer 4 is already in activations.layer_passes[0]" in out


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> tuple[Path, dict]:
    """A workflow copy whose group's shards and one SAE on them were made by a real run."""
    workdir = copy_workflow(tmp_path_factory.mktemp("passes") / "repo")
    config_path = write_config(workdir, "passes", grouped)
    config = yaml.safe_load(config_path.read_text())
    targets = [sae_path(config, layer) for layer in GROUP]
    snakemake(workdir, "--configfile", str(config_path), "--cores", "2", *targets, timeout=1200)
    return workdir, config


def shard_paths(config: dict, layer: int) -> list[str]:
    """A layer's shard files, relative to the workflow copy (as Snakemake names them)."""
    folder = Path(config["results"], "activations", model_name(config["esm"]), f"L{layer}")
    return [str(folder / f"shard-{i:03d}.parquet") for i in range(config["activations"]["shards"])]


def sae_path(config: dict, layer: int) -> str:
    model = model_name(config["esm"])
    return str(Path(config["results"], "sae", model, f"L{layer}", "k8-w256", "sae.safetensors"))


def residues(path: Path) -> list[tuple[str, int]]:
    return [
        (seq_id, int(pos))
        for batch in iter_shard(path, ("id", "pos"))
        for seq_id, pos in zip(batch.ids.to_pylist(), batch.pos, strict=True)
    ]


def test_the_pass_writes_every_group_layer_and_the_saes_train_on_them(extracted):
    workdir, config = extracted
    results = workdir / config["results"]
    model = model_name(config["esm"])
    for layer in GROUP:
        for path in shard_paths(config, layer):
            info = shard_info(workdir / path)
            assert info.layer == layer and info.num_rows > 0
        assert (workdir / sae_path(config, layer)).is_file()
        # sae.json names the ESM-2 the SAE was trained on, as train_sae found it
        record = json.loads((workdir / sae_path(config, layer)).with_suffix(".json").read_text())
        checkpoint = workdir / "resources" / "downloads" / f"{model}.pt"
        assert record["esm"] == {
            "model_name": model,
            "model": f"resources/downloads/{model}.pt",
            "model_sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
            "n_layers": config["esm"]["random_init"]["layers"],
            "d_model": config["esm"]["random_init"]["embed_dim"],
        }
    # the same residues (ids and positions) in each layer's shard
    for low, high in zip(*(shard_paths(config, layer) for layer in GROUP), strict=True):
        rows = [residues(workdir / path) for path in (low, high)]
        assert rows[0] == rows[1]
    logs = list((results / "logs" / "activations" / model / RULE).glob("shard-*.log"))
    assert len(logs) == config["activations"]["shards"]
    assert not (results / "activations" / model / "L3").exists()


def test_adding_a_lone_layer_runs_only_its_own_extraction(extracted):
    workdir, config = extracted

    def add_layer(cfg):
        cfg["sae"]["sweeps"].append({"layers": [3], "ks": [8], "widths": [256]})

    path = write_config(workdir, "add_layer", add_layer, base="passes")
    targets = [p for layer in (*GROUP, 3) for p in shard_paths(config, layer)]
    targets += [sae_path(config, layer) for layer in GROUP]
    pending = pending_files(workdir, *targets, "--configfile", str(path))
    # layer 3's shards by its own early-exit jobs; the group's shards and SAEs stay
    assert pending == dict.fromkeys(shard_paths(config, 3), "extract_activations")


def test_adding_a_layer_to_the_group_reruns_the_group(extracted):
    workdir, config = extracted

    def widen_group(cfg):
        cfg["activations"]["layer_passes"] = [[2, 3, 4]]
        cfg["sae"]["sweeps"].append({"layers": [3], "ks": [8], "widths": [256]})

    path = write_config(workdir, "widen", widen_group, base="passes")
    shards = [p for layer in (2, 3, 4) for p in shard_paths(config, layer)]
    pending = pending_files(workdir, *shards, "--configfile", str(path))
    assert pending == dict.fromkeys(shards, "extract_pass_L2_3_4")
