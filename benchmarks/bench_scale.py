"""Scale of three streaming stages on generated data: time per item and peak RSS at two sizes.

- sequences: ``sample_uniref50`` on a synthetic gzipped UniRef50 FASTA of 100k and 1M records
  (same reservoir size): time per record should stay flat, memory should not grow;
- SAE data: ``ActivationStream`` over activation shards of 1M and 10M synthetic tokens
  (d_model 64, float16): time per token flat, memory bounded by the shuffle buffer;
- latent statistics: ``stream_latent_stats`` over 2k and 20k synthetic sequences (random top-k
  activations, width 4096, k 16, no ESM-2): time per sequence flat, memory bounded.

Each (stage, size) runs in a fresh subprocess so its peak RSS is its own. The ratios printed
(large over small) are what to read: ~1.0 for time per item means linear time; peak RSS
growing by much less than the 10x in data means bounded memory.

    python benchmarks/bench_scale.py [--quick]     # --quick: 10x smaller sizes
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")

WORKER = r"""
import gzip, json, resource, sys, time
from pathlib import Path
import numpy as np
stage, size, tmp, prepare = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] == "prepare"
rng = np.random.default_rng(0)
LETTERS = np.frombuffer(b"ACDEFGHIKLMNPQRSTVWY", dtype=np.uint8)

def lengths(n):
    return np.clip(rng.lognormal(np.log(300), 0.6, n).astype(int), 30, 2000)

if stage == "sequences":
    path = tmp / f"uniref50-{size}.fasta.gz"
    if prepare:
      with gzip.open(path, "wb", compresslevel=1) as out:
        for start in range(0, size, 10000):
            ls = lengths(min(10000, size - start))
            body = LETTERS[rng.integers(0, 20, int(ls.sum()))].tobytes()
            parts, offset = [], 0
            for i, n in enumerate(ls):
                parts.append(b">UniRef50_S%09d n=1\n%s\n" % (start + i, body[offset:offset + n]))
                offset += n
            out.write(b"".join(parts))
      sys.exit(0)
    from protsae.sequences import esm_residue_letters, sample_uniref50
    esm_residue_letters()  # imports fair-esm and torch once, outside the timed pass
    t = time.perf_counter()
    table = sample_uniref50(path, 1000, 1022, seed=0)
    elapsed, items, unit = time.perf_counter() - t, size, "record"
    assert table.num_rows == 1000
elif stage == "sae_data":
    from protsae.activations import ShardWriter
    from protsae.sae.data import ActivationStream
    d, per_shard = 64, 1_000_000
    paths = [tmp / f"shard-{size}-{s:03d}.parquet" for s in range(max(1, size // per_shard))]
    for path in paths if prepare else []:
        with ShardWriter(path, d, "float16", "bench", 1) as writer:
            for start in range(0, min(size, per_shard), 250):
                writer.add(f"{path.stem}_{start}", np.arange(250, dtype=np.int32),
                           rng.standard_normal((250, d), dtype=np.float32))
    if prepare:
        sys.exit(0)
    stream = ActivationStream(paths, batch_tokens=4096, shuffle_buffer_tokens=262144, seed=0)
    t = time.perf_counter()
    seen = 0
    for batch in stream:
        seen += len(batch)
        if seen >= size:
            break
    elapsed, items, unit = time.perf_counter() - t, seen, "token"
elif stage == "latent_stats":
    if prepare:
        sys.exit(0)
    from protsae.latents import EvalRecord, stream_latent_stats
    width, k = 4096, 16
    ls = lengths(size)
    records = [EvalRecord(f"P{i:07d}", "A" * int(n), "test" if i % 2 else "train") for i, n in enumerate(ls)]
    popularity = 1.0 / np.arange(1, width + 1) ** 0.8
    popularity /= popularity.sum()
    def encode(chunk):
        # Per sequence a pool of 4k distinct latents (common ones more likely), k of them per
        # residue: no latent twice in a residue, and latents recur along a sequence like real ones.
        for seq_id, seq in chunk:
            n = len(seq)
            pool = rng.choice(width, 4 * k, replace=False, p=popularity).astype(np.int32)
            pick = np.argpartition(rng.random((n, 4 * k)), k, axis=1)[:, :k]
            values = rng.exponential(1.0, (n, k)).astype(np.float32)
            yield seq_id, values, pool[pick]
    chunks = (records[i:i + 1000] for i in range(0, size, 1000))
    t = time.perf_counter()
    stream_latent_stats(chunks, encode, width, 50, tmp / f"ss-{size}.parquet",
                        tmp / f"te-{size}.parquet", total_sequences=size)
    elapsed, items, unit = time.perf_counter() - t, size, "sequence"
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"stage": stage, "size": size, "seconds": elapsed, "items": items,
                  "unit": unit, "peak_rss_mb": rss_mb}))
"""

SIZES = {
    "sequences": (100_000, 1_000_000),
    "sae_data": (1_000_000, 10_000_000),
    "latent_stats": (2_000, 20_000),
}


def run(stage: str, size: int, tmp: str) -> dict:
    """Generate the input in one process, then time the stage alone in a fresh one."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    for mode in ("prepare", "measure"):
        done = _worker(stage, size, tmp, mode, env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _worker(stage: str, size: int, tmp: str, mode: str, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-c", WORKER, stage, str(size), tmp, mode],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"{stage} at {size} ({mode}): failed\n{done.stderr[-3000:]}")
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10x smaller sizes")
    parser.add_argument("--stage", choices=sorted(SIZES), action="append")
    args = parser.parse_args()
    print("stage          size        time/item      peak RSS   (large / small)")
    for stage in args.stage or list(SIZES):
        small, large = (s // 10 if args.quick else s for s in SIZES[stage])
        with tempfile.TemporaryDirectory() as tmp:
            a = run(stage, small, tmp)
            b = run(stage, large, tmp)
        for r in (a, b):
            print(
                f"{stage:13s} {r['size']:>10,}  {1e6 * r['seconds'] / r['items']:9.2f} us/{r['unit']:8s}"
                f" {r['peak_rss_mb']:8.0f} MB"
            )
        per_a, per_b = a["seconds"] / a["items"], b["seconds"] / b["items"]
        print(
            f"{'':13s} {'ratio':>10s}  {per_b / per_a:9.2f}x time per item, "
            f"{b['peak_rss_mb'] / a['peak_rss_mb']:.2f}x peak RSS for {large / small:.0f}x the data"
        )


if __name__ == "__main__":
    main()
