"""The demo on a Hugging Face ESM-2: a tiny random EsmForMaskedLM saved with save_pretrained,
served by a local server laid out like the hub, fetched by the download stage, converted once,
and run through every stage; bad hub ids and folders stop the run before any job."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from workflow_runs import copy_workflow, snakemake  # noqa: E402

from protsae.huggingface import ESM2_VOCAB, HUB_FILES  # noqa: E402

# make test (PROTSAE_REQUIRE_OPTIONAL=1) fails instead of skipping without the hf extra.
if os.environ.get("PROTSAE_REQUIRE_OPTIONAL"):
    import transformers
else:
    transformers = pytest.importorskip("transformers", reason="pip install -e '.[hf]'")

pytestmark = [pytest.mark.workflow]

REPO_ID = "tester/esm2_t4_tiny"
MODEL = "hf-tester--esm2_t4_tiny"


def tiny_esm2(folder: Path, layers: int = 4, dim: int = 32) -> Path:
    """A random ESM-2 in transformers' own class, saved as a hub repository holds it."""
    torch.manual_seed(0)
    config = transformers.EsmConfig(
        vocab_size=33,
        hidden_size=dim,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=4 * dim,
        position_embedding_type="rotary",
        token_dropout=True,
        emb_layer_norm_before=False,
        mask_token_id=32,
        pad_token_id=1,
        layer_norm_eps=1e-5,
        max_position_embeddings=1026,
    )
    transformers.EsmForMaskedLM(config).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(ESM2_VOCAB) + "\n")
    return folder


def hf_config(workdir: Path, model: str, small: bool = True) -> str:
    config = yaml.safe_load((workdir / "config/demo.yaml").read_text())
    config["results"] = "results/hf"
    config["esm"]["model"] = model
    if small:
        config["sae"]["sweeps"] = [{"layers": [2], "ks": [8], "widths": [256]}]
        config["sae"]["training"]["total_tokens"] = 20_000
        config["activations"]["layer_passes"] = []
        config["probes"]["layers"] = [2]
        config["steering"]["max_latents"] = 1
    (workdir / "config" / "hf.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return "config/hf.yaml"


@pytest.mark.slow
@pytest.mark.heavy  # the whole demo on the converted model
def test_demo_runs_on_a_hub_esm2(tmp_path: Path, local_hub) -> None:
    workdir = copy_workflow(tmp_path / "repo")
    local_hub(REPO_ID, tiny_esm2(tmp_path / "tiny"), HUB_FILES)
    config = hf_config(workdir, f"hf:{REPO_ID}")
    snakemake(workdir, "--configfile", config, "--cores", "2", timeout=1500)

    downloads = workdir / "resources/downloads"
    for file in HUB_FILES:  # fetched through the store, with their checksums recorded
        record = json.loads((downloads / f"{MODEL}.{file}.json").read_text())
        assert record["url"].endswith(f"/{REPO_ID}/resolve/main/{file}")
        assert len(record["sha256"]) == 64
    assert (downloads / f"{MODEL}.pt").is_file()  # converted once, fair-esm's layout
    results = workdir / "results/hf"
    sae = results / "sae" / MODEL / "L2" / "k8-w256"
    assert json.loads((sae / "sae.json").read_text())["model"] == MODEL
    evaluation = json.loads((sae / "eval.json").read_text())
    assert all(torch.isfinite(torch.tensor(evaluation[k])) for k in ("ce_clean", "ce_sae", "fve"))
    classes = pd.read_parquet(results / "latents" / MODEL / "L2" / "k8-w256" / "classes.parquet")
    assert len(classes) == 256
    assert (results / "tables" / "probes.csv").is_file()
    assert (results / "browser" / "index.html").is_file()

    # Nothing reruns: the conversion and the downloads are done.
    done = snakemake(workdir, "--configfile", config, "--cores", "1", "-n")
    assert "Nothing to be done" in done.stdout + done.stderr

    # protsae encode finds the converted weights from the SAE's sae.json alone.
    from protsae.encoding.run import encode

    fasta = tmp_path / "mine.fasta"
    fasta.write_text(">a\nMKTAYIAKQRQISFVKSHFSRQLEERLGLIEV\n")
    result = encode(fasta, sae, tmp_path / "mine", device="cpu")
    assert result.n_sequences == 1 and result.n_rows > 0


@pytest.mark.slow
def test_hub_404_stops_before_any_job(tmp_path: Path, local_hub) -> None:
    workdir = copy_workflow(tmp_path / "repo")
    local_hub(REPO_ID, tiny_esm2(tmp_path / "tiny"), HUB_FILES)
    config = hf_config(workdir, "hf:tester/no_such_model")
    done = snakemake(workdir, "--configfile", config, "--cores", "1", "-n", check=False)
    assert done.returncode != 0
    out = done.stdout + done.stderr
    assert "config key esm.model: hf:tester/no_such_model" in out
    assert "/tester/no_such_model/resolve/main/config.json: HTTP 404" in out
    assert not (workdir / "resources/downloads").exists() or not any(
        (workdir / "resources/downloads").glob("hf-*")
    )


@pytest.mark.slow
def test_folder_problems_stop_before_any_job(tmp_path: Path) -> None:
    """A folder without config.json, and one whose config says more layers than its weights."""
    workdir = copy_workflow(tmp_path / "repo")
    (workdir / "models" / "empty").mkdir(parents=True)
    done = snakemake(
        workdir,
        "--configfile",
        hf_config(workdir, "models/empty"),
        "-n",
        "--cores",
        "1",
        check=False,
    )
    assert done.returncode != 0
    assert "config key esm.model: models/empty: models/empty/config.json: no config.json" in (
        done.stdout + done.stderr
    )
    folder = tiny_esm2(workdir / "models" / "tiny")
    config = json.loads((folder / "config.json").read_text())
    config["num_hidden_layers"] = 6
    (folder / "config.json").write_text(json.dumps(config))
    done = snakemake(
        workdir,
        "--configfile",
        hf_config(workdir, "models/tiny"),
        "-n",
        "--cores",
        "1",
        check=False,
    )
    assert done.returncode != 0
    out = done.stdout + done.stderr
    assert "config key esm.model: models/tiny: models/tiny/model.safetensors" in out
    assert "esm.encoder.layer.4.attention.self.query.weight missing" in out
