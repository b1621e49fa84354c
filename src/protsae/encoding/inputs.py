"""What ``protsae encode`` checks before any compute: the SAE folder, the ESM-2 checkpoint, the
FASTA records and the latent tables that annotate the output."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from protsae.encoding.types import MAX_RESIDUES, SaeFolder, SequenceLatents
from protsae.progress import get_logger
from protsae.sequences import InputError, esm_residue_letters, read_fasta


def sae_folder(
    path: str | os.PathLike[str], results: str | os.PathLike[str] | None = None
) -> SaeFolder:
    """Check that ``path`` is an SAE folder (``sae.json`` + ``sae.safetensors``) and read its identity.

    ``results`` defaults to the folder three levels above ``sae/`` when ``path`` has the
    workflow's ``.../sae/{model}/L{layer}/k{k}-w{width}`` shape.
    """
    import json

    folder = Path(path)
    if folder.is_file() and folder.name == "sae.safetensors":
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{folder}: SAE folder not found")
    missing = [name for name in ("sae.json", "sae.safetensors") if not (folder / name).is_file()]
    if missing:
        raise InputError(
            f"{folder}: not an SAE folder (no {' or '.join(missing)}; expected "
            "results/sae/{model}/L{layer}/k{k}-w{width})"
        )
    try:
        cfg = json.loads((folder / "sae.json").read_text())
        k, width = int(cfg["k"]), int(cfg["width"])
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{folder / 'sae.json'}: not a valid SAE config ({err})") from err
    layer = int(cfg.get("layer", -1))
    if layer < 0 and folder.parent.name[:1] == "L" and folder.parent.name[1:].isdigit():
        layer = int(folder.parent.name[1:])
    if layer < 0:
        raise InputError(f"{folder / 'sae.json'}: no layer, and the folder is not under L<layer>/")
    model = str(cfg.get("model") or folder.parent.parent.name)
    if results is None and len(folder.parents) > 3 and folder.parents[2].name == "sae":
        results = folder.parents[3]
    return SaeFolder(folder, model, layer, k, width, Path(results) if results is not None else None)


def find_checkpoint(sae: SaeFolder, model: str | os.PathLike[str] | None = None) -> Path:
    """The ESM-2 weights for ``sae``: ``model`` when given (a path, or a fair-esm name looked up
    like the SAE's own), else ``{model}.pt`` where the workflow's download stage puts it
    (``resources/downloads/`` beside the results folder or the working directory) or in
    torch hub's checkpoint cache. A Hugging Face ``save_pretrained`` folder is used as it is
    (converted in memory); ``hf:<id>`` names the workflow's converted ``hf-<owner>--<name>.pt``."""
    if model is not None and Path(model).is_dir():
        return Path(model)
    if model is not None and str(model).startswith("hf:"):
        from protsae.huggingface import HfModelError, parse_hf_model

        try:
            model = parse_hf_model(str(model)).name
        except HfModelError as err:
            raise InputError(str(err).replace("config key esm.model", "--model")) from None
    if model is not None and (Path(model).is_file() or str(model).endswith(".pt")):
        if not Path(model).is_file():
            raise InputError(f"{model}: ESM-2 checkpoint not found")
        return Path(model)
    name = str(model) if model is not None else sae.model
    roots = [Path.cwd()]
    if sae.results is not None:
        roots = [sae.results.resolve(), *sae.results.resolve().parents, *roots]
    candidates = [root / "resources" / "downloads" / f"{name}.pt" for root in roots]
    try:
        import torch.hub

        candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / f"{name}.pt")
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    for candidate in dict.fromkeys(candidates):
        if candidate.is_file():
            return candidate
    raise InputError(
        f"{sae.path}: ESM-2 weights of model {name!r} not found (looked for {name}.pt in "
        f"{', '.join(str(c.parent) for c in dict.fromkeys(candidates))}); pass --model PATH"
    )


