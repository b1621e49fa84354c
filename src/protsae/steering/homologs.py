"""One family-specific latent's steering target: its family, top sequences, maximum activation,
and the conservation of its family at each residue of those sequences.

The sequences steered are the latent's top-activating sequences (``top_examples``, both splits,
by max activation) that are members of its family, at most ``n_sequences`` of them: the family's
conservation only describes its members. Each gets its own alignment (itself and its BLAST hits
in the family); a sequence with fewer than ``min_homologs`` such hits is skipped, and a latent
left with none is skipped; the reasons go to the log and into the table's metadata.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from protsae.progress import get_logger
from protsae.sequences.align import clustal_align
from protsae.steering.blast import Record, blastp, family_hits
from protsae.steering.conservation import sequence_conservation

CONSERVATION_SCHEMA = pa.schema(
    [
        pa.field("latent", pa.int32()),
        pa.field("family", pa.string()),
        pa.field("id", pa.string()),
        pa.field("pos", pa.int32()),
        pa.field("residue", pa.string()),
        pa.field("consensus", pa.string()),
        pa.field("conservation", pa.float32()),
        pa.field("entropy", pa.float32()),
        pa.field("n_homologs", pa.int32()),
    ]
)
ALIGNMENT_SCHEMA = pa.schema(
    [
        pa.field("latent", pa.int32()),
        pa.field("id", pa.string()),
        pa.field("member", pa.string()),
        pa.field("evalue", pa.float64()),
        pa.field("bitscore", pa.float64()),
        pa.field("aligned", pa.string()),
    ]
)
#: Parquet metadata keys of the per-latent tables.
META_LATENT, META_FAMILY = b"protsae.latent", b"protsae.family"
META_MAX, META_SKIP = b"protsae.max_activation", b"protsae.skip_reason"


@dataclass
class LatentTarget:
    """What steering one latent needs: its family, the sequences to steer, the clamp scale."""

    latent: int
    family: str
    max_activation: float
    sequences: list[Record]
    skip_reason: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    def metadata(self) -> dict[bytes, bytes]:
        meta = {
            META_LATENT: str(self.latent).encode(),
            META_FAMILY: self.family.encode(),
            META_MAX: repr(self.max_activation).encode(),
        }
        if self.skip_reason:
            meta[META_SKIP] = self.skip_reason.encode()
        return meta


def swissprot_entries(
    swissprot_path: str | os.PathLike[str], accessions: Sequence[str]
) -> dict[str, tuple[str, list[str]]]:
    """``{accession: (sequence, families)}`` for the given accessions found in the table."""
    table = pq.read_table(swissprot_path, columns=["accession", "sequence", "families"])
    table = table.filter(pc.is_in(table["accession"], pa.array(list(accessions), pa.string())))
    return {
        acc: (seq, list(fams or []))
        for acc, seq, fams in zip(
            table["accession"].to_pylist(),
            table["sequence"].to_pylist(),
            table["families"].to_pylist(),
            strict=True,
        )
    }


def read_target(
    latent: int,
    families_path: str | os.PathLike[str],
    top_examples_path: str | os.PathLike[str],
    swissprot_path: str | os.PathLike[str],
    n_sequences: int,
) -> LatentTarget:
    """The latent's family, maximum activation and top member sequences (at most ``n_sequences``)."""
    families = pq.read_table(families_path, columns=["latent", "family"])
    row = families.filter(pc.equal(families["latent"], latent))
    if row.num_rows != 1 or row["family"][0].as_py() is None:
        raise ValueError(f"{families_path}: latent {latent} has no family row")
    family = row["family"][0].as_py()
    top = pq.read_table(top_examples_path, columns=["latent", "id", "max_act"])
    top = top.filter(pc.equal(top["latent"], latent)).sort_by([("max_act", "descending")])
    if top.num_rows == 0:
        raise ValueError(f"{top_examples_path}: latent {latent} has no top examples")
    max_activation = float(top["max_act"][0].as_py())
    ranked = list(dict.fromkeys(top["id"].to_pylist()))  # both splits, best first, once each
    entries = swissprot_entries(swissprot_path, ranked)
    members = [a for a in ranked if a in entries and family in entries[a][1]]
    target = LatentTarget(
        latent, family, max_activation, [(a, entries[a][0]) for a in members[:n_sequences]]
    )
    if not target.sequences:
        target.skip_reason = f"none of its {len(ranked)} top sequences is in family {family}"
    return target


