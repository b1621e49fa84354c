"""The steering rules end to end on planted upstream tables: the latent_families checkpoint fans
out to BLAST, Clustal Omega and the clamp, and the summary reads what they wrote.

The workflow's own steering rules and scripts run in a private copy of the repository; only the
stages before them are replaced by planted files (real Swiss-Prot entries of the demo data plus
variants of one of them, a tiny fair-esm checkpoint, a random SAE, a families table), so the
answer is known whatever the demo's training yields.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from workflow_runs import copy_workflow, pending_files, snakemake  # noqa: E402

from protsae import esm as pesm  # noqa: E402
from protsae.sae import SAEConfig, TopKSAE, save_sae  # noqa: E402
from protsae.sequences import iter_swissprot  # noqa: E402

pytestmark = pytest.mark.workflow
if not all(shutil.which(t) for t in ("makeblastdb", "blastp", "clustalo")):
    pytestmark = [pytestmark, pytest.mark.skip(reason="BLAST+ or Clustal Omega not on PATH")]

FAMILY, LONE_FAMILY = "IPR_PLANTED_A", "IPR_PLANTED_B"
QUERY, LONE = "P60904", "P68308"
MODEL, LAYER = "esm2_tiny", 1
STEERED, EMPTY = "k4-w64", "k4-w32"  # the second SAE has no family-specific latent
PLANTED_SNAKEFILE = """
import os, sys
from pathlib import Path

_SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, _SRC)
os.environ["PYTHONPATH"] = _SRC


include: "workflow/rules/common.smk"
include: "workflow/rules/steering.smk"


rule all:
    default_target: True
    input: [f"{steering_dir(spec)}/summary.parquet" for spec in SAES]


checkpoint latent_families:
    input: "planted/families-{layer}-{k}-{width}.parquet"
    output: f"{LATENTS_DIR}/families.parquet"
    shell: "cp {input} {output}"
