"""The feature browser on a planted SAE: escaping, alignment colours, index filters, and
the pages in real headless Chromium from file:// with no network request."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from protsae.browser import build_browser, js_call
from protsae.browser.align import align
from protsae.latents.classes import CLASSES_SCHEMA
from protsae.latents.collect import SEQ_STATS_SCHEMA, TOP_EXAMPLES_SCHEMA
from protsae.latents.families import FAMILIES_SCHEMA

needs_clustalo = pytest.mark.skipif(shutil.which("clustalo") is None, reason="clustalo missing")

EVIL_FAMILY_NAME = '<script>alert("pwned")</script> & <b>bold</b>'
EVIL_ID = "P&1\"q'"
SEQUENCES = {
    EVIL_ID: "MKTAYIAKQRQISFVKSHFSRQ",
    "P2": "MKTAYIAKQRISFVKSHFSRQLEE",
    "P3": "MSTAYIAKQRQISFVKSHFSRQ",
    "P4": "GGGGWWWWGGGG",
    "P5": "MPPPPPPPPPPP",
}
# latent 0: family-specific for IPR900001 on its three members, residues 4..6 (AYI / AYI)
# latent 1: point latent on P4 and P5; latent 2: dead
ACTIVE = {
    0: {EVIL_ID: {3: 2.0, 4: 4.0, 5: 1.0}, "P2": {3: 1.5, 4: 3.0}, "P3": {4: 3.5}},
    1: {"P4": {4: 1.0}, "P5": {0: 0.5}},
}


def write_latents(root: Path) -> Path:
    """A latents folder of a 3-latent SAE plus Swiss-Prot and entry.list beside it."""
    folder = root / "latents" / "m" / "L3" / "k2-w3"
    folder.mkdir(parents=True)
    stats, top = [], []
    for latent, seqs in ACTIVE.items():
        ranked = sorted(seqs, key=lambda s: -max(seqs[s].values()))
        for rank, seq_id in enumerate(ranked):
            track = seqs[seq_id]
            length = len(SEQUENCES[seq_id])
            peak = max(track, key=track.get)
            stats.append(
                dict(
                    latent=latent,
                    id=seq_id,
                    split="test",
                    length=length,
                    max_act=track[peak],
                    argmax=peak,
                    n_active=len(track),
                    top_region_length=len(track),
                    coverage=len(track) / length,
                    distances=[1],
                    distance_counts=[1],
                )
            )
            top.append(
                dict(
                    latent=latent,
                    split="test",
                    rank=rank,
                    id=seq_id,
                    length=length,
                    max_act=track[peak],
                    positions=sorted(track),
                    values=[track[p] for p in sorted(track)],
                )
            )
    pq.write_table(pa.Table.from_pylist(stats, SEQ_STATS_SCHEMA), folder / "seq_stats.parquet")
    pq.write_table(pa.Table.from_pylist(top, TOP_EXAMPLES_SCHEMA), folder / "top_examples.parquet")
    classes = [
        dict(
            latent=0,
            pattern_class="motif_short",
            n_sequences=3,
            n_top=3,
            density=4.0,
            mean_coverage=0.25,
            top_distances=[7, 14],
        ),
        dict(latent=1, pattern_class="point", n_sequences=2, n_top=2, top_distances=[]),
        dict(latent=2, pattern_class="dead", n_sequences=0, n_top=0, top_distances=[]),
    ]
    pq.write_table(pa.Table.from_pylist(classes, CLASSES_SCHEMA), folder / "classes.parquet")
    families = [
        dict(
            latent=0,
            family="IPR900001",
            f1=1.0,
            precision=1.0,
            recall=1.0,
            threshold=0.3,
            family_specific=True,
            train_f1=1.0,
            n_train_positive=0,
            n_test_positive=3,
            top_sequence=EVIL_ID,
        ),
        dict(
            latent=1,
            family="IPR900002",
            f1=0.5,
            precision=0.5,
            recall=0.5,
            threshold=0.5,
            family_specific=False,
            train_f1=0.5,
            n_train_positive=0,
            n_test_positive=1,
            top_sequence="P4",
        ),
        dict(latent=2, family=None, family_specific=False),
    ]
    pq.write_table(pa.Table.from_pylist(families, FAMILIES_SCHEMA), folder / "families.parquet")
    members = {
        EVIL_ID: ["IPR900001"],
        "P2": ["IPR900001"],
        "P3": ["IPR900001"],
        "P4": ["IPR900002"],
    }
    swissprot = pa.table(
        {
            "accession": list(SEQUENCES),
            "sequence": list(SEQUENCES.values()),
            "families": [members.get(a, []) for a in SEQUENCES],
        }
    )
    pq.write_table(swissprot, root / "swissprot.parquet")
    (root / "entry.list").write_text(
        "ENTRY_AC\tENTRY_TYPE\tENTRY_NAME\n"
        f"IPR900001\tFamily\t{EVIL_FAMILY_NAME}\nIPR900002\tFamily\tQuiet family\n"
    )
    return folder


def write_probes_and_steering(root: Path) -> tuple[Path, Path]:
    """A top_latents table naming latent 0 (and a latent of another SAE), and a steering
    summary with per-latent rows for latent 0 and a skipped latent 1."""
    probes = root / "probes" / "m" / "L3" / "localization" / "top_latents.parquet"
    probes.parent.mkdir(parents=True)
    pd.DataFrame(
        {
            "layer": [3, 3, 5],
            "task": ["localization"] * 3,
            "features": ["sae-k2-w3", "sae-k2-w3", "sae-k2-w3"],
            "output": ["Nucleus", "Cytoplasm", "Nucleus"],
            "sign": ["positive", "negative", "positive"],
            "rank": [0, 1, 0],
            "latent": [0, 0, 1],
            "coefficient": [2.5, -0.75, 9.0],
        }
    ).to_parquet(probes)
    steering = root / "steering" / "m" / "L3" / "k2-w3" / "summary.parquet"
    steering.parent.mkdir(parents=True)
    pd.DataFrame(
        {
            "scope": ["latent", "latent", "average", "latent"],
            "latent": [0, 0, None, 1],
            "multiplier": [4.0, 0.5, 0.5, None],
            "bin_low": [0.0, 0.0, 0.0, None],
            "bin_high": [1.0, 1.0, 1.0, None],
            "n_positions": [22, 22, 22, 0],
            "fraction_unchanged": [0.25, 0.875, 0.875, None],
            "fraction_baseline_unchanged": [0.95, 0.95, 0.95, None],
            "kept": [True, True, True, False],
            "skip_reason": [None, None, None, "fewer than 2 homologs"],
        }
    ).to_parquet(steering)
    return probes, steering


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("planted")
    folder = write_latents(root)
    probes, steering = write_probes_and_steering(root)
    out = root / "browser"
    sae = {"layer": 3, "k": 2, "width": 3, "latents": folder, "steering": steering}
    build_browser(
        out,
        [sae],
        root / "swissprot.parquet",
        root / "entry.list",
        top_sequences=5,
        probe_paths=[probes],
    )
    return out


def read_payload(path: Path, function: str) -> dict:
    text = path.read_text()
    assert text.startswith(f"{function}(") and text.endswith(");\n")
    return json.loads(text[len(function) + 1 : -3])


def test_js_call_escapes_markup_and_line_separators():
    text = js_call("f", {"name": "</script><b>&\u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text[2:-3]) == {"name": "</script><b>&\u2028"}


@needs_clustalo
def test_align_keeps_order_and_residues_with_any_id():
    seqs = [SEQUENCES[EVIL_ID], SEQUENCES["P2"], SEQUENCES["P3"]]
    aligned = align(seqs)
    assert len({len(a) for a in aligned}) == 1
    assert [a.replace("-", "") for a in aligned] == seqs
    assert align(["MKV"]) == ["MKV"]


@needs_clustalo
def test_browser_files_and_payloads(browser):
    assert sorted(p.name for p in (browser / "data" / "L3-k2-w3").iterdir()) == [
        "0.js",
        "1.js",
        "2.js",
    ]
    assert not list(browser.parent.glob(".browser.*"))  # the build folder was renamed, not left
    index = read_payload(browser / "data" / "index.js", "protsaeIndex")
    assert [row[1] for row in index["rows"]] == [0, 1, 2]
    latent0 = read_payload(browser / "data" / "L3-k2-w3" / "0.js", "protsaeLatent")
    assert latent0["family_name"] == EVIL_FAMILY_NAME and latent0["family_specific"]
    stats = latent0["class_stats"]
    assert (stats["density"], stats["mean_coverage"], stats["top_distances"]) == (4, 0.25, "7, 14")
    assert [s["id"] for s in latent0["sequences"]] == [EVIL_ID, "P3", "P2"]
    assert len({len(s["aligned"]) for s in latent0["sequences"]}) == 1
    assert latent0["histogram"]["in_family"][-1] == 1  # the top sequence is a member at 1 × max
    assert sum(latent0["histogram"]["in_family"]) == 3 and sum(latent0["histogram"]["other"]) == 0
    assert [(p["output"], p["coefficient"]) for p in latent0["probes"]] == [
        ("Cytoplasm", -0.75),
        ("Nucleus", 2.5),
    ]
    assert [(r["multiplier"], r["fraction_unchanged"]) for r in latent0["steering"]] == [
        (0.5, 0.875),
        (4.0, 0.25),
    ]
    latent1 = read_payload(browser / "data" / "L3-k2-w3" / "1.js", "protsaeLatent")
    assert latent1["probes"] == []  # the layer-5 probe names another SAE's latent 1
    assert latent1["steering"][0]["skip_reason"] == "fewer than 2 homologs"
    dead = read_payload(browser / "data" / "L3-k2-w3" / "2.js", "protsaeLatent")
    assert dead["sequences"] == [] and dead["n_active_sequences"] == 0
    assert dead["probes"] == [] and dead["steering"] == []


@needs_clustalo
def test_no_file_names_a_network_address(browser):
    for path in browser.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "http://" not in text and "https://" not in text, path
            assert not re.search(r"""(src|href)\s*=\s*["']?\s*//""", text), path


