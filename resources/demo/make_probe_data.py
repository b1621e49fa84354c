"""Build the demo's probe data sets (resources/demo/PROVENANCE.md, "Probe data"), byte for byte.

    python resources/demo/make_probe_data.py

Reads the bundled real excerpts `deeploc.fasta` and `flip_ss/` and writes, beside them:

- `flip_ss_splits.zip`: the three `flip_ss/*.fasta` files packed as FLIP ships them
  (`splits/sequences.fasta`, ...), unchanged;
- `deeploc_probe.fasta`: `deeploc.fasta` with a seeded 70% of its records marked as training
  records (their ` test` field removed) -- a SYNTHETIC split, the records are all DeepLoc test ones;
- `meltome_splits.zip`: SYNTHETIC thermostability data in FLIP's meltome layout
  (`splits/{mixed_split,human,human_cell}.csv`, `sequence,target,set,validation`), whose target
  is planted in the sequence: a linear function of its share of I/L/V/F/M residues plus noise;
- `cho_expression.csv`: SYNTHETIC CHO expression data in the CSV layout of the real file
  (`Status` Pass / Fail..., `Construct.seq..aa.`, CRLF, a non-ASCII header), whose label is planted:
  expressed constructs carry the motif `WHCW` five times, the others no W, H or C at all.

Seeded (random.Random) and written without timestamps, so reruns give identical bytes.
"""

from __future__ import annotations

import argparse
import io
import random
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20251203
HYDROPHOBIC = "ILVFM"
OTHERS = "ADEGKNPQRSTY"  # no W, H, C: those letters mark the CHO motif alone
MOTIF = "WHCW"


def stored_zip(files: dict[str, bytes]) -> bytes:
    """A zip with fixed member metadata (no timestamps, no compression-library dependence)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def flip_secondary_structure(source: Path) -> bytes:
    names = ("sequences", "sampled", "mask")
    return stored_zip({f"splits/{n}.fasta": (source / f"{n}.fasta").read_bytes() for n in names})


def deeploc_with_training(path: Path, rng: random.Random, train_share: float = 0.7) -> bytes:
    lines = path.read_bytes().decode().split("\n")
    headers = [i for i, line in enumerate(lines) if line.startswith(">")]
    chosen = set(rng.sample(headers, round(train_share * len(headers))))
    for i in chosen:
        lines[i] = lines[i].removesuffix(" test")
    return "\n".join(lines).encode()


def thermo_sequence(rng: random.Random) -> tuple[str, float]:
    share = rng.uniform(0.1, 0.6)
    length = rng.randint(50, 150)
    residues = [
        rng.choice(HYDROPHOBIC) if rng.random() < share else rng.choice(OTHERS)
        for _ in range(length)
    ]
    sequence = "M" + "".join(residues)
    measured = sum(c in HYDROPHOBIC for c in sequence) / len(sequence)
    return sequence, 35.0 + 50.0 * measured + rng.gauss(0.0, 1.0)


def meltome(rng: random.Random, n: int = 240) -> bytes:
    rows = []
    for i in range(n):
        sequence, target = thermo_sequence(rng)
        if i % 5 == 4:
            split, validation = "test", ""
        else:
            split, validation = "train", "True" if rng.random() < 0.15 else "False"
        rows.append(f"{sequence},{target:.2f},{split},{validation}\n")
    header = "sequence,target,set,validation\n"
    csvs = {
        "mixed_split": header + "".join(rows),
        "human": header + "".join(rows[: n // 2]),
        "human_cell": header + "".join(rows[n // 2 :]),
    }
    return stored_zip({f"splits/{name}.csv": text.encode() for name, text in csvs.items()})


def cho_sequence(rng: random.Random, expressed: bool) -> str:
    residues = [rng.choice(OTHERS) for _ in range(rng.randint(60, 160))]
    if expressed:
        for _ in range(5):
            at = rng.randint(0, len(residues))
            residues[at:at] = list(MOTIF)
    return "M" + "".join(residues)


def cho_expression(rng: random.Random, n: int = 200) -> bytes:
    fails = ["Fail", "Fail - low titre", "Fail (aggregation)"]
    lines = ['"Protein","Status","Titre (µg/mL)","Construct.seq..aa."']
    for i in range(n):
        expressed = rng.random() < 0.5
        status = "Pass" if expressed else rng.choice(fails)
        if i % 40 == 39:
            status = "Not tested"  # neither pass nor fail: dropped and counted by the loader
        titre = f"{rng.uniform(5, 50):.1f}" if expressed else "0"
        lines.append(f'"SYN{i:04d}","{status}","{titre}","{cho_sequence(rng, expressed)}"')
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def build(out: Path) -> dict[str, bytes]:
    files = {
        "flip_ss_splits.zip": flip_secondary_structure(HERE / "flip_ss"),
        "deeploc_probe.fasta": deeploc_with_training(HERE / "deeploc.fasta", random.Random(SEED)),
        "meltome_splits.zip": meltome(random.Random(SEED + 1)),
        "cho_expression.csv": cho_expression(random.Random(SEED + 2)),
    }
    for name, data in files.items():
        (out / name).write_bytes(data)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output directory")
    args = parser.parse_args()
    for name, data in build(args.out).items():
        print(f"{args.out / name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