"""


def _variant(sequence: str, seed: int) -> str:
    rng = np.random.default_rng(seed)
    seq = list(sequence)
    for i in rng.choice(np.arange(50, len(seq)), size=len(seq) // 5, replace=False):
        seq[i] = rng.choice([r for r in "ACDEFGHIKLMNPQRSTVWY" if r != sequence[i]])
    return "".join(seq)


def _plant(repo: Path) -> None:
    results = repo / "results"
    real = {
        r.accessions[0]: r.sequence
        for r in iter_swissprot(repo / "resources" / "demo" / "uniprot_sprot.dat")
    }
    rows = [
        (a, s, [FAMILY] if a == QUERY else [LONE_FAMILY] if a == LONE else [])
        for a, s in real.items()
    ]
    rows += [(f"VAR{i}", _variant(real[QUERY], i), [FAMILY]) for i in range(1, 5)]
    acc, seq, fam = zip(*rows, strict=True)
    (results / "sequences").mkdir(parents=True)
    pq.write_table(
        pa.table({"accession": acc, "sequence": seq, "families": fam}),
        results / "sequences" / "swissprot.parquet",
    )
    (repo / "models").mkdir()
    pesm.save_random_init(repo / "models" / f"{MODEL}.pt", 2, 32, 4, seed=0)
    (repo / "planted").mkdir()
    for name, width, specific in ((STEERED, 64, True), (EMPTY, 32, False)):
        sae_dir = results / "sae" / MODEL / f"L{LAYER}" / name
        sae_dir.mkdir(parents=True)
        sae = TopKSAE(SAEConfig(d_model=32, width=width, k=4, layer=LAYER), seed=0)
        save_sae(sae, sae_dir / "sae.safetensors", sae_dir / "sae.json")
        latents_dir = results / "latents" / MODEL / f"L{LAYER}" / name
        latents_dir.mkdir(parents=True)
        top = {
            "latent": pa.array([3, 3, 5, 7], pa.int32()),
            "split": ["test", "train", "test", "test"],
            "id": [QUERY, "VAR1", LONE, "VAR2"],
            "max_act": pa.array([3.0, 2.0, 4.0, 1.0], pa.float32()),
        }
        pq.write_table(pa.table(top), latents_dir / "top_examples.parquet")
        families = {
            "latent": pa.array([3, 5, 7], pa.int32()),
            "family": [FAMILY, LONE_FAMILY, FAMILY],
            "f1": [0.9, 0.8, 0.1],
            "family_specific": [specific, specific, False],
        }
        pq.write_table(pa.table(families), repo / "planted" / f"families-{LAYER}-4-{width}.parquet")


def _config(repo: Path, name: str, **steering) -> Path:
    config = yaml.safe_load((repo / "config" / "demo.yaml").read_text())
    config["results"] = "results"
    config["esm"] = {"model": f"models/{MODEL}.pt", "max_tokens_per_batch": 1024}
    config["sae"] = {"sweeps": [{"layers": [LAYER], "ks": [4], "widths": [64, 32]}]}
    config["steering"] = {"multipliers": [0.5, 2.0], **steering}
    config["probes"] = {"layers": []}  # the demo's probes use SAEs this grid does not train
    path = repo / "config" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _summary(name: str) -> str:
    return f"results/steering/{MODEL}/L{LAYER}/{name}/summary.parquet"


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    repo = copy_workflow(tmp_path_factory.mktemp("steering") / "repo")
    (repo / "Snakefile.planted").write_text(PLANTED_SNAKEFILE)
    _plant(repo)
    args = ("-s", "Snakefile.planted", "--configfile", str(_config(repo, "planted")))
    snakemake(repo, *args, "--cores", "2", timeout=600)
    return repo


def test_the_chain_writes_alignments_steering_and_summary(planted: Path):
    steering = planted / "results" / "steering" / MODEL / f"L{LAYER}" / STEERED
    alignments = pq.read_table(steering / "alignments" / "latent-3.parquet")
    assert set(alignments.column("id").to_pylist()) == {QUERY, "VAR1"}
    latent = pq.read_table(steering / "latent-3.parquet")
    assert latent.num_rows == 2 * (len(_seq(planted, QUERY)) + len(_seq(planted, "VAR1")))
    assert set(latent.column("multiplier").to_pylist()) == {0.5, 2.0}
    assert set(latent.column("clamp_value").to_pylist()) == {1.5, 6.0}  # x max activation 3.0
    summary = pq.read_table(planted / _summary(STEERED)).to_pylist()
    skipped = [r for r in summary if r["latent"] == 5]
    assert len(skipped) == 1 and "0 BLAST hit(s) in IPR_PLANTED_B" in skipped[0]["skip_reason"]
    assert not any(r["latent"] == 7 for r in summary)  # not family-specific: never steered
    overall = [r for r in summary if r["latent"] == 3 and r["bin_low"] is None]
    assert [r["multiplier"] for r in overall] == [0.5, 2.0]
    assert {r["n_latents_kept"] for r in summary} == {int(overall[0]["kept"])}
    logs = planted / "results" / "logs" / "steering" / MODEL / f"L{LAYER}" / STEERED
    homologs_log = (logs / "homologs-3.log").read_text()
    assert "blastp: 2." in homologs_log and "'clustalo': '1." in homologs_log
    assert "skipped" in (logs / "homologs-5.log").read_text()
    assert (
        "makeblastdb: 2." in (planted / "results" / "logs" / "steering" / "blastdb.log").read_text()
    )


def test_an_sae_without_family_specific_latents_has_an_empty_summary(planted: Path):
    table = pq.read_table(planted / _summary(EMPTY))
    assert table.num_rows == 0
    assert "fraction_unchanged" in table.column_names


def test_adding_a_multiplier_reruns_only_the_steering_and_the_summary(planted: Path):
    config = _config(planted, "more", multipliers=[0.5, 2.0, 4.0])
    pending = pending_files(planted, "-s", "Snakefile.planted", "--configfile", str(config))
    assert set(pending.values()) == {"steer_latent", "steering_summary"}, pending
    assert sorted(Path(p).name for p in pending) == [
        "latent-3.parquet",
        "latent-5.parquet",
        "summary.parquet",
    ]
    assert all(f"/{STEERED}/" in p for p in pending)


def test_max_latents_takes_the_best_f1_first(planted: Path):
    config = _config(planted, "one", max_latents=1)
    pending = pending_files(planted, "-s", "Snakefile.planted", "--configfile", str(config))
    # latent 5 (F1 0.8) leaves the summary's inputs; latent 3 (F1 0.9) stays and is up to date
    assert set(pending.values()) == {"steering_summary"}, pending


def _seq(repo: Path, accession: str) -> str:
    table = pq.read_table(repo / "results" / "sequences" / "swissprot.parquet").to_pydict()
    return table["sequence"][table["accession"].index(accession)]