def read_records(
    fasta: str | os.PathLike[str], skip_long: bool = False, logger: logging.Logger | None = None
) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """Every record of ``fasta`` checked for ESM-2: returns (records, skipped ids, cropped ids).

    Empty records and residues outside ESM-2's alphabet are errors naming the record; a
    sequence longer than 1022 residues is cropped to its first 1022 with a warning, or
    skipped with ``skip_long``.
    """
    logger = logger or get_logger()
    letters = frozenset(esm_residue_letters())
    records, skipped, cropped = [], [], []
    if not Path(fasta).is_file():
        raise InputError(f"{fasta}: FASTA file not found")
    for number, record in enumerate(read_fasta(fasta, logger=logger), start=1):
        seq = record.sequence
        bad = set(seq) - letters
        if bad:
            raise InputError(
                f"{fasta}: record #{number} ({record.id!r}) has characters outside ESM-2's "
                f"alphabet: {''.join(sorted(bad))!r}"
            )
        if len(seq) > MAX_RESIDUES:
            if skip_long:
                logger.warning(
                    "%s: %r has %d residues > %d: skipped", fasta, record.id, len(seq), MAX_RESIDUES
                )
                skipped.append(record.id)
                continue
            logger.warning(
                "%s: %r has %d residues > %d: cropped to the first %d",
                fasta,
                record.id,
                len(seq),
                MAX_RESIDUES,
                MAX_RESIDUES,
            )
            cropped.append(record.id)
            seq = seq[:MAX_RESIDUES]
        records.append((record.id, seq))
    if not records:
        raise InputError(f"{fasta}: no sequences to encode")
    return records, skipped, cropped


def read_annotations(sae: SaeFolder) -> pa.Table | None:
    """``latent, pattern_class, family, f1, family_threshold, family_specific, latent_max`` from
    the SAE's latent tables, or None. ``latent_max`` is the latent's maximum over the train split
    of the evaluation set (``top_examples`` rank 0), the scale family thresholds are fractions of;
    ``description`` the generated one of ``descriptions.parquet``."""
    folder = sae.latents_dir
    if folder is None:
        return None
    tables = []
    if (folder / "classes.parquet").is_file():
        tables.append(
            pq.read_table(folder / "classes.parquet", columns=["latent", "pattern_class"])
        )
    if (folder / "families.parquet").is_file():
        families = pq.read_table(folder / "families.parquet")
        columns = ["latent", "family", "f1", "family_specific"]
        if "threshold" in families.column_names:
            families = families.append_column("family_threshold", families["threshold"])
            columns.insert(3, "family_threshold")
        tables.append(families.select(columns))
    if (folder / "top_examples.parquet").is_file():
        top = pq.read_table(folder / "top_examples.parquet", columns=["latent", "split", "max_act"])
        top = top.filter(pc.equal(top["split"], "train"))
        maxima = top.group_by("latent").aggregate([("max_act", "max")])
        tables.append(maxima.rename_columns(["latent", "latent_max"]))
    if (folder / "descriptions.parquet").is_file():
        tables.append(
            pq.read_table(folder / "descriptions.parquet", columns=["latent", "description"])
        )
    if not tables:
        return None
    tables = [t.set_column(0, "latent", t["latent"].cast(pa.int32())) for t in tables]
    joined = tables[0]
    for table in tables[1:]:
        joined = joined.join(table, "latent", join_type="full outer")
    return joined


def annotate(row: dict, note: dict) -> dict:
    """One active latent of a sequence with what the grid learned about it: its value as a
    fraction of the latent's train maximum, and whether that passes the family threshold
    (``predicted_member``: value >= threshold x the latent's max; null without a threshold)."""
    latent_max = note.get("latent_max")
    fraction = row["max_value"] / latent_max if latent_max else None
    threshold = note.get("family_threshold")
    member = None if fraction is None or threshold is None else bool(fraction >= threshold)
    return {
        **row,
        "fraction_of_latent_max": fraction,
        "pattern_class": note.get("pattern_class"),
        "family": note.get("family"),
        "f1": note.get("f1"),
        "family_threshold": threshold,
        "family_specific": note.get("family_specific"),
        "predicted_member": member,
        "description": note.get("description"),
    }


def ranked_latents(item: SequenceLatents, notes: dict[int, dict]) -> list[dict]:
    """A sequence's active latents, annotated, strongest first by fraction of the latent's max
    (an always-on latent with a large raw value does not hide a family latent near its own
    max); latents without a known max follow, by raw value."""
    rows = [annotate(row, notes.get(row["latent"], {})) for row in item.strongest().to_pylist()]

    def key(row: dict) -> tuple:
        fraction = row["fraction_of_latent_max"]
        return (fraction is None, -(fraction or 0.0), -row["max_value"], row["latent"])

    return sorted(rows, key=key)
