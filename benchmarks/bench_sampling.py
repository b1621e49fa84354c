"""Throughput of sample_uniref50 against a naive baseline, on a generated gzipped FASTA.

Baseline (same process, same file): Biopython ``SeqIO.parse`` over the gzip stream,
every record's id and sequence kept in a list, then ``random.sample``. The baseline does
no length or alphabet filtering, so it does less work per record than the sampler.
Prints records/s and MB/s (uncompressed FASTA) of the best of a few runs of each, and
the ratio.

    python benchmarks/bench_sampling.py [--quick] [--records 200000] [--sample 10000] [--repeats 3]
"""

from __future__ import annotations

import gzip
import logging
import random
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Interleaved, tier_parser  # noqa: E402

from protsae.sequences import esm_residue_letters, sample_uniref50  # noqa: E402

AMINO = b"ACDEFGHIKLMNPQRSTVWY"


def write_fasta(path: Path, n: int, seed: int = 0) -> int:
    """n UniRef50-like records (lengths 50-600, 60-column lines); returns uncompressed bytes."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(50, 601, n)
    residues = np.frombuffer(AMINO, np.uint8)[rng.integers(0, 20, lengths.sum())].tobytes()
    parts, start = [], 0
    for i, length in enumerate(lengths.tolist()):
        seq = residues[start : start + length]
        start += length
        parts.append(b">UniRef50_B%07d Bench protein n=1 Tax=none TaxID=0 RepID=B%07d\n" % (i, i))
        parts.append(b"\n".join(seq[j : j + 60] for j in range(0, length, 60)) + b"\n")
    data = b"".join(parts)
    path.write_bytes(gzip.compress(data, compresslevel=6))
    return len(data)


def baseline(path: Path, sample_size: int, seed: int) -> int:
    from Bio import SeqIO

    with gzip.open(path, "rt") as fh:
        records = [(r.id, str(r.seq)) for r in SeqIO.parse(fh, "fasta")]
    random.Random(seed).sample(records, sample_size)
    return len(records)


def main() -> None:
    parser = tier_parser(__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, help="records in the FASTA (quick 50k, full 200k)")
    parser.add_argument("--sample", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, help="interleaved rounds (quick 2, full 3)")
    args = parser.parse_args()
    n_records = args.records or (50_000 if args.quick else 200_000)
    rounds = args.repeats or (2 if args.quick else 3)
    esm_residue_letters()  # import esm/torch before timing
    quiet = logging.getLogger("bench.quiet")
    quiet.setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.fasta.gz"
        raw_bytes = write_fasta(path, n_records)
        print(
            f"input: {n_records:,} records, {raw_bytes / 1e6:.1f} MB FASTA, "
            f"{path.stat().st_size / 1e6:.1f} MB gzipped; sample {args.sample:,}"
        )
        timing = Interleaved(
            {
                "baseline (SeqIO + list + random.sample)": lambda: baseline(path, args.sample, 0),
                "sample_uniref50": lambda: (
                    sample_uniref50(path, args.sample, 1022, 0, logger=quiet).num_rows
                ),
            }
        ).run(rounds=rounds, warmup=0)
        for name, seconds in timing.seconds.items():
            best = min(seconds)
            print(
                f"{name:42s} {n_records / best:10,.0f} records/s  "
                f"{raw_bytes / 1e6 / best:6.1f} MB/s  (best round; {timing.times(name)})"
            )
        base, ours = timing.seconds
        print(f"speed-up of sample_uniref50 over the baseline: {timing.ratio_line(base, ours)}")
        print(f"  {timing.load()}")


if __name__ == "__main__":
    main()
