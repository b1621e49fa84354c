"""`protsae encode`: your proteins through a trained SAE, checked against the latent-stats stage.

A tiny random ESM-2 and SAE are laid out the way the workflow lays them out
(results/sae/{model}/L{layer}/k{k}-w{width}, resources/downloads/{model}.pt); the latent-stats
stage runs on the same sequences, so encode's output can be compared with what the pipeline
computed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import protsae
from protsae.cli import main
from protsae.encoding.inputs import read_records, sae_folder
from protsae.latents import PATTERN_CLASSES
from protsae.sequences import InputError

esm_mod = pytest.importorskip("protsae.esm")
sae_mod = pytest.importorskip("protsae.sae")
encode_mod = pytest.importorskip("protsae.latents.stats")
from protsae.sae.at_layer import EsmSaeFiles  # noqa: E402

LAYER, WIDTH, K, MODEL = 2, 128, 8, "esm2_tiny"
LETTERS = "ACDEFGHIKLMNPQRSTVWY"
REPO = Path(__file__).resolve().parents[2]


def write_fasta(path: Path, records) -> Path:
    path.write_text("".join(f">{i} some description\n{s}\n" for i, s in records))
    return path


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """A results tree with one SAE, its latent stats, and planted class/family tables."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("encode")
    rng = np.random.default_rng(1)
    n = 12
    ids = [f"Q{i:05d}" for i in range(n)]
    seqs = ["".join(rng.choice(list(LETTERS), int(rng.integers(20, 150)))) for _ in range(n)]
    pq.write_table(
        pa.table({"accession": ids, "sequence": seqs, "families": [[] for _ in ids]}),
        tmp / "swissprot.parquet",
    )
    split = ["test" if i % 2 else "train" for i in range(n)]
    pq.write_table(
        pa.table({"accession": ids, "cluster": ids, "split": split}), tmp / "clusters.parquet"
    )
    (tmp / "resources" / "downloads").mkdir(parents=True)
    esm_mod.save_random_init(tmp / "resources" / "downloads" / f"{MODEL}.pt", 4, 64, 4, seed=0)
    sae_dir = tmp / "results" / "sae" / MODEL / f"L{LAYER}" / f"k{K}-w{WIDTH}"
    sae_dir.mkdir(parents=True)
    cfg = sae_mod.SAEConfig(d_model=64, width=WIDTH, k=K, layer=LAYER, model=MODEL)
    sae = sae_mod.TopKSAE(cfg, seed=0)
    with torch.no_grad():
        sae.b_enc.fill_(0.05)
    sae_mod.save_sae(sae, sae_dir / "sae.safetensors", sae_dir / "sae.json")
    lat_dir = tmp / "results" / "latents" / MODEL / f"L{LAYER}" / f"k{K}-w{WIDTH}"
    lat_dir.mkdir(parents=True)
    encode_mod.latent_stats_from_files(
        EsmSaeFiles(
            tmp / "resources" / "downloads" / f"{MODEL}.pt", sae_dir / "sae.safetensors", LAYER
        ),
        encode_mod.EvaluationSet(tmp / "swissprot.parquet", tmp / "clusters.parquet", chunk_size=5),
        top_examples=3,
        seq_stats_path=lat_dir / "seq_stats.parquet",
        top_examples_path=lat_dir / "top_examples.parquet",
        forward=esm_mod.ForwardOptions(300, "cpu"),
    )
    # Planted annotations: class and family are functions of the latent; odd latents have no
    # families row at all, so the join must leave them empty rather than shift rows.
    latents = list(range(WIDTH))
    pq.write_table(
        pa.table(
            {
                "latent": latents[::-1],  # stored out of order on purpose
                "pattern_class": [PATTERN_CLASSES[lat % 9] for lat in latents[::-1]],
            }
        ),
        lat_dir / "classes.parquet",
    )
    even = [lat for lat in latents if lat % 2 == 0]
    pq.write_table(
        pa.table(
            {
                "latent": even,
                "family": [f"IPR9{lat:05d}" for lat in even],
                "f1": [lat / 1000 for lat in even],
                "threshold": [0.5] * len(even),
                "family_specific": [lat % 4 == 0 for lat in even],
            }
        ),
        lat_dir / "families.parquet",
    )
    # Descriptions for a third of the latents only: the others stay empty.
    described = [lat for lat in latents if lat % 3 == 0]
    pq.write_table(
        pa.table({"latent": described, "description": [f"planted {lat}" for lat in described]}),
        lat_dir / "descriptions.parquet",
    )
    fasta = write_fasta(tmp / "mine.fasta", zip(ids, seqs, strict=True))
    yield tmp, sae_dir, lat_dir, fasta, dict(zip(ids, seqs, strict=True))
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def encoded(grid):
    tmp, sae_dir, _, fasta, _ = grid
    result = protsae.encode(fasta, sae_dir, tmp / "out" / "mine", device="cpu", html=True, top=5)
    return result


