"""Write the static feature browser: index.html, latent.html, assets/ and data/*.js.

Data travel as JavaScript files calling ``protsaeIndex(...)`` / ``protsaeLatent(...)``,
loaded by <script> tags: browsers block fetch() of local JSON under file://, not scripts.
The whole folder is built beside its destination and renamed into place at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import pandas as pd

from protsae.browser.align import align, clustalo_binary
from protsae.browser.data import (
    INDEX_COLUMNS,
    SaeTables,
    index_row,
    latent_payload,
    read_sae_tables,
    rows_by_latent,
    sequences_for,
)
from protsae.figures.max_activation import Membership
from protsae.latents.classes import PATTERN_CLASSES
from protsae.progress import get_logger
from protsae.sequences import read_entry_list

STATIC = ("index.html", "latent.html", "assets/browser.js", "assets/style.css")
_JS_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def js_call(function: str, payload) -> str:
    """``function(<payload as JSON>);`` with <, >, & and line separators escaped, so no
    string in the data can end a script or be read as markup."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, escape in _JS_ESCAPES.items():
        text = text.replace(char, escape)
    return f"{function}({text});\n"


def _copy_static(out: Path) -> None:
    package = resources.files("protsae.browser") / "static"
    for name in STATIC:
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((package / Path(name).name).read_bytes())


# Columns of the probes' top_latents and the steering summary a latent page shows.
PROBE_COLUMNS = ("task", "output", "sign", "rank", "coefficient")
STEERING_COLUMNS = (
    "multiplier",
    "bin_low",
    "bin_high",
    "n_positions",
    "fraction_unchanged",
    "fraction_baseline_unchanged",
    "kept",
    "skip_reason",
)


def _read_tables(paths: Sequence[str | os.PathLike[str]]) -> pd.DataFrame | None:
    frames = [pd.read_parquet(path) for path in paths]
    frames = [frame for frame in frames if len(frame)]
    return pd.concat(frames, ignore_index=True) if frames else None


def _probe_rows(probes: pd.DataFrame | None, tables: SaeTables) -> dict[int, list[dict]]:
    """Rows of the probes' ``top_latents`` tables that name latents of this SAE."""
    if probes is None:
        return {}
    rows = probes[
        (probes.features == f"sae-k{tables.k}-w{tables.width}") & (probes.layer == tables.layer)
    ]
    rows = rows.sort_values([c for c in ("task", "output", "sign", "rank") if c in rows.columns])
    keep = ["latent", *(c for c in PROBE_COLUMNS if c in rows.columns)]
    return rows_by_latent(rows[keep])


def _steering_rows(path: str | os.PathLike[str] | None) -> dict[int, list[dict]]:
    """Per-latent rows of an SAE's steering ``summary.parquet`` (none without one)."""
    if path is None:
        return {}
    summary = pd.read_parquet(path)
    rows = summary[(summary.scope == "latent") & summary.latent.notna()]
    keep = ["latent", *(c for c in STEERING_COLUMNS if c in rows.columns)]
    return rows_by_latent(rows[keep].sort_values(["latent", "multiplier", "bin_low"]))


def _write_sae(
    out: Path, tables: SaeTables, sequences: dict, names: dict, threads: int, binary: str
) -> list[dict]:
    """Write one SAE's latent data files; return their payloads (for the index)."""
    folder = out / "data" / tables.name
    folder.mkdir(parents=True)
    tops = dict(iter(tables.top.groupby("latent", sort=False)))
    empty = tables.top.iloc[:0]

    alignments: dict[frozenset, dict[str, str]] = {}  # latents often share top sequences

    def one(latent: int) -> dict:
        top = tops.get(latent, empty)
        missing = sorted(set(top.id) - set(sequences))
        if missing:
            raise ValueError(f"top sequences {missing[:5]} of latent {latent} not in Swiss-Prot")
        key = frozenset(top.id)
        if key not in alignments:
            ids = sorted(key)
            alignments[key] = dict(
                zip(ids, align([sequences[i] for i in ids], binary), strict=True)
            )
        aligned = [alignments[key][i] for i in top.id]
        payload = latent_payload(tables, latent, sequences, aligned, top, names)
        (folder / f"{latent}.js").write_text(js_call("protsaeLatent", payload), encoding="utf-8")
        return payload

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return list(pool.map(one, range(tables.width)))


def build_browser(
    out_dir: str | os.PathLike[str],
    saes: Sequence[Mapping[str, object]],
    swissprot_path: str | os.PathLike[str],
    entry_list_path: str | os.PathLike[str],
    top_sequences: int = 10,
    threads: int = 1,
    probe_paths: Sequence[str | os.PathLike[str]] = (),
    title: str = "",
) -> None:
    """Build the browser for ``saes``: one mapping per SAE with ``layer``, ``k``, ``width``,
    ``latents`` (its latents folder) and optionally ``steering`` (its steering
    ``summary.parquet``); ``probe_paths`` are the probes' ``top_latents.parquet`` files."""
    log = get_logger("protsae.browser")
    binary = clustalo_binary()
    membership = Membership.from_swissprot(swissprot_path)
    names = {acc: name for acc, (_, name) in read_entry_list(entry_list_path).items()}
    probes = _read_tables(probe_paths)
    every = []
    for sae in saes:
        coords = (int(sae["layer"]), int(sae["k"]), int(sae["width"]))
        name = "L{}-k{}-w{}".format(*coords)
        tables = read_sae_tables(sae["latents"], name, coords, membership, top_sequences)
        tables.probes = _probe_rows(probes, tables)
        tables.steering = _steering_rows(sae.get("steering"))
        every.append(tables)
    sequences = sequences_for(swissprot_path, {i for t in every for i in t.top.id})
    final = Path(out_dir)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent))
    try:
        _copy_static(work)
        rows = []
        for number, tables in enumerate(every):
            log.info("SAE %s: writing %d latent pages", tables.name, tables.width)
            payloads = _write_sae(work, tables, sequences, names, threads, binary)
            rows += [index_row(p, number) for p in payloads]
        index = {
            "title": title,
            "columns": list(INDEX_COLUMNS),
            "classes": list(PATTERN_CLASSES),
            "saes": [
                {"name": t.name, "label": f"layer {t.layer}, k {t.k}, width {t.width}"}
                for t in every
            ],
            "rows": rows,
        }
        (work / "data" / "index.js").write_text(js_call("protsaeIndex", index), encoding="utf-8")
        os.chmod(work, 0o755)
        if final.exists():
            shutil.rmtree(final)
        os.replace(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    log.info("feature browser: %d latents of %d SAEs in %s", len(rows), len(every), final)