@needs_clustalo
@pytest.mark.slow
def test_latent_page_in_chromium_shows_escaped_text_and_coloured_alignment(browser, chromium):
    url = (browser / "latent.html").as_uri() + "#sae=L3-k2-w3&latent=0"
    dom = chromium.dom(url)
    assert 'id="status" class="ok"' in dom  # the page's script ran to the end
    assert "&lt;script&gt;alert(" in dom and "<script>alert" not in dom
    assert "&lt;b&gt;bold&lt;/b&gt;" in dom and "<b>bold" not in dom
    assert 'data-id="P&amp;1&quot;q\'"' in dom and "P&amp;1\"q'</span>" in dom
    payload = read_payload(browser / "data" / "L3-k2-w3" / "0.js", "protsaeLatent")
    rows = dom.split('<div class="msa-row"')[1:]
    assert len(rows) == len(payload["sequences"]) == 3
    for row, seq in zip(rows, payload["sequences"], strict=True):
        cells = re.findall(r'<span class="res( act| gap)?"([^>]*)>', row)
        assert len(cells) == len(seq["aligned"])  # one cell per alignment column
        columns = [i for i, letter in enumerate(seq["aligned"]) if letter != "-"]
        expected = {columns[p] for p in seq["positions"]}  # residue -> its alignment column
        assert {i for i, (kind, _) in enumerate(cells) if kind == " act"} == expected
        for i in expected:
            assert re.search(r"background-color: rgba?\(214, 39, 40", cells[i][1])
        gaps = {i for i, (kind, _) in enumerate(cells) if kind == " gap"}
        assert gaps == {i for i, letter in enumerate(seq["aligned"]) if letter == "-"}
    assert 'href="latent.html#sae=L3-k2-w3&amp;latent=1"' in dom and 'href="index.html' in dom
    probes = dom[dom.index('id="probes-section"') :].split("</section>")[0]
    assert "hidden" not in probes.split(">")[0] and "<td>Nucleus</td><td>positive</td>" in probes
    steering = dom[dom.index('id="steering-section"') :].split("</section>")[0]
    assert "<td>0.875</td>" in steering
    chromium.screenshot(url, browser.parent / "latent-0.png")


