"""What a finished demo leaves behind: every table in the schema docs/design.md promises,
and the invariants between them (no BOS/EOS stored, held-out sequences never trained on,
unit-norm decoders, one class and one family row per latent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from protsae.activations import is_holdout, shard_info, shard_of
from protsae.latents.classes import PATTERN_CLASSES
from protsae.plan import expand_sweeps
from protsae.sae.evaluate import EVAL_KEYS
from protsae.sae.formats import load_sae

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

MODEL = "random-t4-d64-s0"


@pytest.fixture(scope="module")
def run(finished: Path):
    config = yaml.safe_load((finished / "config/small.yaml").read_text())
    return finished / config["results"], config


def test_sequence_tables(run):
    results, config = run
    sample = pq.read_table(results / "sequences/uniref50_sample.parquet")
    assert sample.schema.equals(
        pa.schema([("id", pa.string()), ("sequence", pa.string()), ("length", pa.int32())])
    )
    assert sample.num_rows == config["sequences"]["sample_size"]
    assert len(set(sample["id"].to_pylist())) == sample.num_rows
    lengths = sample["length"].to_numpy()
    assert lengths.max() <= config["sequences"]["max_length"]
    assert [len(s) for s in sample["sequence"].to_pylist()] == lengths.tolist()

    swissprot = pq.read_table(results / "sequences/swissprot.parquet")
    for name, kind in [("interpro", pa.list_(pa.string())), ("families", pa.list_(pa.string()))]:
        assert swissprot.schema.field(name).type == kind
    for interpro, families in zip(
        swissprot["interpro"].to_pylist(), swissprot["families"].to_pylist(), strict=True
    ):
        assert set(families) <= set(interpro)

    clusters = pq.read_table(results / "sequences/swissprot_clusters.parquet").to_pandas()
    assert set(clusters.split) <= {"train", "test"}
    assert set(clusters.cluster) <= set(clusters.accession)
    assert set(clusters.accession) <= set(swissprot["accession"].to_pylist())
    split_of = dict(zip(clusters.accession, clusters.split, strict=True))
    assert all(split_of[c] == s for c, s in zip(clusters.cluster, clusters.split, strict=True))


def test_shards_hold_every_residue_of_their_training_sequences_once(run, read_shard):
    results, config = run
    sample = pq.read_table(results / "sequences/uniref50_sample.parquet").to_pandas()
    n_shards = config["activations"]["shards"]
    holdout = config["activations"]["holdout_fraction"]
    layers = {spec.layer for spec in expand_sweeps(config["sae"]["sweeps"])}
    for layer in layers:
        seen: set[str] = set()
        for shard in range(n_shards):
            path = results / f"activations/{MODEL}/L{layer}/shard-{shard:03d}.parquet"
            info = shard_info(path)
            assert (info.layer, info.d_model, info.model) == (layer, 64, MODEL)
            ids, pos, x = read_shard(path)
            assert np.isfinite(x.astype(np.float32)).all()
            for seq_id in set(ids):
                assert shard_of(seq_id, n_shards) == shard and not is_holdout(seq_id, holdout)
                row = sample[sample.id == seq_id].iloc[0]
                mine = np.sort(pos[np.asarray(ids) == seq_id])
                # residues 0..len-1, each once: no BOS, EOS or padding rows
                assert mine.tolist() == list(range(row.length))
            seen |= set(ids)
        expected = {i for i in sample.id if not is_holdout(i, holdout)}
        assert seen == expected


def test_sae_outputs(run):
    results, config = run
    for spec in expand_sweeps(config["sae"]["sweeps"]):
        folder = results / f"sae/{MODEL}/L{spec.layer}/{spec.name}"
        sae = load_sae(folder / "sae.safetensors")
        assert (sae.cfg.width, sae.cfg.k, sae.cfg.d_model) == (spec.width, spec.k, 64)
        norms = sae.W_dec.detach().norm(dim=1)
        assert np.allclose(norms.numpy(), 1.0, atol=1e-4)
        log = pq.read_table(folder / "train_log.parquet")
        for column in ("step", "tokens", "mse", "fve", "l0", "dead_fraction", "auxk_loss", "lr"):
            assert column in log.column_names
        assert log["tokens"].to_pylist()[-1] >= config["sae"]["training"]["total_tokens"]
        metrics = json.loads((folder / "eval.json").read_text())
        assert set(metrics) == set(EVAL_KEYS)  # (write_json sorts the keys)
        assert metrics["activation_convention"] == "fair-esm"
        assert metrics["l0"] <= spec.k and metrics["n_tokens"] > 0
        assert not (folder / "checkpoint").exists()  # removed once training finished


def test_latent_tables_cover_every_latent(run):
    results, config = run
    specs = expand_sweeps(config["sae"]["sweeps"])
    for spec in specs:
        folder = results / f"latents/{MODEL}/L{spec.layer}/{spec.name}"
        classes = pq.read_table(folder / "classes.parquet").to_pandas()
        assert sorted(classes.latent) == list(range(spec.width))
        assert set(classes.pattern_class) <= set(PATTERN_CLASSES)
        families = pq.read_table(folder / "families.parquet").to_pandas()
        assert sorted(families.latent) == list(range(spec.width))
        assert (families.family_specific == (families.f1 > 0.7)).all()
        summary = json.loads((folder / "summary.json").read_text())
        assert sum(summary["class_counts"].values()) == spec.width
        assert summary["n_family_specific"] == int(families.family_specific.sum())
        stats = pq.read_table(folder / "seq_stats.parquet").to_pandas()
        assert (stats.max_act > 0).all() and (stats.n_active >= 1).all()
        assert (stats.coverage <= 1).all()

    table = pd.read_csv(results / "tables/sae_metrics.csv")
    assert len(table) == len(specs)
    summary_table = pd.read_csv(results / "tables/latent_summary.csv")
    assert (summary_table[list(PATTERN_CLASSES)].sum(axis=1) == summary_table.n_latents).all()
