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
    esm = cfg.get("esm") if isinstance(cfg.get("esm"), dict) else {}
    results = Path(results) if results is not None else None
    return SaeFolder(folder, model, layer, k, width, results, esm)


def find_checkpoint(
    sae: SaeFolder,
    model: str | os.PathLike[str] | None = None,
    force_model: bool = False,
    logger: logging.Logger | None = None,
) -> Path:
    """The ESM-2 weights for ``sae``, checked against the ESM-2 ``sae.json`` says it was
    trained on (its ``esm`` record: :func:`protsae.esm.checkpoint.model_record`).

    ``model`` (``--model``): a checkpoint path or ``save_pretrained`` folder, ``hf:<id>``, or a
    fair-esm name looked up like the SAE's own. Without it: ``{model}.pt`` where the download
    stage puts it (``resources/downloads/``) or in torch hub's cache, then the record's
    ``esm.model`` as the user wrote it (a path, tried from the working directory and from the
    folders above the results). Weights whose layer count or sha256 differ from the record are
    refused, unless ``force_model`` (then a warning says how they differ); a different
    ``d_model`` cannot run the SAE at all and is always refused.
    """
    logger = logger or get_logger()
    if model is not None:
        found = _given_checkpoint(sae, str(model))
        _check_against_record(sae, found, f"--model {model}", force_model, logger)
        return found
    # The file the workflow's jobs loaded first (downloaded, converted from Hugging Face or
    # made here), then esm.model as the user wrote it (a local checkpoint: the demo's case).
    candidates = _named_paths(sae, sae.model) + _record_paths(sae)
    for candidate in dict.fromkeys(candidates):
        if candidate.exists():
            _check_against_record(sae, candidate, str(candidate), force_model, logger)
            return candidate
    raise InputError(
        f"{sae.path}: ESM-2 weights of model {sae.model!r} not found (looked for "
        f"{', '.join(str(c) for c in dict.fromkeys(candidates))}); pass --model PATH"
    )


def _roots(sae: SaeFolder) -> list[Path]:
    """Where relative paths of the workflow may start: the folders holding the results, then
    the working directory."""
    roots = [Path.cwd()]
    if sae.results is not None:
        roots = [*sae.results.resolve().parents, *roots]
    return list(dict.fromkeys(roots))


def _record_paths(sae: SaeFolder) -> list[Path]:
    """``esm.model`` of the record, when it is a path: as written, then from each root."""
    written = str(sae.esm.get("model") or "")
    if (
        not written
        or written.startswith("hf:")
        or not (written.endswith(".pt") or "/" in written or os.sep in written)
    ):
        return []
    path = Path(written).expanduser()
    if path.is_absolute():
        return [path]
    return [path, *(root / path for root in _roots(sae))]


def _named_paths(sae: SaeFolder, name: str) -> list[Path]:
    roots = _roots(sae)
    if sae.results is not None:
        roots = [sae.results.resolve(), *roots]
    candidates = [root / "resources" / "downloads" / f"{name}.pt" for root in roots]
    try:
        import torch.hub

        candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / f"{name}.pt")
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return candidates


def _given_checkpoint(sae: SaeFolder, model: str) -> Path:
    """``--model``: a checkpoint file or ``save_pretrained`` folder as it is; ``hf:<id>`` names
    the workflow's converted ``hf-<owner>--<name>.pt``; another name is looked up like the
    SAE's own."""
    if model.startswith("hf:"):
        from protsae.huggingface import HfModelError, parse_hf_model

        try:
            model = parse_hf_model(model).name
        except HfModelError as err:
            raise InputError(str(err).replace("config key esm.model", "--model")) from None
    path = Path(model).expanduser()
    if path.exists() or model.endswith(".pt"):
        if not path.exists():
            raise InputError(f"--model {model}: ESM-2 checkpoint not found")
        return path
    for candidate in dict.fromkeys(_named_paths(sae, model)):
        if candidate.is_file():
            return candidate
    raise InputError(
        f"{sae.path}: ESM-2 weights of model {model!r} not found (looked for {model}.pt in "
        f"{', '.join(str(c.parent) for c in dict.fromkeys(_named_paths(sae, model)))}); "
        "pass --model PATH"
    )


def _check_against_record(
    sae: SaeFolder, weights: Path, what: str, force: bool, logger: logging.Logger
) -> None:
    """Refuse weights other than the record's (see :func:`find_checkpoint`)."""
    # deferred: torch loads when encode runs, not when `protsae.encode` is looked up
    from protsae.esm.checkpoint import model_shape, weights_sha256

    record = sae.esm
    if not record:
        logger.warning(
            "%s: sae.json records no ESM-2 (an SAE written before protsae kept it); "
            "%s is used unchecked",
            sae.path,
            weights,
        )
        return
    trained = (
        f"{record.get('model_name')} ({record.get('model')}, {record.get('n_layers')} layers "
        f"x {record.get('d_model')}, sha256 {record.get('model_sha256')})"
    )
    try:
        n_layers, d_model = model_shape(weights)
    except (ValueError, OSError) as err:
        raise InputError(f"{what}: {err}") from None
    if d_model != record.get("d_model"):
        raise InputError(
            f"{what}: an ESM-2 with d_model {d_model}; the SAE in {sae.path} was trained on "
            f"{trained} and cannot read its activations (--force-model cannot help)"
        )
    sha256 = weights_sha256(weights)
    problems = []
    if n_layers != record.get("n_layers"):
        problems.append(f"{n_layers} layers, not {record.get('n_layers')}")
    if sha256 != record.get("model_sha256"):
        problems.append(f"sha256 {sha256}, not {record.get('model_sha256')}")
    if not problems:
        return
    message = (
        f"{what}: not the ESM-2 the SAE in {sae.path} was trained on ({'; '.join(problems)}); "
        f"it was trained on {trained}"
    )
    if not force:
        raise InputError(f"{message}. Pass --force-model to encode with these weights anyway")
    logger.warning("%s; encoding with them anyway (--force-model)", message)


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