@needs_clustalo
@pytest.mark.slow
def test_index_in_chromium_lists_filters_and_sorts(browser, chromium):
    index = (browser / "index.html").as_uri()
    dom = chromium.dom(index)
    assert re.findall(r'<tr data-latent="(\d+)"', dom) == ["0", "1", "2"]
    assert "&lt;script&gt;alert(" in dom and "<script>alert" not in dom
    dom = chromium.dom(index + "#class=point")
    assert re.findall(r'<tr data-latent="(\d+)"', dom) == ["1"]
    dom = chromium.dom(index + "#family=quiet")
    assert re.findall(r'<tr data-latent="(\d+)"', dom) == ["1"]
    dom = chromium.dom(index + "#sort=max_act&desc=1")
    assert re.findall(r'<tr data-latent="(\d+)"', dom) == ["0", "1", "2"]
    dom = chromium.dom(index + "#sort=max_act")
    assert re.findall(r'<tr data-latent="(\d+)"', dom) == ["1", "0", "2"]  # no activity: last
    dom = chromium.dom(index + "#size=50&specific=1")
    assert re.findall(r'<tr data-latent="(\d+)"', dom) == ["0"]


@needs_clustalo
@pytest.mark.slow
def test_pages_make_no_network_request(browser, chromium, tmp_path):
    control = tmp_path / "control.html"
    control.write_text('<!doctype html><img src="http://127.0.0.1:9/planted.png">')
    assert chromium.page_requests(control.as_uri()) == ["http://127.0.0.1:9/planted.png"]
    for page in ("index.html", "latent.html#sae=L3-k2-w3&latent=0"):
        assert (
            chromium.page_requests((browser / "index.html").as_uri().replace("index.html", page))
            == []
        )


