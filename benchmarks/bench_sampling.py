"""Throughput of sample_uniref50 against a naive baseline, on a generated gzipped FASTA.

Baseline (same process, same file): Biopython ``SeqIO.parse`` over the gzip stream,
every record's id and sequence kept in a list, then ``random.sample``. The baseline does
no length or alphabet filtering, so it does less work per record than the sampler.
Prints records/s and MB/s (uncompressed FASTA) of the best of a few runs of each, and
the ratio.

    python benchmarks/bench_sampling.py [--records 200000] [--sample 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import gzip
import logging
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from protsae.sequences import esm_residue_letters, sample_uniref50

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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--sample", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    esm_residue_letters()  # import esm/torch before timing
    quiet = logging.getLogger("bench.quiet")
    quiet.setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.fasta.gz"
        raw_bytes = write_fasta(path, args.records)
        print(
            f"input: {args.records:,} records, {raw_bytes / 1e6:.1f} MB FASTA, "
            f"{path.stat().st_size / 1e6:.1f} MB gzipped; sample {args.sample:,}"
        )
        timings = {}
        for name, run in (
            ("baseline (SeqIO + list + random.sample)", lambda: baseline(path, args.sample, 0)),
            (
                "sample_uniref50",
                lambda: sample_uniref50(path, args.sample, 1022, 0, logger=quiet).num_rows,
            ),
        ):
            wall, cpu = [], []
            for _ in range(args.repeats):
                start, start_cpu = time.perf_counter(), time.process_time()
                run()
                wall.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
            timings[name] = elapsed = min(wall)
            print(
                f"{name:42s} {elapsed:6.2f} s  {args.records / elapsed:10,.0f} records/s  "
                f"{raw_bytes / 1e6 / elapsed:6.1f} MB/s  (best of {args.repeats}; "
                f"CPU {min(cpu):.2f} s)"
            )
        base, ours = timings.values()
        print(f"speed-up of sample_uniref50 over the baseline: {base / ours:.2f}x")


if __name__ == "__main__":
    main()
