"""Write the static feature browser: one folder per SAE (``{sae}/{latent}.js``, its structures,
``rows.json`` for the index), written by one job each, and the pages that list them
(``index.html``, ``latent.html``, ``assets/``), written by one small job.

Data travel as JavaScript files calling ``protsaeIndex(...)`` / ``protsaeLatent(...)`` /
``protsaeStructure(...)``, loaded by <script> tags: browsers block fetch() of local JSON under
file://, not scripts. An SAE's folder is built beside its destination and renamed into place;
each page file is written atomically.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path

import pandas as pd

from protsae.browser import examples as ex
from protsae.browser.align import align, clustalo_binary
from protsae.browser.data import (
    INDEX_COLUMNS,
    SaeTables,
    clean,
    index_row,
    latent_payload,
    read_sae_tables,
    rows_by_latent,
    sequences_for,
)
from protsae.figures.max_activation import Membership
from protsae.io import atomic_dir, atomic_path, write_text
from protsae.latents.classes import PATTERN_CLASSES
from protsae.progress import get_logger
from protsae.sequences import read_entry_list

STATIC = ("index.html", "latent.html", "assets/browser.js", "assets/style.css")
VIEWER = "assets/3Dmol-min.js"  # the molecular viewer, copied from the npm package by the index job
INDEX_DATA = "assets/index.js"
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
        with atomic_path(target) as tmp:
            tmp.write_bytes((package / Path(name).name).read_bytes())


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


def _example_rows(
    tables: SaeTables, sections: dict[int, list[dict]], sequences: Mapping[str, str]
) -> dict[int, list[dict]]:
    """Quantile bins with each example's sequence, and its per-residue values where the
    latent's ``top_examples`` kept them (else only the peak from ``seq_stats``)."""
    kept = tables.examples
    for latent, bins in sections.items():
        for section in bins:
            section["low"], section["high"] = clean(section["low"]), clean(section["high"])
            for row in section["examples"]:
                row["max_act"] = clean(row["max_act"])
                row["argmax"], row["n_active"] = int(row["argmax"]), int(row["n_active"])
                row["sequence"] = sequences[row["id"]]
                if (latent, row["id"]) in kept.index:
                    track = kept.loc[(latent, row["id"])]
                    row["positions"] = [int(p) for p in track.positions]
                    row["values"] = [clean(v) for v in track["values"]]
    return sections


def backbone_pdb(path: str | os.PathLike[str], fmt: str) -> str:
    """The backbone (N, CA, C, O) of the amino-acid residues of a checked PDB/mmCIF model as
    PDB text: all the cartoon needs, about a third of an AlphaFold DB model's bytes."""
    import io
    import warnings

    from Bio.PDB import PDBIO, MMCIFParser, PDBParser, Select
    from Bio.PDB.PDBExceptions import PDBConstructionWarning

    class Backbone(Select):
        def accept_residue(self, residue) -> bool:
            return residue.id[0] == " "

        def accept_atom(self, atom) -> bool:
            return atom.get_id() in ("N", "CA", "C", "O")

    parser = MMCIFParser(QUIET=True) if fmt == "cif" else PDBParser(QUIET=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PDBConstructionWarning)
        structure = parser.get_structure("s", str(path))
    out = io.StringIO()
    writer = PDBIO()
    writer.set_structure(next(iter(structure)))  # the first model
    writer.save(out, Backbone())
    return out.getvalue()


def _structure_files(out: Path, structures_dir: str | os.PathLike[str] | None) -> dict[str, dict]:
    """Write each usable structure as ``structures/{accession}.js``; accession -> what the
    page shows of it (its file, or why there is none)."""
    if structures_dir is None:
        return {}
    folder = Path(structures_dir)
    index = pd.read_parquet(folder / "index.parquet")
    info: dict[str, dict] = {}
    for row in index.itertuples():
        if row.status != "ok":
            info[row.accession] = {"structure": {"status": row.status, "reason": row.reason}}
            continue
        text = backbone_pdb(folder / row.path, row.format)
        name = f"structures/{row.accession}.js"
        payload = {"accession": row.accession, "format": "pdb", "text": text}
        (out / "structures").mkdir(exist_ok=True)
        (out / name).write_text(js_call("protsaeStructure", payload), encoding="utf-8")
        info[row.accession] = {"structure": {"status": "ok", "file": name}}
    return info