@pytest.mark.slow
def test_index_paginates_at_paper_scale(tmp_path, chromium):
    """Two SAEs of 4096 latents: one page of rows in the DOM, the rest a page away."""
    from protsae.browser.build import INDEX_COLUMNS, _copy_static

    _copy_static(tmp_path)
    rows = [
        [sae, latent, "point" if latent % 3 else "motif_short", None, None, None, False, 1.0, 5]
        for sae in (0, 1)
        for latent in range(4096)
    ]
    index = {
        "title": "",
        "columns": list(INDEX_COLUMNS),
        "classes": ["point", "motif_short"],
        "saes": [{"name": "L1-k64-w4096", "label": "a"}, {"name": "L2-k64-w4096", "label": "b"}],
        "rows": rows,
    }
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "index.js").write_text(js_call("protsaeIndex", index))
    url = (tmp_path / "index.html").as_uri()
    dom = chromium.dom(url)
    assert len(re.findall(r"<tr data-latent=", dom)) == 100
    assert '<span id="count">8192</span>' in dom and '<span id="pages">82</span>' in dom
    dom = chromium.dom(url + "#page=82&sae=L2-k64-w4096")
    assert re.findall(r'<tr data-latent="(\d+)" data-sae="([^"]+)"', dom)[-1] == (
        "4095",
        "L2-k64-w4096",
    )
    assert '<span id="pages">41</span>' in dom
    dom = chromium.dom(url + "#class=motif_short&size=all")
    assert len(re.findall(r"<tr data-latent=", dom)) == 2 * len(range(0, 4096, 3))