def _tables(target: LatentTarget, rows: list[dict], aligned: list[dict]) -> tuple[pa.Table, ...]:
    meta = target.metadata()
    conservation = pa.Table.from_pylist(rows, schema=CONSERVATION_SCHEMA.with_metadata(meta))
    alignments = pa.Table.from_pylist(aligned, schema=ALIGNMENT_SCHEMA.with_metadata(meta))
    return conservation, alignments


@dataclass(frozen=True)
class HomologSearch:
    """The BLAST search for a steered sequence's family members: hits up to ``evalue``, at
    most ``max_hits`` of them, and at least ``min_homologs`` family members to keep it."""

    evalue: float
    max_hits: int
    min_homologs: int


def latent_conservation(
    target: LatentTarget,
    swissprot_path: str | os.PathLike[str],
    db_prefix: str | os.PathLike[str],
    search: HomologSearch,
    threads: int = 1,
    workdir: str | os.PathLike[str] | None = None,
    logger: logging.Logger | None = None,
) -> tuple[pa.Table, pa.Table]:
    """(conservation per residue of each steered sequence, the alignments' rows).

    Sequences without ``search.min_homologs`` family hits are dropped (reason logged, kept in
    ``target.skipped``); when none is left ``target.skip_reason`` says why and the tables are
    empty. Both tables carry the target's metadata.
    """
    logger = logger or get_logger()
    if target.skip_reason:
        logger.warning("latent %d skipped: %s", target.latent, target.skip_reason)
        return _tables(target, [], [])
    min_homologs = search.min_homologs
    hits = blastp(target.sequences, db_prefix, search.evalue, search.max_hits, threads, workdir)
    subjects = {h.subject for found in hits.values() for h in found}
    entries = swissprot_entries(swissprot_path, sorted(subjects))
    families_of = {acc: fams for acc, (_, fams) in entries.items()}
    rows: list[dict] = []
    aligned_rows: list[dict] = []
    for seq_id, sequence in target.sequences:
        homologs = family_hits(hits[seq_id], seq_id, target.family, families_of)
        if len(homologs) < min_homologs:
            reason = (
                f"{len(homologs)} BLAST hit(s) in {target.family} (e-value <= {search.evalue}), "
                f"{min_homologs} needed"
            )
            target.skipped[seq_id] = reason
            logger.warning("latent %d: sequence %s skipped: %s", target.latent, seq_id, reason)
            continue
        records = [(seq_id, sequence)] + [(h.subject, entries[h.subject][0]) for h in homologs]
        aligned = clustal_align(records, threads, workdir)
        stats = sequence_conservation(aligned[seq_id], [aligned[h.subject] for h in homologs])
        if stats.residues != sequence.upper():
            raise RuntimeError(f"clustalo changed sequence {seq_id} while aligning it")
        logger.info("latent %d: %s aligned with %d homologs", target.latent, seq_id, len(homologs))
        base = {"latent": target.latent, "id": seq_id}
        aligned_rows.append({**base, "member": seq_id, "aligned": aligned[seq_id]})
        aligned_rows += [
            {**base, "member": h.subject, "evalue": h.evalue, "bitscore": h.bitscore}
            | {"aligned": aligned[h.subject]}
            for h in homologs
        ]
        for pos, residue in enumerate(sequence):
            entropy = float(stats.entropy[pos])
            rows.append(
                {**base, "family": target.family, "pos": pos, "residue": residue}
                | {"consensus": stats.consensus[pos], "n_homologs": stats.n_homologs}
                | {"conservation": float(stats.conservation[pos])}
                | {"entropy": None if entropy != entropy else entropy}
            )
    if not rows:
        detail = "; ".join(f"{s}: {r}" for s, r in target.skipped.items())
        target.skip_reason = (
            f"no steered sequence has enough homologs in {target.family} ({detail})"
        )
        logger.warning("latent %d skipped: %s", target.latent, target.skip_reason)
    return _tables(target, rows, aligned_rows)


def read_skip_reason(path: str | os.PathLike[str]) -> str | None:
    """The skip reason stored in a per-latent table's metadata, if any."""
    meta = pq.read_schema(path).metadata or {}
    return meta[META_SKIP].decode() if META_SKIP in meta else None
