"""Rebuild the demo inputs in this directory from the project's shared test-data excerpts.

Usage: python resources/demo/make_demo_data.py --source-data DIR [--out DIR]

DIR has the layout of the shared excerpts described in PROVENANCE.md (uniref50/,
deeploc/, swissprot/, interpro/, flip/secondary_structure/). The output is byte-for-byte
reproducible: seeded synthetic sequences, gzip written without a timestamp.
What is real and what is synthetic is listed in PROVENANCE.md.
"""

from __future__ import annotations

import argparse
import gzip
import random
import re
import shutil
from pathlib import Path

import planted

SEED = 20250101
PLANTED_SEED = 20250102
N_RANDOM = 50
LENGTHS = (50, 400)
WIDTH = 60

# Approximate amino-acid composition of UniProtKB/Swiss-Prot (percent), used as the
# background for the synthetic sequences.
BACKGROUND = {
    "A": 8.25, "R": 5.53, "N": 4.06, "D": 5.45, "C": 1.37, "Q": 3.93, "E": 6.75,
    "G": 7.07, "H": 2.27, "I": 5.96, "L": 9.66, "K": 5.84, "M": 2.42, "F": 3.86,
    "P": 4.70, "S": 6.56, "T": 5.34, "W": 1.08, "Y": 2.92, "V": 6.87,
}  # fmt: skip

# Demo-only types for the InterPro accessions of the Swiss-Prot sample that the real
# entry.list excerpt lacks. Judgement from the short names, NOT InterPro's own types
# (InterPro would call the *_sf entries Homologous_superfamily, *_CS Conserved_site...).
DEMO_TYPES = {
    "IPR000440": "Family",  # NADH_UbQ/plastoQ_OxRdtase_su3
    "IPR038430": "Domain",  # NDAH_ubi_oxred_su3_sf
    "IPR031725": "Domain",  # ASMT_dimerisation
    "IPR016461": "Family",  # COMT-like
    "IPR001077": "Domain",  # O_MeTrfase_dom
    "IPR029063": "Domain",  # SAM-dependent_MTases_sf
    "IPR001623": "Domain",  # DnaJ_domain
    "IPR018253": "Domain",  # DnaJ_domain_CS
    "IPR036869": "Domain",  # J_dom_sf
    "IPR006187": "Family",  # Claudin
    "IPR003548": "Family",  # Claudin1
    "IPR017974": "Domain",  # Claudin_CS
    "IPR004031": "Family",  # PMP22/EMP/MP20/Claudin
    "IPR007275": "Domain",  # YTH_domain
    "IPR045168": "Family",  # YTH_prot
    "IPR012328": "Domain",  # Chalcone/stilbene_synth_C
    "IPR018088": "Domain",  # Chalcone/stilbene_synthase_AS
    "IPR001099": "Domain",  # Chalcone/stilbene_synthase_N
    "IPR011141": "Family",  # Polyketide_synthase_type-III
    "IPR016039": "Domain",  # Thiolase-like
    "IPR003372": "Family",  # PSII_PsbL
    "IPR037266": "Domain",  # PSII_PsbL_sf
    "IPR017941": "Domain",  # Rieske_2Fe-2S
    "IPR036922": "Domain",  # Rieske_2Fe-2S_sf
    "IPR023271": "Domain",  # Aquaporin-like
    "IPR000425": "Family",  # MIP
    "IPR022357": "Domain",  # MIP_CS
    "IPR011700": "Domain",  # bZIP_2
    "IPR000837": "Family",  # Leuzip_Fos
    "IPR004827": "Domain",  # TF_bZIP
}


def read_fasta(path: Path) -> list[tuple[str, str]]:
    records: list[tuple[str, list[str]]] = []
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            records.append((line[1:], []))
        elif line.strip():
            records[-1][1].append(line.strip())
    return [(header, "".join(lines)) for header, lines in records]


def fasta_text(header: str, sequence: str, width: int | None = WIDTH) -> str:
    if width is None:
        return f">{header}\n{sequence}\n"
    lines = [sequence[i : i + width] for i in range(0, len(sequence), width)]
    return f">{header}\n" + "\n".join(lines) + "\n"