@dataclass(frozen=True)
class PageSources:
    """The files one SAE's pages draw on besides its latents folder: Swiss-Prot's table and
    entry list, the probes' ``top_latents.parquet`` files, the per-latent steering tables, and
    optionally the feature table, the latent descriptions and the structures folder."""

    swissprot_path: str | os.PathLike[str]
    entry_list_path: str | os.PathLike[str]
    probe_paths: Sequence[str | os.PathLike[str]] = ()
    steering_tables: Sequence[str | os.PathLike[str]] = ()
    features_path: str | os.PathLike[str] | None = None
    descriptions_path: str | os.PathLike[str] | None = None
    structures_dir: str | os.PathLike[str] | None = None


def build_sae_pages(
    out_dir: str | os.PathLike[str],
    sae: Mapping[str, object],
    sources: PageSources,
    top_sequences: int = 10,
    quantile_bins: int = 4,
    per_quantile: int = 2,
    threads: int = 1,
) -> int:
    """Write one SAE's folder of the browser: ``{latent}.js`` per latent, its structures and
    ``rows.json`` (its rows of the index); return the number of Clustal Omega alignments run.

    ``sae``: ``layer``, ``k``, ``width``, ``latents`` (its latents folder) and optionally
    ``steering`` (its steering ``summary.parquet``); ``sources`` the other files it reads."""
    log = get_logger("protsae.browser")
    binary = clustalo_binary()
    coords = (int(sae["layer"]), int(sae["k"]), int(sae["width"]))
    name = "L{}-k{}-w{}".format(*coords)
    membership = Membership.from_swissprot(sources.swissprot_path)
    names = {acc: label for acc, (_, label) in read_entry_list(sources.entry_list_path).items()}
    tables = read_sae_tables(sae["latents"], name, coords, membership, top_sequences)
    tables.probes = _probe_rows(_read_tables(sources.probe_paths), tables)
    tables.steering = _steering_rows(sae.get("steering"))
    stats = ex.read_latent_stats(Path(sae["latents"]) / "seq_stats.parquet")
    shown = {int(lat): set(rows.id) for lat, rows in tables.top.groupby("latent", sort=False)}
    sections = ex.quantile_examples(stats, shown, quantile_bins, per_quantile)
    sequences = sequences_for(
        sources.swissprot_path, {str(i) for i in stats.ids} | set(tables.top.id)
    )
    tables.extras = {
        "description": ex.descriptions(sources.descriptions_path),
        "quantiles": _example_rows(tables, sections, sequences),
        "enrichment": ex.peak_enrichment(stats, sequences, tables.width),
        "steered": ex.steered_examples(sources.steering_tables),
    }
    tracks = ex.feature_tracks(sources.features_path, set(tables.top.id))

    with atomic_dir(out_dir) as work:
        info = _structure_files(work, sources.structures_dir)
        for acc, rows in tracks.items():
            info.setdefault(acc, {})["features"] = rows
        payloads, aligned = _write_latents(work, tables, sequences, names, info, threads, binary)
        rows = {
            "name": name,
            "label": f"layer {tables.layer}, k {tables.k}, width {tables.width}",
            "columns": list(INDEX_COLUMNS),
            "rows": [index_row(p, 0)[1:] for p in payloads],
        }
        (work / "rows.json").write_text(json.dumps(rows, allow_nan=False), encoding="utf-8")
    log.info("SAE %s: %d latent pages, %d Clustal Omega alignments", name, len(payloads), aligned)
    return aligned