def test_latents_equal_the_latent_stats_stage(grid, encoded):
    _, _, lat_dir, _, seqs = grid
    table = pq.read_table(encoded.parquet).to_pandas()
    assert list(table.columns) == ["id", "position", "latent", "value"]
    assert (table["value"] > 0).all()
    assert list(dict.fromkeys(table["id"])) == list(seqs)  # FASTA order
    assert table.groupby(["id", "position"]).size().max() <= K
    got = {
        (row.id, row.latent): row
        for row in table.groupby(["id", "latent"])
        .agg(max_act=("value", "max"), n_active=("value", "size"))
        .reset_index()
        .itertuples()
    }
    stats = pq.read_table(lat_dir / "seq_stats.parquet").to_pandas()
    want = {(row.id, row.latent): row for row in stats.itertuples()}
    assert len(want) > 50
    # Different batch composition changes float rounding (~1e-6): a near tie may flip.
    assert len(set(got) ^ set(want)) <= 0.01 * len(want)
    same = [key for key in set(got) & set(want)]
    for key in same:
        assert got[key].max_act == pytest.approx(want[key].max_act, rel=1e-3, abs=1e-4)
    agree = sum(got[key].n_active == want[key].n_active for key in same)
    assert agree >= 0.99 * len(same)
    assert all(len(seqs[i]) > table[table["id"] == i]["position"].max() for i in seqs)


def test_tsv_joins_planted_annotations(encoded, grid):
    tsv = pd_read_tsv(encoded.tsv)
    assert set(tsv["id"]) == set(grid[4])
    assert (tsv.groupby("id")["rank"].max() <= 4).all()
    for row in tsv.itertuples():
        assert row.pattern_class == PATTERN_CLASSES[row.latent % 9]
        if row.latent % 3 == 0:
            assert row.description == f"planted {row.latent}"
        else:
            assert row.description != row.description  # empty -> NaN
        if row.latent % 2 == 0:
            assert row.family == f"IPR9{row.latent:05d}"
            assert row.f1 == pytest.approx(row.latent / 1000)
            assert str(row.family_specific) == str(row.latent % 4 == 0)
        else:
            assert row.family != row.family and row.f1 != row.f1  # empty -> NaN
    # Ranked by the fraction of each latent's own train maximum; max values from the parquet.
    table = pq.read_table(encoded.parquet).to_pandas()
    top = pq.read_table(grid[2] / "top_examples.parquet").to_pandas()
    latent_max = top[top.split == "train"].groupby("latent").max_act.max()
    assert tsv.fraction_of_latent_max.notna().any()
    for seq_id, group in tsv.groupby("id"):
        ranked = group.sort_values("rank")
        known = ranked.fraction_of_latent_max.dropna()
        assert known.is_monotonic_decreasing
        assert ranked.fraction_of_latent_max.isna().tolist() == sorted(
            ranked.fraction_of_latent_max.isna().tolist()
        )  # latents without a known max come last
        mine = table[table["id"] == seq_id]
        for row in ranked.itertuples():
            assert row.max_value == pytest.approx(
                mine[mine.latent == row.latent].value.max(), rel=1e-5
            )
            if row.latent in latent_max.index:
                expected = row.max_value / latent_max[row.latent]
                assert row.fraction_of_latent_max == pytest.approx(expected, rel=1e-5)
            if row.latent % 2 == 0 and row.fraction_of_latent_max == row.fraction_of_latent_max:
                assert row.family_threshold == 0.5
                assert str(row.predicted_member) == str(row.fraction_of_latent_max >= 0.5)


