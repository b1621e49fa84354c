"""`protsae clean`: outputs of an earlier grid are listed (--dry-run) and removed, never those
the current config makes, nor files no rule makes. Only the DAG is built: no job runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from workflow_runs import copy_workflow  # noqa: E402

from protsae.clean import workflow_products  # noqa: E402

pytestmark = [pytest.mark.workflow]

MODEL = "esm2_t4_demo"  # the demo's bundled ESM-2
R = "results/grid"
DOWNLOADS = "resources/downloads"

# What the current config (the demo's grid) makes, as an earlier run left it.
CURRENT = [
    f"{R}/sae/{MODEL}/L2/k8-w256/sae.json",
    f"{R}/logs/sae/{MODEL}/L2/k8-w256/train.log",
    f"{R}/steering/{MODEL}/L2/k8-w256/latent-5.parquet",  # family-specific: steered now
    f"{R}/logs/steering/{MODEL}/L2/k8-w256/steer-5.log",
    f"{R}/probes/{MODEL}/L2/expression/esm.json",
]
# What an earlier grid made and this one does not: a layer, a width, a latent, a probe layer.
STALE = [
    f"{R}/sae/{MODEL}/L1/k8-w256/sae.json",
    f"{R}/sae/{MODEL}/L1/k8-w256/sae.safetensors",
    f"{R}/logs/sae/{MODEL}/L1/k8-w256/train.log",
    f"{R}/benchmarks/sae/{MODEL}/L1/k8-w256/train.tsv",
    f"{R}/sae/{MODEL}/L2/k8-w512/eval.json",
    f"{R}/steering/{MODEL}/L2/k8-w256/latent-17.parquet",  # no longer family-specific
    f"{R}/logs/steering/{MODEL}/L2/k8-w256/steer-17.log",
    f"{R}/probes/{MODEL}/L1/expression/esm.json",
]
# What no rule makes: never touched.
FOREIGN = [
    f"{R}/report.html",
    f"{R}/sae/{MODEL}/L1/k8-w256/checkpoint/state.pt",
    f"{R}/my_notes.txt",
    f"{R}/browser/data/L9-k8-w256/3.js",  # inside the browser folder, a directory output
]


def _clean(workdir: Path, *args: str, status: int = 0) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "protsae", "clean", "config/grid.yaml", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == status, done.stdout + done.stderr
    return done


def _families(path: Path, specific: list[int]) -> None:
    """A latent_families checkpoint output: ``specific`` latents are family-specific."""
    latents = sorted({*specific, 17})
    pq.write_table(
        pa.table(
            {
                "latent": latents,
                "f1": [0.9 if n in specific else 0.2 for n in latents],
                "family_specific": [n in specific for n in latents],
            }
        ),
        path,
    )


def _finished_run(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every output of the config's DAG in place, as a finished run leaves it (one mtime, so
    nothing is newer than what it was made from)."""
    monkeypatch.chdir(workdir)
    products = workflow_products("Snakefile", "config/grid.yaml")
    monkeypatch.undo()
    for name in products.files:
        path = workdir / name
        if name in products.folders:
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("/families.parquet"):
            _families(path, [5] if "/L2/k8-w256/" in name else [])
        elif not path.exists():
            path.write_text("x")
    now = time.time()  # newer than the sources and the bundled model they were made from
    for path in [*workdir.joinpath(R).rglob("*"), *workdir.joinpath(DOWNLOADS).rglob("*")]:
        os.utime(path, (now, now), follow_symlinks=False)


def test_clean_lists_then_removes_only_outputs_of_an_earlier_grid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = copy_workflow(tmp_path / "repo")
    config = yaml.safe_load((workdir / "config/demo.yaml").read_text())
    config["results"] = R
    (workdir / "config/grid.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for name in CURRENT + STALE + FOREIGN:
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_text("x")

    # Before the families checkpoint has run, which latents are steered is not known.
    early = _clean(workdir, "--dry-run", status=1).stderr
    assert early.startswith(
        "protsae clean: the outputs of this config are not known yet: checkpoint jobs must run "
        f"first ({R}/latents/{MODEL}/L2/k4-w256/families.parquet, "
    )
    assert early.endswith("; run the workflow, then clean\n")

    _finished_run(workdir, monkeypatch)
    listed = _clean(workdir, "--dry-run").stdout
    assert listed == (
        f"{R}: would remove {len(STALE)} files that config/grid.yaml no longer makes:\n"
        + "".join(f"  {name}\n" for name in sorted(STALE))
        + "(dry run: nothing removed; run without --dry-run to remove them)\n"
    )
    assert all((workdir / name).exists() for name in CURRENT + STALE + FOREIGN)

    removed = _clean(workdir).stdout
    assert removed.startswith(f"{R}: removing {len(STALE)} files")
    assert not any((workdir / name).exists() for name in STALE)
    assert all((workdir / name).exists() for name in CURRENT + FOREIGN)
    assert not (workdir / f"{R}/logs/sae/{MODEL}/L1").exists()  # emptied folders go too
    assert (workdir / f"{R}/sae/{MODEL}/L1/k8-w256/checkpoint").is_dir()
    again = _clean(workdir, "--dry-run").stdout
    assert again == f"{R}: nothing to clean; every output there is made by config/grid.yaml\n"
