"""Steering one latent from files: a tiny fair-esm checkpoint, a saved SAE, a conservation table."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from protsae import esm as pesm
from protsae.esm import ForwardOptions, load_model
from protsae.sae import SAEConfig, TopKSAE, load_sae, save_sae
from protsae.steering.clamp import STANDARD_RESIDUES, plain_logits
from protsae.steering.homologs import (
    CONSERVATION_SCHEMA,
    META_FAMILY,
    META_LATENT,
    META_MAX,
    META_SKIP,
)
from protsae.steering.steer import LATENT_SCHEMA, steer_latent_from_files

LAYER, D, LATENT = 1, 32, 5
SEQS = {"P2": "GSHMLEDPVDAFQGKK", "P1": "MKTAYIAKQRQISF"}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("steer")
    model = tmp / "esm2_tiny.pt"
    pesm.save_random_init(model, num_layers=2, embed_dim=D, attention_heads=4, seed=0)
    sae = TopKSAE(SAEConfig(d_model=D, width=64, k=4, layer=LAYER), seed=0)
    save_sae(sae, tmp / "sae.safetensors", tmp / "sae.json")
    rows = [
        {"latent": LATENT, "family": "IPR_X", "id": seq_id, "pos": pos, "residue": r}
        | {"consensus": r, "conservation": pos / len(seq), "entropy": 0.0, "n_homologs": 2}
        for seq_id, seq in SEQS.items()
        for pos, r in reversed(list(enumerate(seq)))  # unsorted on purpose
    ]
    meta = {META_LATENT: str(LATENT).encode(), META_FAMILY: b"IPR_X", META_MAX: b"2.5"}
    table = pa.Table.from_pylist(rows, schema=CONSERVATION_SCHEMA.with_metadata(meta))
    pq.write_table(table, tmp / "conservation.parquet")
    skipped = CONSERVATION_SCHEMA.empty_table().replace_schema_metadata(
        {**meta, META_SKIP: b"0 BLAST hit(s)"}
    )
    pq.write_table(skipped, tmp / "skipped.parquet")
    return {"dir": tmp, "model": model, "sae": tmp / "sae.safetensors"}


def test_one_row_per_sequence_multiplier_and_position(files):
    torch.set_num_threads(1)
    out = files["dir"] / "latent.parquet"
    n = steer_latent_from_files(
        files["dir"] / "conservation.parquet",
        files["sae"],
        files["model"],
        LAYER,
        [0.5, 4.0],
        out,
        forward=ForwardOptions(device="cpu"),
    )
    table = pq.read_table(out)
    assert n == table.num_rows == 2 * sum(map(len, SEQS.values()))
    assert table.schema.remove_metadata() == LATENT_SCHEMA
    assert table.schema.metadata[META_MAX] == b"2.5"
    rows = table.to_pylist()
    assert {r["clamp_value"] for r in rows} == {1.25, 10.0}
    for seq_id, seq in SEQS.items():
        for multiplier in (0.5, 4.0):
            mine = [r for r in rows if r["id"] == seq_id and r["multiplier"] == multiplier]
            assert [r["pos"] for r in mine] == list(range(len(seq)))
            assert "".join(r["original"] for r in mine) == seq
            assert all(r["conservation"] == pytest.approx(r["pos"] / len(seq)) for r in mine)
    # baseline = the unmodified model's argmax over the 20 standard residues
    model, alphabet = load_model(files["model"])
    sae = load_sae(files["sae"])
    _, _, tokens = alphabet.get_batch_converter()([("P1", SEQS["P1"])])
    logits = plain_logits(model, sae, tokens, LAYER)[0, 1 : len(SEQS["P1"]) + 1]
    picks = logits[:, [alphabet.get_idx(r) for r in STANDARD_RESIDUES]].argmax(-1)
    mine = [r for r in rows if r["id"] == "P1" and r["multiplier"] == 0.5]
    assert "".join(r["baseline"] for r in mine) == "".join(STANDARD_RESIDUES[i] for i in picks)


def test_a_skipped_latent_gives_an_empty_table_without_loading_a_model(files):
    out = files["dir"] / "skipped-out.parquet"
    n = steer_latent_from_files(
        files["dir"] / "skipped.parquet",
        files["dir"] / "absent.safetensors",
        files["dir"] / "absent.pt",
        LAYER,
        [0.5],
        out,
    )
    table = pq.read_table(out)
    assert n == 0 and table.num_rows == 0
    assert table.schema.metadata[META_SKIP] == b"0 BLAST hit(s)"
    assert table.schema.metadata[META_LATENT] == str(LATENT).encode()


def test_a_table_that_is_not_a_conservation_table_is_named(files):
    bad = files["dir"] / "bad.parquet"
    pq.write_table(pa.table({"x": [1]}), bad)
    with pytest.raises(ValueError, match="bad.parquet: not a steering conservation table"):
        steer_latent_from_files(
            bad, files["sae"], files["model"], LAYER, [0.5], bad.with_suffix(".o")
        )
