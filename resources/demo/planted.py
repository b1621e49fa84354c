"""Synthetic protein families with a known answer, for the demo (imported by make_demo_data.py).

Each family descends from its own random ancestor (Swiss-Prot composition with a family-specific
bias toward a few residues). A member keeps
each ancestral residue outside the motifs with probability ``KEEP``, otherwise draws a new
one, and gains or loses short stretches, so members of one family share well under 30%
identity. The family's 2-3 motifs (6-12 residues) are copied into every member, except
at one or two "variable" motif positions, where a member may take one of a few alternative
residues, as real motifs do. Where each motif landed in each protein is returned, so the
truth is written beside the data (planted_families.tsv).

Accessions can never collide with real ones: InterPro accessions are ``IPR`` + six digits,
the synthetic ones ``IPRZ`` + five digits; UniProt accessions have a digit in their second
place, the synthetic ones begin ``SYN``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

N_FAMILIES = 12
DOMAIN_FAMILIES = (9, 10, 11)  # 0-based indices of the families typed Domain, not Family
SWISSPROT_MEMBERS = (20, 40)
UNIREF_MEMBERS = (40, 60)
# UniRef50's members are domain-length fragments: each ancestral linker cut to this share of
# its length (at least 8 residues), so the motifs are a larger part of what the demo's ESM-2 is
# trained on (about 21% of residues instead of 7%) and a tiny model learns them. UniRef50
# members of one family stay under 50% identity (the clustering that defines UniRef50);
# the Swiss-Prot members, which the latent analysis clusters at 30%, keep full-length linkers.
UNIREF_LINKER_SHARE = 0.25
ANCESTOR_LENGTH = (240, 360)
MOTIF_LENGTH = (6, 12)
KEEP = 0.05
# Motifs are at most this share of an ancestor (a family with long motifs gets a longer
# ancestor): motif identity adds to the ~20% a global alignment finds between unrelated
# linkers, and members must stay under 30% identity.
MAX_MOTIF_SHARE = 0.1
# Conserved sites are rich in residues that are rare overall (cysteines and histidines that
# bind metals, glycines and prolines that set turns, aromatics): motif residues are drawn
# from the background composition reweighted by these factors, which makes a motif stand out
# from the random background within a few residues.
# Families differ in composition, as real ones do (membrane families are hydrophobic, others
# charged or disordered): each family's ancestor and its members' new residues are drawn from
# the background with FAMILY_BIASED residues of the family's own choosing weighted by
# FAMILY_BIAS.
FAMILY_BIAS = 2.5
FAMILY_BIASED = 4
MOTIF_ENRICHMENT = {"C": 5.0, "W": 5.0, "H": 4.0, "Y": 3.0, "M": 3.0, "F": 2.0, "G": 2.0, "P": 2.0}
INDEL_EVERY = 40  # on average one insertion or deletion per this many linker residues
# Proteins carrying two families' motifs: (first family, second family, how many), 0-based.
FUSIONS = ((0, 9, 2), (1, 10, 2), (2, 3, 2))


@dataclass
class Motif:
    """A conserved stretch: its consensus and, per variable position, the residues allowed."""

    name: str
    consensus: str
    variable: dict[int, str]

    @property
    def pattern(self) -> str:
        """The motif as a regular expression, e.g. ``GK[ST]WC``."""
        return "".join(
            f"[{self.consensus[i]}{self.variable[i]}]" if i in self.variable else letter
            for i, letter in enumerate(self.consensus)
        )


@dataclass
class Family:
    accession: str
    entry_type: str
    name: str
    ancestor_linkers: list[str]
    motifs: list[Motif]
    composition: dict[str, float]


@dataclass
class Protein:
    """One synthetic protein: its sequence and where each family's motifs lie (0-based, end excl.)."""

    accession: str
    source: str  # "swissprot" or "uniref50"
    families: list[str]
    sequence: str = ""
    motif_spans: list[tuple[str, str, int, int]] = field(default_factory=list)


