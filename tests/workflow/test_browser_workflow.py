"""The structures stage and the per-SAE browser in the finished demo: switching structures on
(a folder of models the test writes) reruns only the structures and browser jobs, a model of
another sequence is skipped and named, and a latent page draws its structure."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from workflow_runs import pending_files, shrink_demo, snakemake, write_config  # noqa: E402

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
VIEWER = REPO / "tools/viewer/node_modules/3dmol/build/3Dmol-min.js"
RESULTS = shrink_demo(yaml.safe_load((REPO / "config" / "demo.yaml").read_text()))["results"]


def test_structures_from_a_folder_rerun_only_the_browser_and_are_drawn(
    finished: Path, tmp_path: Path, chromium, helix_structure
):
    from Bio.PDB import PDBIO

    if not VIEWER.is_file():
        reason = "3Dmol.js not installed (make setup runs npm ci in tools/viewer; needs npm)"
        if os.environ.get("PROTSAE_REQUIRE_OPTIONAL"):
            pytest.fail(reason)
        pytest.skip(reason)
    workdir = tmp_path / "repo"
    shutil.copytree(finished, workdir, symlinks=True)
    (workdir / "tools").symlink_to(REPO / "tools")
    swissprot = pq.read_table(workdir / RESULTS / "sequences/swissprot.parquet").to_pylist()
    models = tmp_path / "models"
    models.mkdir()
    writer = PDBIO()
    for row in swissprot:  # a helix of every entry's sequence; the first gets another sequence
        wrong = row is swissprot[0]
        writer.set_structure(helix_structure("MKV" * 5 if wrong else row["sequence"]))
        writer.save(str(models / f"{row['accession']}.pdb"))

    def structures_on(config):
        config["structures"] = {"source": "dir", "dir": str(models), "top_sequences": 2}

    config = str(write_config(workdir, "structures", structures_on, base="small"))
    pending = pending_files(workdir, "--configfile", config)
    assert set(pending.values()) == {"structures", "browser_sae", "browser_index"}, pending
    snakemake(workdir, "--configfile", config, "--cores", "2", timeout=900)

    browser = workdir / RESULTS / "browser"
    assert (browser / "assets" / "3Dmol-min.js").read_bytes() == VIEWER.read_bytes()
    drawn = None
    for folder in sorted((workdir / RESULTS / "structures").iterdir()):
        index = pq.read_table(folder / "index.parquet").to_pylist()
        assert index and {r["status"] for r in index} <= {"ok", "mismatch"}
        for row in index:
            if row["accession"] == swissprot[0]["accession"]:
                assert row["status"] == "mismatch" and "differs" in row["reason"]
        for page in sorted((browser / folder.name).glob("*.js")):
            payload = json.loads(page.read_text()[len("protsaeLatent(") : -3])
            ok = [s for s in payload["sequences"] if s.get("structure", {}).get("status") == "ok"]
            if drawn is None and ok:
                drawn = (folder.name, payload["latent"], ok[0]["id"])
    assert drawn is not None, "no latent page has a structure"
    sae, latent, accession = drawn
    url = (browser / "latent.html").as_uri() + f"#sae={sae}&latent={latent}"
    dom = chromium.dom(url, webgl=True)
    assert f'data-rendered="{accession}"' in dom and "<canvas" in dom
    record = re.search(r'<pre id="viewer-data" hidden="">(.*?)</pre>', dom, re.S).group(1)
    assert json.loads(record.replace("&quot;", '"'))["accession"] == accession
    assert chromium.page_requests(url, webgl=True) == []