def test_an_always_on_latent_does_not_hide_a_family_hit():
    """Raw value ranks an always-on latent first; its fraction of its own max does not."""
    from protsae.encoding.inputs import ranked_latents
    from protsae.encoding.types import SequenceLatents

    item = SequenceLatents(
        "P", "ACDEF", np.array([0, 1, 2, 3]), np.array([7, 7, 9, 9]), np.array([10.0, 9, 2, 1])
    )
    notes = {
        7: {
            "latent_max": 100.0,
            "family_threshold": 0.3,
            "family": "IPR1",
            "family_specific": True,
        },
        9: {"latent_max": 2.5, "family_threshold": 0.5, "family": "IPR2", "family_specific": True},
    }
    first, second = ranked_latents(item, notes)
    assert (first["latent"], first["fraction_of_latent_max"]) == (9, pytest.approx(0.8))
    assert first["predicted_member"] is True
    assert (second["latent"], second["predicted_member"]) == (7, False)  # 0.1 < 0.3
    unknown = ranked_latents(item, {})
    assert [r["latent"] for r in unknown] == [7, 9]  # no maxima: raw value
    assert unknown[0]["predicted_member"] is None


def pd_read_tsv(path):
    import pandas as pd

    return pd.read_csv(path, sep="\t")


class TagCollector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_html_pages_escape_and_load_nothing(grid, tmp_path):
    tmp, sae_dir, _, _, seqs = grid
    evil = "<img/src=x>&\"'.."
    fasta = write_fasta(tmp_path / "evil.fasta", [(evil, seqs["Q00001"]), ("../up", "ACDE")])
    protsae.encode(fasta, sae_dir, tmp_path / "pages", html=True, device="cpu")
    pages = sorted((tmp_path / "pages").iterdir())
    assert {p.parent for p in pages} == {tmp_path / "pages"}  # no id escapes the folder
    assert len(pages) == 3  # two sequences + index
    for page in pages:
        parser = TagCollector()
        parser.feed(page.read_text())
        names = {tag for tag, _ in parser.tags}
        assert not names & {"img", "script", "link", "iframe", "object", "embed", "svg"}
        for _, attrs in parser.tags:
            assert "src" not in attrs
            assert (
                not attrs.get("href", "")
                .lower()
                .startswith(("http:", "https:", "//", "javascript:"))
            )
        csp = [a for t, a in parser.tags if a.get("http-equiv") == "Content-Security-Policy"]
        assert csp and csp[0]["content"].startswith("default-src 'none'")
    text = next(p for p in pages if p.name.startswith("_img")).read_text()
    assert "<h1>&lt;img/src=x&gt;&amp;&quot;&#x27;..</h1>" in text


def test_browser_links_point_at_the_results_browser(grid, tmp_path):
    import re

    tmp, sae_dir, _, _, seqs = grid
    browser = tmp / "results" / "browser"
    fasta = write_fasta(tmp_path / "one.fasta", [("Q00003", seqs["Q00003"])])
    protsae.encode(fasta, sae_dir, tmp_path / "nolinks", html=True, device="cpu")
    assert "latent.html" not in (tmp_path / "nolinks" / "Q00003.html").read_text()
    browser.mkdir()
    (browser / "latent.html").write_text("<!DOCTYPE html>")
    try:
        result = protsae.encode(fasta, sae_dir, tmp_path / "links", html=True, device="cpu")
    finally:
        (browser / "latent.html").unlink()
        browser.rmdir()
    text = (tmp_path / "links" / "Q00003.html").read_text()
    hrefs = re.findall(r'href="([^"#]+)#sae=([^&"]+)&amp;latent=(\d+)"', text)
    active = set(pq.read_table(result.parquet)["latent"].to_pylist())
    assert {int(latent) for _, _, latent in hrefs} == active  # every active latent links
    for page, sae, _ in hrefs:
        assert (tmp_path / "links" / page).resolve() == (browser / "latent.html").resolve()
        assert sae == f"L{LAYER}-k{K}-w{WIDTH}"