def _draw(rng: random.Random, background: dict[str, float], k: int) -> str:
    letters, weights = zip(*background.items(), strict=True)
    return "".join(rng.choices(letters, weights, k=k))


def make_family(index: int, rng: random.Random, background: dict[str, float]) -> Family:
    """A family: an ancestor cut by 2-3 motifs into linkers, and the motifs themselves."""
    accession = f"IPRZ{index + 1:05d}"
    n_motifs = rng.choice((2, 3))
    motifs = []
    motif_composition = {a: w * MOTIF_ENRICHMENT.get(a, 1.0) for a, w in background.items()}
    for m in range(n_motifs):
        consensus = _draw(rng, motif_composition, rng.randint(*MOTIF_LENGTH))
        positions = rng.sample(range(1, len(consensus) - 1), rng.choice((1, 2)))
        variable = {
            p: "".join(rng.sample([a for a in background if a != consensus[p]], 2))
            for p in sorted(positions)
        }
        motifs.append(Motif(f"{accession}.m{m + 1}", consensus, variable))
    motif_total = sum(len(m.consensus) for m in motifs)
    length = max(rng.randint(*ANCESTOR_LENGTH), math.ceil(motif_total / MAX_MOTIF_SHARE))
    linker_total = length - motif_total
    # n_motifs + 1 linkers, each at least 8 residues, so motifs never touch the ends
    cuts = sorted(rng.sample(range(8, linker_total - 8), n_motifs))
    bounds = [0, *cuts, linker_total]
    biased = set(rng.sample(sorted(background), FAMILY_BIASED))
    composition = {a: w * (FAMILY_BIAS if a in biased else 1.0) for a, w in background.items()}
    linker = _draw(rng, composition, linker_total)
    linkers = [linker[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    entry_type = "Domain" if index in DOMAIN_FAMILIES else "Family"
    name = f"Synthetic_planted_{entry_type.lower()}_{index + 1:02d}"
    return Family(accession, entry_type, name, linkers, motifs, composition)


def _mutate_linker(
    linker: str, rng: random.Random, background: dict[str, float], share: float = 1.0
) -> str:
    linker = linker[: max(8, round(len(linker) * share))]
    residues = [a if rng.random() < KEEP else _draw(rng, background, 1) for a in linker]
    for _ in range(sum(rng.random() < 1 / INDEL_EVERY for _ in linker)):
        where = rng.randrange(len(residues) + 1)
        size = rng.randint(1, 4)
        if rng.random() < 0.5 and len(residues) > size + 8:
            del residues[where : where + size]
        else:
            residues[where:where] = list(_draw(rng, background, size))
    return "".join(residues)


def _member_motif(motif: Motif, rng: random.Random) -> str:
    letters = list(motif.consensus)
    for position, alternatives in motif.variable.items():
        if rng.random() < 0.5:
            letters[position] = rng.choice(alternatives)
    return "".join(letters)


def add_member(protein: Protein, family: Family, rng: random.Random) -> None:
    """Append one new member of ``family`` to ``protein`` (a fusion gets a second family this way).

    A UniRef50 member's linkers are cut to ``UNIREF_LINKER_SHARE`` of the ancestor's.
    """
    background = family.composition
    share = UNIREF_LINKER_SHARE if protein.source == "uniref50" else 1.0
    parts = [_mutate_linker(family.ancestor_linkers[0], rng, background, share)]
    offset = len(protein.sequence) + len(parts[0])
    for motif, linker in zip(family.motifs, family.ancestor_linkers[1:], strict=True):
        occurrence = _member_motif(motif, rng)
        protein.motif_spans.append((family.accession, motif.name, offset, offset + len(occurrence)))
        parts.append(occurrence)
        parts.append(_mutate_linker(linker, rng, background, share))
        offset += len(occurrence) + len(parts[-1])
    protein.sequence += "".join(parts)
    if protein.sequence[0] != "M":
        protein.sequence = "M" + protein.sequence[1:]


def planted_proteins(
    rng: random.Random, background: dict[str, float]
) -> tuple[list[Family], list[Protein]]:
    """The families and every synthetic protein built from them, Swiss-Prot and UniRef50 alike."""
    families = [make_family(i, rng, background) for i in range(N_FAMILIES)]
    proteins = []
    for f, family in enumerate(families):
        for source, sizes, tag in (
            ("swissprot", SWISSPROT_MEMBERS, "M"),
            ("uniref50", UNIREF_MEMBERS, "U"),
        ):
            for m in range(rng.randint(*sizes)):
                protein = Protein(f"SYNF{f + 1:02d}{tag}{m + 1:03d}", source, [family.accession])
                add_member(protein, family, rng)
                proteins.append(protein)
    for first, second, count in FUSIONS:
        for source, tag in (("swissprot", "M"), ("uniref50", "U")):
            for m in range(count):
                accession = f"SYNX{first + 1:02d}{second + 1:02d}{tag}{m + 1:02d}"
                pair = [families[first], families[second]]
                protein = Protein(accession, source, [f.accession for f in pair])
                for family in pair:
                    add_member(protein, family, rng)
                proteins.append(protein)
    return families, proteins


# ---------------------------------------------------------------------------- file formats


def _sequence_lines(sequence: str) -> list[str]:
    blocks = [sequence[i : i + 10] for i in range(0, len(sequence), 10)]
    return ["     " + " ".join(blocks[i : i + 6]) for i in range(0, len(blocks), 6)]


def swissprot_record(protein: Protein, families: dict[str, Family]) -> str:
    """A Swiss-Prot flat-file record (the fields Biopython and the pipeline read, plus motif FTs)."""
    from Bio.SeqUtils import molecular_weight
    from Bio.SeqUtils.CheckSum import crc64

    sequence = protein.sequence
    names = " and ".join(families[acc].name for acc in protein.families)
    lines = [
        f"ID   {protein.accession + '_SYNTH':<24}Reviewed;{len(sequence):>12} AA.",
        f"AC   {protein.accession};",
        "DT   01-JAN-2025, integrated into UniProtKB/Swiss-Prot.",
        "DT   01-JAN-2025, sequence version 1.",
        "DT   01-JAN-2025, entry version 1.",
        f"DE   RecName: Full=Synthetic member of {names};",
        "OS   synthetic construct.",
        "OC   other entries; artificial sequences.",
        "OX   NCBI_TaxID=32630;",
        "CC   -!- CAUTION: Synthetic sequence made for the protsae demo (planted",
        "CC       family motifs in a random background); not a real protein.",
    ]
    lines += [f"DR   InterPro; {acc}; {families[acc].name}." for acc in protein.families]
    lines.append("PE   5: Uncertain;")
    for _, motif, start, end in protein.motif_spans:
        lines.append(f"FT   {'MOTIF':<16}{start + 1}..{end}")
        lines.append(f'FT                   /note="planted motif {motif}"')
    weight = round(molecular_weight(sequence, seq_type="protein"))
    lines.append(
        f"SQ   SEQUENCE{len(sequence):>6} AA;{weight:>7} MW;  {crc64(sequence)[4:]} CRC64;"
    )
    lines += _sequence_lines(sequence)
    lines.append("//")
    return "\n".join(lines) + "\n"


TSV_COLUMNS = ("protein", "source", "family", "family_type", "motif", "pattern", "start", "end",
               "occurrence")  # fmt: skip


def truth_table(families: list[Family], proteins: list[Protein]) -> str:
    """planted_families.tsv: one row per planted motif occurrence (0-based start, end exclusive)."""
    by_accession = {f.accession: f for f in families}
    motifs = {m.name: m for f in families for m in f.motifs}
    rows = ["\t".join(TSV_COLUMNS)]
    for protein in proteins:
        for family, motif, start, end in protein.motif_spans:
            fields = (protein.accession, protein.source, family, by_accession[family].entry_type,
                      motif, motifs[motif].pattern, start, end, protein.sequence[start:end])  # fmt: skip
            rows.append("\t".join(map(str, fields)))
    return "\n".join(rows) + "\n"