def _write_latents(
    out: Path,
    tables: SaeTables,
    sequences: Mapping[str, str],
    names: Mapping[str, str],
    info: Mapping[str, dict],
    threads: int,
    binary: str,
) -> tuple[list[dict], int]:
    """Write one SAE's latent data files; return their payloads and the alignments run."""
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
        payload = latent_payload(tables, latent, sequences, aligned, top, names, info)
        (out / f"{latent}.js").write_text(js_call("protsaeLatent", payload), encoding="utf-8")
        return payload

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        payloads = list(pool.map(one, range(tables.width)))
    return payloads, sum(len(key) > 1 for key in alignments)


def build_index(
    out_dir: str | os.PathLike[str],
    sae_dirs: Sequence[str | os.PathLike[str]],
    title: str = "",
    viewer: str | os.PathLike[str] | None = None,
) -> None:
    """Write the browser's pages, assets and index data over the SAE folders ``sae_dirs``
    (written by :func:`build_sae_pages`, inside ``out_dir``); ``viewer`` is 3Dmol.js's
    ``3Dmol-min.js``, copied into the assets (the latent page needs it for structures)."""
    out = Path(out_dir)
    saes, rows = [], []
    for number, folder in enumerate(sae_dirs):
        part = json.loads(Path(folder, "rows.json").read_text(encoding="utf-8"))
        if Path(folder).resolve().parent != out.resolve() or Path(folder).name != part["name"]:
            raise ValueError(f"{folder}: not the folder of SAE {part['name']} inside {out}")
        if part["columns"] != list(INDEX_COLUMNS):
            raise ValueError(f"{folder}/rows.json: columns {part['columns']} (rebuild the SAE)")
        saes.append({"name": part["name"], "label": part["label"]})
        rows += [[number, *row] for row in part["rows"]]
    _copy_static(out)
    if viewer is not None:
        with atomic_path(out / VIEWER) as tmp:
            shutil.copyfile(viewer, tmp)
        notice = Path(f"{viewer}.LICENSE.txt")  # 3Dmol.js's licence notices, beside it
        if notice.is_file():
            with atomic_path(out / f"{VIEWER}.LICENSE.txt") as tmp:
                shutil.copyfile(notice, tmp)
    index = {
        "title": title,
        "columns": list(INDEX_COLUMNS),
        "classes": list(PATTERN_CLASSES),
        "saes": saes,
        "rows": rows,
        "viewer": viewer is not None,
    }
    write_text(js_call("protsaeIndex", index), out / INDEX_DATA)
    get_logger("protsae.browser").info("index: %d latents of %d SAEs", len(rows), len(saes))


def build_browser(
    out_dir: str | os.PathLike[str],
    saes: Sequence[Mapping[str, object]],
    swissprot_path: str | os.PathLike[str],
    entry_list_path: str | os.PathLike[str],
    title: str = "",
    viewer: str | os.PathLike[str] | None = None,
    structures: Mapping[str, str | os.PathLike[str]] | None = None,
    **options,
) -> None:
    """The whole browser in one call (tests, small runs): :func:`build_sae_pages` for each
    SAE (``structures`` maps an SAE's name to its structures folder), then
    :func:`build_index`; ``options`` naming a :class:`PageSources` field go there, the others
    to :func:`build_sae_pages`."""
    out = Path(out_dir)
    names = {field.name for field in fields(PageSources)}
    files = {key: options.pop(key) for key in list(options) if key in names}
    folders = []
    for sae in saes:
        name = "L{}-k{}-w{}".format(sae["layer"], sae["k"], sae["width"])
        where = (structures or {}).get(name)
        sources = PageSources(swissprot_path, entry_list_path, structures_dir=where, **files)
        build_sae_pages(out / name, sae, sources, **options)
        folders.append(out / name)
    build_index(out, folders, title=title, viewer=viewer)