def test_html_colours_each_latent_on_its_own_scale_with_a_switcher(encoded, grid):
    import re

    table = pq.read_table(encoded.parquet).to_pandas()
    tsv = pd_read_tsv(encoded.tsv)
    top = pq.read_table(grid[2] / "top_examples.parquet").to_pandas()
    latent_max = top[top.split == "train"].groupby("latent").max_act.max()
    seq_id = "Q00002"
    rows = table[table["id"] == seq_id]
    first = int(tsv[(tsv.id == seq_id) & (tsv["rank"] == 0)].latent.iloc[0])
    text = (encoded.html_dir / f"{seq_id}.html").read_text()
    assert re.search(rf'<input type="radio" name="latent" id="l{first}" checked>', text)
    switchable = re.findall(r'<div class="track t(\d+)">', text)
    assert len(switchable) == min(20, rows.latent.nunique()) and str(first) in switchable
    for latent in map(int, switchable[:3]):
        block = text.split(f'<div class="track t{latent}">')[1].split("</div>")[0]
        spans = block.split('<p class="seq">')[1].split("</p>")[0].split("</span>")[:-1]
        assert len(spans) == len(grid[4][seq_id])
        mine = rows[rows.latent == latent].set_index("position").value
        scale = latent_max.get(latent, mine.max())
        for pos, span in enumerate(spans):
            alpha = float(re.search(r"rgba\(214,39,40,([0-9.]+)\)", span).group(1))
            assert alpha == pytest.approx(min(1.0, mine.get(pos, 0.0) / scale), abs=1e-3)
        assert f"#l{latent}:checked~.tracks .t{latent}{{display:block}}" in text


# --------------------------------------------------------------------------- bad input


def assert_nothing_written(folder: Path, keep: set[str]):
    left = {p.name for p in folder.iterdir()} - keep
    assert not left, left


def test_characters_outside_the_alphabet_name_the_record(grid, tmp_path):
    _, sae_dir, *_ = grid
    fasta = write_fasta(tmp_path / "bad.fasta", [("ok1", "ACDEF"), ("bad2", "ACJ1E")])
    with pytest.raises(InputError, match=r"record #2 \('bad2'\).*'1J'"):
        protsae.encode(fasta, sae_dir, tmp_path / "o", device="cpu", html=True)
    assert_nothing_written(tmp_path, {"bad.fasta"})


def test_empty_record_is_named(grid, tmp_path):
    _, sae_dir, *_ = grid
    fasta = tmp_path / "empty.fasta"
    fasta.write_text(">a\nACDE\n>nothing here\n>c\nAAA\n")
    with pytest.raises(InputError, match="'nothing'.*empty sequence"):
        protsae.encode(fasta, sae_dir, tmp_path / "o", device="cpu")
    assert_nothing_written(tmp_path, {"empty.fasta"})


def test_long_sequences_cropped_or_skipped(grid, tmp_path, caplog):
    _, sae_dir, *_ = grid
    long = "ACDEFGHIKL" * 110
    fasta = write_fasta(tmp_path / "long.fasta", [("long1", long), ("short", "MKV")])
    records, skipped, cropped = read_records(fasta)
    assert cropped == ["long1"] and not skipped and len(records[0][1]) == 1022
    result = protsae.encode(fasta, sae_dir, tmp_path / "crop", device="cpu")
    assert result.cropped == ["long1"]
    table = pq.read_table(result.parquet).to_pandas()
    assert table[table["id"] == "long1"]["position"].max() == 1021
    result = protsae.encode(fasta, sae_dir, tmp_path / "skip", device="cpu", skip_long=True)
    assert result.skipped == ["long1"]
    assert set(pq.read_table(result.parquet)["id"].to_pylist()) == {"short"}


def test_not_an_sae_folder(tmp_path):
    (tmp_path / "notsae").mkdir()
    fasta = write_fasta(tmp_path / "x.fasta", [("a", "ACD")])
    with pytest.raises(
        InputError, match=r"notsae: not an SAE folder \(no sae.json or sae.safetensors"
    ):
        protsae.encode(fasta, tmp_path / "notsae", tmp_path / "o")
    with pytest.raises(InputError, match="missing: SAE folder not found"):
        sae_folder(tmp_path / "missing")
    assert_nothing_written(tmp_path, {"notsae", "x.fasta"})


def test_wrong_model_fails_before_anything_is_written(grid, tmp_path):
    _, sae_dir, *_ = grid
    esm_mod.save_random_init(tmp_path / "other.pt", 3, 32, 4, seed=0)
    fasta = write_fasta(tmp_path / "x.fasta", [("a", "ACDEFG")])
    with pytest.raises(InputError, match="d_model 64 != .*other.pt embed_dim 32"):
        protsae.encode(fasta, sae_dir, tmp_path / "o", model=tmp_path / "other.pt", html=True)
    assert_nothing_written(tmp_path, {"other.pt", "other-contact-regression.pt", "x.fasta"})


