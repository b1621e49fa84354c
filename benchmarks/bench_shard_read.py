"""Activation-shard read rate vs SAE training consumption, on CPU, in one process.

Writes float16 shards (d=320, the dtype the activations stage stores) to a temporary
directory, then measures tokens/s of (a) ``iter_shard`` + float32 conversion, (b) the
training stream ``ActivationStream`` (shuffle buffer, random row-group order), and (c) SAE
training steps at d=320, width 16384, k=64. Prints (b)/(c): reading must not be what limits
training (goal >= 5x).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_shard_read.py [--quick] [--tokens N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from protsae.activations import ShardWriter, iter_shard
from protsae.sae.data import ActivationStream
from protsae.sae.model import SAEConfig, TopKSAE
from protsae.sae.step import make_optimizer, train_step

D, WIDTH, K, BATCH = 320, 16384, 64, 4096


def write_shards(directory: Path, tokens: int, n_shards: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    per_shard = tokens // n_shards
    for s in range(n_shards):
        path = directory / f"shard-{s}.parquet"
        with ShardWriter(path, D, "float16", model="bench", layer=1) as writer:
            for start in range(0, per_shard, 300):  # 300-residue sequences
                n = min(300, per_shard - start)
                writer.add(f"s{s}_{start}", np.arange(n), rng.standard_normal((n, D)))
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tokens", type=int, default=None)
    args = parser.parse_args()
    tokens = args.tokens or (100_000 if args.quick else 400_000)
    train_steps = 3 if args.quick else 6

    with tempfile.TemporaryDirectory() as tmp:
        paths = write_shards(Path(tmp), tokens, n_shards=4)

        start = time.perf_counter()
        read = 0
        for path in paths:
            for batch in iter_shard(path):
                read += len(batch.x.astype(np.float32))
        raw_rate = read / (time.perf_counter() - start)

        stream = ActivationStream(paths, BATCH, shuffle_buffer_tokens=65536, seed=0)
        n_batches = tokens // BATCH
        start = time.perf_counter()
        for _ in range(n_batches):
            next(stream)
        stream_rate = n_batches * BATCH / (time.perf_counter() - start)

        sae = TopKSAE(SAEConfig(d_model=D, width=WIDTH, k=K), seed=0)
        optimizer = make_optimizer(sae, 1e-4)
        batches = [torch.from_numpy(next(stream)) for _ in range(train_steps + 1)]
        train_step(sae, optimizer, batches[0], None, 1e-4)  # warm-up
        start = time.perf_counter()
        for x in batches[1:]:
            train_step(sae, optimizer, x, None, 1e-4)
        train_rate = train_steps * BATCH / (time.perf_counter() - start)

    print(
        f"activation shards, float16 d={D}, {tokens:,} tokens, CPU ({torch.get_num_threads()} threads)"
    )
    print(f"  iter_shard + float32      : {raw_rate:12,.0f} tokens/s")
    print(f"  ActivationStream (shuffle): {stream_rate:12,.0f} tokens/s")
    print(f"  SAE training w{WIDTH} k{K}   : {train_rate:12,.0f} tokens/s")
    print(f"  stream / training         : {stream_rate / train_rate:12.1f}x  (goal >= 5x)")


if __name__ == "__main__":
    main()