def synthetic_records(rng: random.Random) -> list[tuple[str, str]]:
    letters, weights = zip(*BACKGROUND.items(), strict=True)

    def protein(length: int) -> str:
        return "M" + "".join(rng.choices(letters, weights, k=length - 1))

    def header(name: str, what: str) -> str:
        return f"UniRef50_{name} {what} n=1 Tax=synthetic construct TaxID=32630 RepID={name}"

    records = [
        (header(f"SYNTH{i:04d}", "Synthetic random protein"), protein(rng.randint(*LENGTHS)))
        for i in range(1, N_RANDOM + 1)
    ]
    # Legal but awkward records the sampler must handle (see PROVENANCE.md).
    x_seq = protein(180)
    records += [
        (header("DEMO_LOWERCASE", "Synthetic protein in lower case"), protein(150).lower()),
        (header("DEMO_STOP", "Synthetic protein ending in a stop"), protein(120) + "*"),
        (header("DEMO_X", "Synthetic protein with an unknown residue"), x_seq[:90] + "X" + x_seq[91:]),
        (header("DEMO_J", "Synthetic protein with J, outside the ESM alphabet"), x_seq[:60] + "J" + x_seq[61:]),
        (header("DEMO_LONG", "Synthetic protein longer than max_length"), protein(1100)),
    ]  # fmt: skip
    return records


def uniref_header(protein: planted.Protein) -> str:
    what = "Synthetic protein of planted famil" + ("ies" if len(protein.families) > 1 else "y")
    acc = protein.accession
    return f"UniRef50_{acc} {what} n=1 Tax=synthetic construct TaxID=32630 RepID={acc}"


def build_uniref50(source: Path, out: Path, proteins: list[planted.Protein]) -> None:
    rng = random.Random(SEED)
    text = [
        fasta_text(h, s, width=None)
        for h, s in read_fasta(source / "uniref50/some_proteins_part1.fasta")
    ]
    for header, sequence in read_fasta(source / "deeploc/deeploc_test_sample.fasta"):
        accession = header.split()[0]
        made_up = f"UniRef50_{accession} DeepLoc protein {accession} (synthetic header) n=1 Tax=unknown RepID={accession}"
        text.append(fasta_text(made_up, sequence))
    text += [fasta_text(h, s) for h, s in synthetic_records(rng)]
    text += [fasta_text(uniref_header(p), p.sequence) for p in proteins if p.source == "uniref50"]
    with (
        open(out / "uniref50.fasta.gz", "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz,
    ):
        gz.write("".join(text).encode("ascii"))


def build_entry_list(source: Path, out: Path, families: list[planted.Family]) -> None:
    real = (source / "interpro/entry.list").read_text().splitlines()
    known = {line.split("\t")[0] for line in real[1:]}
    dat = (source / "swissprot/sample.dat").read_text()
    rows = []
    for accession, name in re.findall(r"^DR   InterPro; (IPR\d+); (.*)\.$", dat, re.M):
        if accession not in known:
            known.add(accession)
            rows.append(f"{accession}\t{DEMO_TYPES[accession]}\t{name}")
    assert len(rows) == len(DEMO_TYPES) == 30, len(rows)
    rows += [f"{f.accession}\t{f.entry_type}\t{f.name}" for f in families]
    (out / "entry.list").write_text("\n".join(real + rows) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    source, out = args.source_data, args.out
    (out / "flip_ss").mkdir(parents=True, exist_ok=True)
    families, proteins = planted.planted_proteins(random.Random(PLANTED_SEED), BACKGROUND)
    build_uniref50(source, out, proteins)
    build_entry_list(source, out, families)
    by_accession = {f.accession: f for f in families}
    records = [
        planted.swissprot_record(p, by_accession) for p in proteins if p.source == "swissprot"
    ]
    real = (source / "swissprot/sample.dat").read_bytes()
    (out / "uniprot_sprot.dat").write_bytes(real + "".join(records).encode("ascii"))
    (out / "planted_families.tsv").write_text(planted.truth_table(families, proteins))
    shutil.copyfile(source / "deeploc/deeploc_test_sample.fasta", out / "deeploc.fasta")
    for name in ("sequences.fasta", "sampled.fasta", "mask.fasta"):
        shutil.copyfile(source / "flip/secondary_structure" / name, out / "flip_ss" / name)
    for path in sorted(out.rglob("*")):
        if path.is_file():
            print(f"{path.relative_to(out)}\t{path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