def test_missing_weights_say_where_they_were_looked_for(grid, tmp_path):
    _, sae_dir, *_ = grid
    fasta = write_fasta(tmp_path / "x.fasta", [("a", "ACDEFG")])
    with pytest.raises(InputError, match="weights of model 'esm2_nothere' not found.*--model"):
        protsae.encode(fasta, sae_dir, tmp_path / "o", model="esm2_nothere")


# --------------------------------------------------------------------------- the command


def test_cli_writes_the_same_as_the_function(grid, encoded, tmp_path, capsys):
    tmp, sae_dir, _, fasta, _ = grid
    code = main(
        [
            "encode",
            "--sae",
            str(sae_dir),
            "-o",
            str(tmp_path / "cli"),
            "--top",
            "5",
            str(fasta),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    assert "12 sequences" in capsys.readouterr().out
    assert pq.read_table(tmp_path / "cli.parquet").equals(pq.read_table(encoded.parquet))
    assert (tmp_path / "cli.tsv").read_text() == encoded.tsv.read_text()


def test_cli_reports_bad_input_with_status_2(tmp_path, capsys):
    fasta = write_fasta(tmp_path / "x.fasta", [("a", "ACD")])
    assert main(["encode", "--sae", str(tmp_path), "-o", str(tmp_path / "o"), str(fasta)]) == 2
    assert "not an SAE folder" in capsys.readouterr().err


def test_python_m_protsae_and_entry_point(tmp_path):
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert declared["protsae"] == "protsae.cli:main"
    proc = subprocess.run(
        [sys.executable, "-m", "protsae", "encode", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "--skip-long" in proc.stdout


def test_import_protsae_stays_light():
    code = "import sys, protsae; f = protsae.encode; print(callable(f), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]  # torch loads when encode runs, not before


def test_the_sae_activation_convention_is_honoured(grid, tmp_path):
    """An SAE trained on InterProt's vectors is encoded on those vectors, not fair-esm's."""
    import json
    import shutil

    tmp, sae_dir, _, _, seqs = grid
    folder = tmp_path / "results" / "sae" / MODEL / f"L{LAYER}" / f"k{K}-w{WIDTH}"
    shutil.copytree(sae_dir, folder)
    cfg = json.loads((folder / "sae.json").read_text())
    cfg["activation_convention"] = "interprot"
    (folder / "sae.json").write_text(json.dumps(cfg))
    seq_id = "Q00004"
    fasta = write_fasta(tmp_path / "one.fasta", [(seq_id, seqs[seq_id])])
    checkpoint = tmp / "resources" / "downloads" / f"{MODEL}.pt"
    got = protsae.encode(fasta, folder, tmp_path / "ip", model=checkpoint, device="cpu")
    table = pq.read_table(got.parquet).to_pandas()

    model, alphabet = esm_mod.load_model(checkpoint, "cpu")
    sae = sae_mod.load_sae(folder / "sae.safetensors")
    assert sae.cfg.activation_convention == "interprot"
    want = {}
    for convention in ("interprot", "fair-esm"):
        ((_, rep),) = esm_mod.layer_representations(
            model,
            alphabet,
            [(seq_id, seqs[seq_id])],
            LAYER,
            esm_mod.ForwardOptions(4096),
            convention=convention,
        )
        with torch.no_grad():
            top = sae.encode(rep)
        values, indices = top.values.numpy(), top.indices.numpy()
        pos, col = np.nonzero(values > 0)
        want[convention] = {
            (int(p), int(indices[p, c])): float(values[p, c]) for p, c in zip(pos, col, strict=True)
        }
    got_map = {(int(r.position), int(r.latent)): float(r.value) for r in table.itertuples()}
    assert set(got_map) == set(want["interprot"])
    assert set(got_map) != set(want["fair-esm"])
    for key, value in got_map.items():
        assert value == pytest.approx(want["interprot"][key], rel=1e-4, abs=1e-5)


def test_an_sae_outside_the_results_tree_takes_results_and_model(grid, tmp_path):
    import shutil

    tmp, sae_dir, _, _, seqs = grid
    loose = tmp_path / "my_sae"
    shutil.copytree(sae_dir, loose)
    fasta = write_fasta(tmp_path / "one.fasta", [("Q00005", seqs["Q00005"])])
    checkpoint = tmp / "resources" / "downloads" / f"{MODEL}.pt"
    with pytest.raises(InputError, match="weights of model 'esm2_tiny' not found"):
        protsae.encode(fasta, loose, tmp_path / "a", device="cpu")
    plain = protsae.encode(fasta, loose, tmp_path / "a", model=checkpoint, device="cpu")
    assert pd_read_tsv(plain.tsv)["pattern_class"].isna().all()  # no latents/ to annotate from
    annotated = protsae.encode(
        fasta, loose, tmp_path / "b", results=tmp / "results", model=checkpoint, device="cpu"
    )
    tsv = pd_read_tsv(annotated.tsv)
    assert (tsv["pattern_class"] == [PATTERN_CLASSES[lat % 9] for lat in tsv["latent"]]).all()


def test_switcher_shows_only_the_checked_latents_track(chromium, tmp_path):
    """Latent 7 is active on every residue, latent 9 on one: the page checked at 7 paints a
    whole line red, the page checked at 9 one residue (the other track stays hidden)."""
    from PIL import Image

    from protsae.encoding.pages import render_page
    from protsae.encoding.types import SaeFolder, SequenceLatents

    n = 60
    item = SequenceLatents(
        "P",
        "A" * n,
        np.r_[np.arange(n), [5]],
        np.r_[np.full(n, 7), [9]],
        np.r_[np.full(n, 2.0), [2.0]].astype(np.float32),
    )
    notes = {7: {"latent_max": 2.0}, 9: {"latent_max": 2.0}}
    sae = SaeFolder(tmp_path, "m", 2, 8, 16, None)
    red = {}
    for latent in (7, 9):
        page = tmp_path / f"checked-{latent}.html"
        page.write_text(render_page(item, sae, notes, latent, tmp_path))
        shot = chromium.screenshot(page.as_uri(), tmp_path / f"{latent}.png", size="900,500")
        pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
        red[latent] = int(((pixels[..., 0] > 180) & (pixels[..., 1] < 80)).sum())
    assert red[9] > 0 and red[7] > 20 * red[9]


# --------------------------------------------------------------------------- the ESM-2 of sae.json


@pytest.fixture
def recorded(grid, tmp_path):
    """A checkout whose esm.model is a local path (as the demo's), with an SAE whose sae.json
    records it the way the train_sae job does."""
    import shutil

    from protsae.esm.checkpoint import model_record
    from protsae.sae.formats import record_esm_model

    tmp, sae_dir, *_ = grid
    checkout = tmp_path / "checkout"
    (checkout / "models").mkdir(parents=True)
    shutil.copy(tmp / "resources" / "downloads" / f"{MODEL}.pt", checkout / "models" / "my_esm.pt")
    folder = checkout / "results" / "sae" / "my_esm" / f"L{LAYER}" / f"k{K}-w{WIDTH}"
    shutil.copytree(sae_dir, folder)
    with (folder / "sae.json").open() as fh:
        before = json.load(fh)
    cwd = Path.cwd()
    os.chdir(checkout)  # the job runs in the checkout: the record keeps the path as written
    try:
        record = model_record("models/my_esm.pt", "models/my_esm.pt", "my_esm")
    finally:
        os.chdir(cwd)
    record_esm_model(folder / "sae.json", record)
    after = json.loads((folder / "sae.json").read_text())
    assert after == {**before, "esm": record}  # every other key kept
    return checkout, folder, record


def _other_model(path: Path, layers: int, dim: int, seed: int) -> Path:
    esm_mod.save_random_init(path, layers, dim, 4, seed=seed)
    return path


def test_sae_json_records_the_esm2_it_was_trained_on(recorded):
    checkout, _, record = recorded
    weights = (checkout / "models" / "my_esm.pt").read_bytes()
    assert record == {
        "model_name": "my_esm",
        "model": "models/my_esm.pt",
        "model_sha256": hashlib.sha256(weights).hexdigest(),
        "n_layers": 4,
        "d_model": 64,
    }


def test_encode_finds_the_recorded_weights_from_anywhere(recorded, grid, tmp_path, monkeypatch):
    """The demo's case: esm.model is a path relative to the checkout; encode run elsewhere
    finds it through the results folder's parents, with no --model."""
    _, folder, _ = recorded
    _, _, _, fasta, _ = grid
    monkeypatch.chdir(tmp_path)
    result = protsae.encode(fasta, folder, tmp_path / "found", device="cpu")
    assert result.n_rows > 0


def test_encode_takes_options_or_flags_not_both(tmp_path):
    from protsae.encoding.types import EncodeOptions

    fasta = tmp_path / "in.fasta"
    fasta.write_text(">a\nMKV\n")
    with pytest.raises(TypeError, match="not both"):
        protsae.encode(fasta, tmp_path, tmp_path / "o", EncodeOptions(), html=True)
    with pytest.raises(TypeError, match="colour"):
        protsae.encode(fasta, tmp_path, tmp_path / "o", colour="red")
    assert not (tmp_path / "o.parquet").exists()


def test_encode_refuses_other_weights_of_the_same_shape(recorded, grid, tmp_path):
    _, folder, record = recorded
    _, _, _, fasta, _ = grid
    other = _other_model(tmp_path / "other.pt", 4, 64, seed=1)
    with pytest.raises(InputError) as info:
        protsae.encode(fasta, folder, tmp_path / "o", model=other, device="cpu")
    sha = hashlib.sha256(other.read_bytes()).hexdigest()
    assert str(info.value) == (
        f"--model {other}: not the ESM-2 the SAE in {folder} was trained on "
        f"(sha256 {sha}, not {record['model_sha256']}); it was trained on my_esm "
        f"(models/my_esm.pt, 4 layers x 64, sha256 {record['model_sha256']}). "
        "Pass --force-model to encode with these weights anyway"
    )
    assert_nothing_written(tmp_path, {"other.pt", "other-contact-regression.pt", "checkout"})


def test_encode_refuses_another_shape_and_force_model_warns(recorded, grid, tmp_path, capsys):
    _, folder, record = recorded
    _, _, _, fasta, _ = grid
    deeper = _other_model(tmp_path / "deeper.pt", 6, 64, seed=0)
    sha = hashlib.sha256(deeper.read_bytes()).hexdigest()
    expected = (
        f"--model {deeper}: not the ESM-2 the SAE in {folder} was trained on (6 layers, not 4; "
        f"sha256 {sha}, not {record['model_sha256']}); it was trained on my_esm "
        f"(models/my_esm.pt, 4 layers x 64, sha256 {record['model_sha256']})"
    )
    argv = ["encode", str(fasta), "--sae", str(folder), "-o", str(tmp_path / "forced")]
    argv += ["--model", str(deeper), "--device", "cpu"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"protsae encode: error: {expected}. Pass --force-model to encode with these weights "
        "anyway\n"
    )
    assert not (tmp_path / "forced.parquet").exists()
    logged = _log_lines(lambda: main([*argv, "--force-model"]) == 0 or pytest.fail("failed"))
    assert f"{expected}; encoding with them anyway (--force-model)" in logged
    assert (tmp_path / "forced.parquet").is_file()
    # A d_model the SAE cannot read is refused even with --force-model.
    narrow = _other_model(tmp_path / "narrow.pt", 4, 32, seed=0)
    with pytest.raises(InputError) as info:
        protsae.encode(fasta, folder, tmp_path / "n", model=narrow, force_model=True)
    assert str(info.value) == (
        f"--model {narrow}: an ESM-2 with d_model 32; the SAE in {folder} was trained on my_esm "
        f"(models/my_esm.pt, 4 layers x 64, sha256 {record['model_sha256']}) and cannot read "
        "its activations (--force-model cannot help)"
    )


def test_encode_logs_the_stops_it_strips(grid, tmp_path):
    _, sae_dir, *_ = grid
    fasta = tmp_path / "stops.fasta"
    fasta.write_text(">with_stop\nMKVLAAG*\n>plain\nMKWL\n>also\nMKKE*\n")
    logged = _log_lines(lambda: protsae.encode(fasta, sae_dir, tmp_path / "o", device="cpu"))
    assert (
        f"{fasta}: a trailing '*' (stop) stripped from 2 record(s), ESM-2 has no stop token: "
        "with_stop, also"
    ) in logged


def _log_lines(run) -> str:
    """What the protsae logger writes while ``run()`` runs."""
    import io
    import logging

    from protsae.progress import get_logger

    logger, stream = get_logger(), io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        run()
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()
