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
    "O15552": "MKTAYIAKQRISFVKSHFSRQLEE",
    "P0DTC2": "MSTAYIAKQRQISFVKSHFSRQ",
    "P4": "GGGGWWWWGGGG",
    "P5": "MPPPPPPPPPPP",
}
# latent 0: family-specific for IPR900001 on its three members, residues 4..6 (AYI / AYI)
# latent 1: point latent on P4 and P5; latent 2: dead
ACTIVE = {
    0: {EVIL_ID: {3: 2.0, 4: 4.0, 5: 1.0}, "O15552": {3: 1.5, 4: 3.0}, "P0DTC2": {4: 3.5}},
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
        "O15552": ["IPR900001"],
        "P0DTC2": ["IPR900001"],
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
    seqs = [SEQUENCES[EVIL_ID], SEQUENCES["O15552"], SEQUENCES["P0DTC2"]]
    aligned = align(seqs)
    assert len({len(a) for a in aligned}) == 1
    assert [a.replace("-", "") for a in aligned] == seqs
    assert align(["MKV"]) == ["MKV"]


@needs_clustalo
def test_browser_files_and_payloads(browser):
    assert sorted(p.name for p in (browser / "L3-k2-w3").iterdir()) == [
        "0.js",
        "1.js",
        "2.js",
        "rows.json",
    ]
    assert not list(browser.parent.glob(".browser.*"))  # the build folder was renamed, not left
    index = read_payload(browser / "assets" / "index.js", "protsaeIndex")
    assert [row[1] for row in index["rows"]] == [0, 1, 2]
    latent0 = read_payload(browser / "L3-k2-w3" / "0.js", "protsaeLatent")
    assert latent0["family_name"] == EVIL_FAMILY_NAME and latent0["family_specific"]
    stats = latent0["class_stats"]
    assert (stats["density"], stats["mean_coverage"], stats["top_distances"]) == (4, 0.25, "7, 14")
    assert [s["id"] for s in latent0["sequences"]] == [EVIL_ID, "P0DTC2", "O15552"]
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
    latent1 = read_payload(browser / "L3-k2-w3" / "1.js", "protsaeLatent")
    assert latent1["probes"] == []  # the layer-5 probe names another SAE's latent 1
    assert latent1["steering"][0]["skip_reason"] == "fewer than 2 homologs"
    dead = read_payload(browser / "L3-k2-w3" / "2.js", "protsaeLatent")
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
    payload = read_payload(browser / "L3-k2-w3" / "0.js", "protsaeLatent")
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
        [
            sae,
            latent,
            None,
            "point" if latent % 3 else "motif_short",
            None,
            None,
            None,
            False,
            1.0,
            5,
        ]
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
    (tmp_path / "assets" / "index.js").write_text(js_call("protsaeIndex", index))
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


# ---- structures, tracks, quantiles, peaks, steering, descriptions -------------------------

VIEWER_JS = (
    Path(__file__).resolve().parents[2] / "tools/viewer/node_modules/3dmol/build/3Dmol-min.js"
)


@pytest.fixture(scope="session")
def viewer_js() -> Path:
    """3Dmol.js as make setup installs it; tests using it skip without it, except under
    PROTSAE_REQUIRE_OPTIONAL=1 (make test), where they fail."""
    import os

    if not VIEWER_JS.is_file():
        reason = "3Dmol.js not installed (make setup runs npm ci in tools/viewer; needs npm)"
        if os.environ.get("PROTSAE_REQUIRE_OPTIONAL"):
            pytest.fail(reason)
        pytest.skip(reason)
    return VIEWER_JS


ACC = "P0DTC2"  # the id with a structure from the test folder (a UniProt-shaped accession)
FEATURES = [  # ACC's residues 5-6 are an active site, 2-8 a region (no concept); O15552's 4-5 a motif
    dict(accession=ACC, type="ACT_SITE", start=5, end=6, concept="active site <b>"),
    dict(accession=ACC, type="REGION", start=2, end=8, concept=None),
    dict(accession="O15552", type="MOTIF", start=4, end=5, concept="planted motif"),
]
DESCRIPTION = "Fires on the AYI motif of <i>family</i> one"


def write_structure_folder(folder: Path, helix_structure) -> Path:
    """ACC as mmCIF, O15552 as PDB (numbered from 101), P4 with another sequence, P5 an HTML
    page named .pdb; no file for EVIL_ID (``helix_structure``: the fixture)."""
    from Bio.PDB import MMCIFIO, PDBIO

    folder.mkdir(parents=True, exist_ok=True)
    cif = MMCIFIO()
    cif.set_structure(helix_structure(SEQUENCES[ACC]))
    cif.save(str(folder / f"{ACC}.cif"))
    pdb = PDBIO()
    pdb.set_structure(helix_structure(SEQUENCES["O15552"], first=101))
    pdb.save(str(folder / "O15552.pdb"))
    pdb.set_structure(helix_structure("MKV" * 4))
    pdb.save(str(folder / "P4.pdb"))
    (folder / "P5.pdb").write_text("<!doctype html><html><body>Not found</body></html>")
    return folder


@pytest.fixture(scope="module")
def rich_browser(tmp_path_factory, helix_structure) -> Path:
    """The planted SAE with structures from a local folder, annotation tracks, descriptions,
    per-latent steering tables, one top sequence per latent and two quantile bins."""
    from protsae.browser.structures import collect_structures

    root = tmp_path_factory.mktemp("rich")
    folder = write_latents(root)
    probes, steering = write_probes_and_steering(root)
    features = root / "swissprot_features.parquet"
    pd.DataFrame(FEATURES).astype({"start": "int32", "end": "int32"}).to_parquet(features)
    descriptions = root / "descriptions.parquet"
    pd.DataFrame({"latent": [0, 1], "description": [DESCRIPTION, ""]}).to_parquet(descriptions)
    steered = root / "latent-0.parquet"
    write_steered_table(steered)
    structures = root / "structures" / "L3-k2-w3"
    collect_structures(
        dict(SEQUENCES),
        structures,
        "dir",
        folder=write_structure_folder(root / "models", helix_structure),
    )
    out = root / "browser"
    build_browser(
        out,
        [{"layer": 3, "k": 2, "width": 3, "latents": folder, "steering": steering}],
        root / "swissprot.parquet",
        root / "entry.list",
        viewer=VIEWER_JS if VIEWER_JS.is_file() else None,
        structures={"L3-k2-w3": structures},
        top_sequences=2,
        quantile_bins=2,
        per_quantile=1,
        probe_paths=[probes],
        steering_tables=[steered],
        features_path=features,
        descriptions_path=descriptions,
    )
    return out


STEER_ORIGINAL = "MKTAYIAKQR"
STEER_CONSENSUS = "MKTAWIAKER"
STEERED = {0.5: "MKTAYIAKQR", 4.0: "MKTAWIGKER"}  # at 4: W and E to consensus, G elsewhere


def write_steered_table(path: Path) -> None:
    from protsae.steering.steer import LATENT_SCHEMA

    rows = []
    for multiplier, steered in STEERED.items():
        for pos, (orig, cons, new) in enumerate(
            zip(STEER_ORIGINAL, STEER_CONSENSUS, steered, strict=True)
        ):
            rows.append(
                dict(
                    latent=0,
                    family="IPR900001",
                    id="O15552",
                    multiplier=multiplier,
                    clamp_value=multiplier * 4.0,
                    pos=pos,
                    original=orig,
                    baseline=orig,
                    steered=new,
                    consensus=cons,
                    conservation=0.5,
                    entropy=1.0,
                    n_homologs=3,
                )
            )
    pq.write_table(pa.Table.from_pylist(rows, LATENT_SCHEMA), path)


def test_structures_from_a_folder_are_checked_and_named(tmp_path, helix_structure):
    from protsae.browser.structures import collect_structures

    models = write_structure_folder(tmp_path / "models", helix_structure)
    index = collect_structures(dict(SEQUENCES), tmp_path / "out", "dir", folder=models)
    status = dict(zip(index["accession"].to_pylist(), index["status"].to_pylist(), strict=True))
    assert status == {
        ACC: "ok",
        "O15552": "ok",
        "P4": "mismatch",
        "P5": "unreadable",
        EVIL_ID: "missing",
    }
    reasons = dict(zip(index["accession"].to_pylist(), index["reason"].to_pylist(), strict=True))
    assert "differs from the Swiss-Prot sequence" in reasons["P4"]
    assert "HTML" in reasons["P5"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "O15552.pdb",
        f"{ACC}.cif",
        "index.parquet",
    ]
    assert not list(tmp_path.glob(".out.*"))


class _ModelServer:
    """A local HTTP server: ACC's model, an HTML page for O15552, 404 for the rest."""

    def __init__(self, models: Path) -> None:
        import http.server
        import threading

        self.requests: list[str] = []
        server_self = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                server_self.requests.append(self.path)
                name = self.path.rsplit("/", 1)[-1]
                if name == f"AF-{ACC}-F1-model_v6.cif":
                    body, status, kind = (models / f"{ACC}.cif").read_bytes(), 200, "text/plain"
                elif name.startswith("AF-O15552"):
                    body, status, kind = b"<!doctype html><html>login</html>", 200, "text/html"
                else:
                    body, status, kind = b"not found", 404, "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/files/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_structures_download_once_and_a_missing_model_is_not_asked_again(tmp_path, helix_structure):
    from protsae.browser.structures import collect_structures

    server = _ModelServer(write_structure_folder(tmp_path / "models", helix_structure))
    try:
        url = server.url + "AF-{accession}-F1-model_v6.cif"
        wanted = {a: SEQUENCES[a] for a in (ACC, "O15552", "P4")}
        args = dict(url=url, cache_dir=tmp_path / "cache", retries=0)
        index = collect_structures(wanted, tmp_path / "out", "alphafold", **args)
        status = dict(zip(index["accession"].to_pylist(), index["status"].to_pylist(), strict=True))
        assert status == {ACC: "ok", "O15552": "error", "P4": "not_found"}
        reasons = dict(
            zip(index["accession"].to_pylist(), index["reason"].to_pylist(), strict=True)
        )
        assert "HTML" in reasons["O15552"] and "AF-P4-F1-model_v6.cif" in reasons["P4"]
        assert sorted(server.requests) == sorted(
            f"/files/AF-{a}-F1-model_v6.cif" for a in (ACC, "O15552", "P4")
        )
        server.requests.clear()
        again = collect_structures(wanted, tmp_path / "out", "alphafold", **args)
        assert again.to_pylist() == index.to_pylist()
        # the cached model and the recorded 404 are not fetched again; the refused page is
        assert server.requests == ["/files/AF-O15552-F1-model_v6.cif"]
    finally:
        server.close()


@needs_clustalo
def test_rich_payload_tracks_quantiles_peaks_steering(rich_browser):
    latent0 = read_payload(rich_browser / "L3-k2-w3" / "0.js", "protsaeLatent")
    assert latent0["description"] == DESCRIPTION
    assert [s["id"] for s in latent0["sequences"]] == [EVIL_ID, ACC]
    by_id = {s["id"]: s for s in latent0["sequences"]}
    assert by_id[ACC]["structure"] == {"status": "ok", "file": f"structures/{ACC}.js"}
    assert by_id[EVIL_ID]["structure"]["status"] == "missing"
    # the REGION has no concept: not drawn
    assert [(f["label"], f["start"], f["end"]) for f in by_id[ACC]["features"]] == [
        ("active site <b>", 5, 6)
    ]
    # one sequence (O15552, 3.0) below the two shown: one bin
    assert [(b["label"], [e["id"] for e in b["examples"]]) for b in latent0["quantiles"]] == [
        ("67–100 %", ["O15552"])
    ]
    example = latent0["quantiles"][0]["examples"][0]
    assert example["positions"] == [3, 4] and example["argmax"] == 4
    assert example["sequence"] == SEQUENCES["O15552"]
    peaks = latent0["enrichment"]
    assert peaks["n_peaks"] == 3 and peaks["residues"][0]["aa"] == "Y"
    assert peaks["residues"][0]["peaks"] == 3 and peaks["residues"][0]["log2_enrichment"] > 2
    (steered,) = latent0["steered"]
    assert steered["original"] == STEER_ORIGINAL and steered["consensus"] == STEER_CONSENSUS
    assert [(s["multiplier"], s["sequence"]) for s in steered["steered"]] == sorted(STEERED.items())
    structure = read_payload(
        rich_browser / "L3-k2-w3" / "structures" / f"{ACC}.js", "protsaeStructure"
    )
    # the page gets the backbone of the checked mmCIF model, as PDB
    atoms = [line for line in structure["text"].splitlines() if line.startswith("ATOM")]
    assert structure["format"] == "pdb" and len(atoms) == 4 * len(SEQUENCES[ACC])
    assert {line[12:16].strip() for line in atoms} == {"N", "CA", "C", "O"}
    index = read_payload(rich_browser / "assets" / "index.js", "protsaeIndex")
    assert [row[2] for row in index["rows"]] == [DESCRIPTION, None, None]


def _colour(value: float, top: float) -> str:
    t = max(0.0, min(1.0, value / top))
    return "#" + "".join(
        f"{round(a + (b - a) * t):02x}" for a, b in ((255, 214), (255, 39), (255, 40))
    )


@needs_clustalo
@pytest.mark.slow
def test_latent_page_draws_the_structure_coloured_by_activation(rich_browser, chromium, viewer_js):
    import html

    url = (rich_browser / "latent.html").as_uri() + "#sae=L3-k2-w3&latent=0"
    assert (rich_browser / "assets" / "3Dmol-min.js").read_bytes() == viewer_js.read_bytes()
    assert (rich_browser / "assets" / "3Dmol-min.js.LICENSE.txt").is_file()
    dom = chromium.dom(url, webgl=True)
    assert 'id="status" class="ok"' in dom
    viewer = dom[dom.index('id="viewer"') :].split('id="viewer-hover"')[0]
    assert "<canvas" in viewer and f'data-rendered="{ACC}"' in dom
    record = re.search(r'<pre id="viewer-data" hidden="">(.*?)</pre>', dom, re.S).group(1)
    drawn = json.loads(html.unescape(record))
    payload = read_payload(rich_browser / "L3-k2-w3" / "0.js", "protsaeLatent")
    seq = next(s for s in payload["sequences"] if s["id"] == ACC)
    values = dict(zip(seq["positions"], seq["values"], strict=True))
    assert drawn["accession"] == ACC and len(drawn["residues"]) == len(SEQUENCES[ACC])
    for residue in drawn["residues"]:  # colours follow the activations, scaled to the latent max
        expected = _colour(values.get(residue["position"], 0.0), payload["max_act"])
        assert residue["colour"] == expected, residue
    assert drawn["residues"][4]["value"] == 3.5 and drawn["residues"][4]["resn"] == "TYR"
    # the top sequence without a file is named, with the reason, as text
    (missing,) = re.findall(r'<li data-id="[^"]*">(.*?)</li>', dom)
    assert missing == "P&amp;1\"q': no structure (no P&amp;1\"q'.cif or .pdb)"
    # the page's own requests: none to the network (net log)
    assert chromium.page_requests(url, webgl=True) == []
    # (data-rendered is set only after 3Dmol.js created its WebGL viewer and rendered; a
    # screenshot for the eye, 3000 px tall so the viewer is in it)
    chromium.screenshot(
        url, rich_browser.parent / "latent-structure.png", size="1280,3000", webgl=True
    )


@needs_clustalo
@pytest.mark.slow
def test_latent_page_tracks_links_quantiles_steering_in_chromium(rich_browser, chromium):
    url = (rich_browser / "latent.html").as_uri() + "#sae=L3-k2-w3&latent=0"
    dom = chromium.dom(url)
    assert 'id="status" class="ok"' in dom
    lead = re.search(r'<p id="description" class="lead">(.*?)</p>', dom).group(1)
    assert lead == "Fires on the AYI motif of &lt;i&gt;family&lt;/i&gt; one"
    # links: UniProt for a UniProt-shaped accession, plain text for others; InterPro for the family
    assert f'href="https://www.uniprot.org/uniprotkb/{ACC}/entry"' in dom
    assert 'href="https://www.uniprot.org/uniprotkb/P&amp;1' not in dom
    assert "https://www.ebi.ac.uk/interpro/entry/InterPro/IPR900001/" in dom
    # labelled statistics and histogram axes
    row = dom.split('<tr data-key="n_train_positive">')[1].split("</tr>")[0]
    assert re.match(
        r'<th title="family members among the training sequences">Members \(training\)</th>', row
    )
    assert "sequence's largest activation ÷ latent's largest" in dom and ">sequences</text>" in dom
    # tracks under ACC's row: the active site on the columns of residues 5-6
    payload = read_payload(rich_browser / "L3-k2-w3" / "0.js", "protsaeLatent")
    aligned = next(s["aligned"] for s in payload["sequences"] if s["id"] == ACC)
    columns = [i for i, letter in enumerate(aligned) if letter != "-"]
    track = dom.split('track-row" data-track="active site &lt;b&gt;"')[1].split("</div>")[0]
    cells = re.findall(r'<span class="res track( on)?"', track)
    assert {i for i, on in enumerate(cells) if on} == {columns[4], columns[5]}
    assert 'class="legend-item" data-track="active site &lt;b&gt;"' in dom
    assert 'data-track="REGION"' not in dom
    assert dom.count('class="msa-row ruler"') == 1
    # quantile section and its example, peak framed
    quantile = dom.split('class="quantile" data-label="67–100 %"')[1].split("</section>")[0]
    assert 'data-id="O15552"' in quantile and "res act peak" in quantile
    # peaks table and steered sequences with changes highlighted
    assert '<tr data-aa="Y">' in dom
    steered = dom.split('data-row="× 4"')[1].split("</div>")[0]
    assert len(re.findall(r'class="res changed to-consensus"', steered)) == 2
    assert len(re.findall(r'class="res changed"', steered)) == 1
    assert 'data-row="× 0.5"' in dom
    assert chromium.page_requests(url) == []


def test_quantile_bins_have_equal_counts_below_the_shown_sequences(tmp_path):
    """Latent 0 on 20 sequences (max activation 20 .. 1), the two strongest shown on top: the
    other 18 fall in three bins of 6, and each bin's example is its middle sequence."""
    from protsae.browser.examples import quantile_examples, read_latent_stats

    rows = [
        dict(
            latent=latent,
            id=f"s{i:02d}",
            split="test" if i % 2 else "train",
            length=30,
            max_act=float(20 - i) * (latent + 1),
            argmax=i,
            n_active=1,
            top_region_length=1,
            coverage=0.1,
            distances=[],
            distance_counts=[],
        )
        for latent in (1, 0)  # written out of order: the reader sorts
        for i in range(20 if latent == 0 else 3)
    ]
    path = tmp_path / "seq_stats.parquet"
    pq.write_table(pa.Table.from_pylist(rows, SEQ_STATS_SCHEMA), path)
    stats = read_latent_stats(path)
    bins = quantile_examples(stats, {0: {"s00", "s01"}, 1: {"s00", "s01", "s02"}}, 3, 1)
    assert set(bins) == {0}  # latent 1 has nothing below its shown sequences
    assert [(b["label"], b["n"], b["high"], b["low"]) for b in bins[0]] == [
        ("10–40 %", 6, 18.0, 13.0),
        ("40–70 %", 6, 12.0, 7.0),
        ("70–100 %", 6, 6.0, 1.0),
    ]
    assert [b["examples"][0]["id"] for b in bins[0]] == ["s05", "s11", "s17"]
    assert bins[0][0]["examples"][0] == dict(
        id="s05", split="test", max_act=15.0, argmax=5, n_active=1
    )
    two = quantile_examples(stats, {0: {"s00", "s01"}}, 1, 2)[0]
    assert [e["id"] for e in two[0]["examples"]] == ["s06", "s15"]  # spread over the bin
