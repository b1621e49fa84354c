"""Speed of the latent-stats stage vs a naive dense baseline, in one process, on CPU.

Demo-sized models: random-init ESM-2 (4 layers x 64 dims), TopK SAE width 256, k 8.
- streaming: ``latent_stats_from_files`` (sparse triples, batched segment reductions,
  bounded heaps, seq_stats written in row groups).
- dense baseline: per sequence a dense [length, width] activation matrix
  (the SAE's top-k scattered into zeros), numpy statistics per active latent column, heapq top examples.
Both run the same ESM-2 forward; a second comparison leaves ESM-2 out (both start from
layer representations computed beforehand, both run the SAE encoder). Prints sequences/s
of each and the ratios.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_latents.py [--quick] [--sequences 400]

``--quick``: 100 sequences, one round; otherwise 400 sequences, three interleaved rounds.
"""

from __future__ import annotations

import heapq
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Interleaved, tier_parser  # noqa: E402

from protsae.esm import ForwardOptions, layer_representations, load_model, save_random_init
from protsae.latents import EvalRecord, stream_latent_stats
from protsae.latents.stats import EvaluationSet, latent_stats_from_files
from protsae.sae import SAEConfig, TopKSAE, load_sae, save_sae
from protsae.sae.at_layer import EsmSaeFiles

LAYER, WIDTH, K, TOP = 2, 256, 8, 50
LETTERS = "ACDEFGHIKLMNPQRSTVWY"


def make_inputs(directory: Path, n: int, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    rng = np.random.default_rng(seed)
    ids = [f"P{i:06d}" for i in range(n)]
    seqs = ["".join(rng.choice(list(LETTERS), int(rng.integers(50, 300)))) for _ in range(n)]
    split = ["test" if i % 2 else "train" for i in range(n)]
    pq.write_table(pa.table({"accession": ids, "sequence": seqs}), directory / "swissprot.parquet")
    pq.write_table(
        pa.table({"accession": ids, "cluster": ids, "split": split}),
        directory / "clusters.parquet",
    )
    save_random_init(directory / "esm2_bench.pt", 4, 64, 4, seed=0)
    sae = TopKSAE(SAEConfig(d_model=64, width=WIDTH, k=K, layer=LAYER), seed=0)
    save_sae(sae, directory / "sae.safetensors", directory / "sae.json")
    return ids, seqs, split


def dense_column_stats(a: np.ndarray) -> list[tuple]:
    """Per active latent of one sequence's dense [length, width] matrix: the seq_stats fields."""
    active = a > 0
    n_active = active.sum(0)
    max_act, argmax = a.max(0), a.argmax(0)
    rows = []
    for lat in np.flatnonzero(n_active):
        pos = np.flatnonzero(active[:, lat])
        gaps = np.diff(pos)
        breaks = np.flatnonzero(gaps != 1)
        starts = np.r_[pos[0], pos[breaks + 1]]
        ends = np.r_[pos[breaks], pos[-1]]
        top = np.searchsorted(starts, argmax[lat], side="right") - 1
        dist, counts = np.unique(gaps, return_counts=True)
        rows.append(
            (
                int(lat),
                float(max_act[lat]),
                int(argmax[lat]),
                int(n_active[lat]),
                int(ends[top] - starts[top] + 1),
                float(n_active[lat] / len(a)),
                dist.tolist(),
                counts.tolist(),
                pos,
                a[pos, lat],
            )
        )
    return rows


def dense_pipeline(reps, sae: TopKSAE, split: dict[str, str], out: Path) -> int:
    """The naive approach: dense activations, per-column numpy stats, heapq per latent."""
    rows: list[dict] = []
    heaps: dict[tuple[str, int], list] = {}
    n = 0
    for seq_id, x in reps:
        with torch.inference_mode():
            top = sae.encode(x)
            dense = torch.zeros(len(x), sae.cfg.width).scatter_(1, top.indices, top.values).numpy()
        for lat, mx, am, na, trl, cov, dist, counts, pos, vals in dense_column_stats(dense):
            rows.append(
                dict(latent=lat, id=seq_id, split=split[seq_id], length=len(dense), max_act=mx,
                     argmax=am, n_active=na, top_region_length=trl, coverage=cov,
                     distances=dist, distance_counts=counts)
            )  # fmt: skip
            heap = heaps.setdefault((split[seq_id], lat), [])
            item = (mx, [-ord(c) for c in seq_id], seq_id, pos, vals)
            if len(heap) < TOP:
                heapq.heappush(heap, item)
            elif item > heap[0]:
                heapq.heapreplace(heap, item)
        n += 1
    pq.write_table(pa.Table.from_pylist(rows), out)
    return n


def main() -> None:
    parser = tier_parser(__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, help="sequences (quick 100, full 400)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    args.sequences = args.sequences or (100 if args.quick else 400)
    rounds = 1 if args.quick else 3
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        ids, seqs, splits = make_inputs(d, args.sequences)
        split = dict(zip(ids, splits, strict=True))
        records = list(zip(ids, seqs, strict=True))
        model, alphabet = load_model(d / "esm2_bench.pt", "cpu")
        sae = load_sae(d / "sae.safetensors")

        def streaming():
            return latent_stats_from_files(
                EsmSaeFiles(d / "esm2_bench.pt", d / "sae.safetensors", LAYER),
                EvaluationSet(d / "swissprot.parquet", d / "clusters.parquet"),
                TOP,
                d / "s.parquet",
                d / "t.parquet",
                forward=ForwardOptions(8192, "cpu"),
            )

        def dense():
            reps = layer_representations(
                model, alphabet, records, LAYER, ForwardOptions(8192, "cpu")
            )
            return dense_pipeline(reps, sae, split, d / "dense.parquet")

        dense()  # warm-up (allocator, thread pools)
        n_stream, n_rows = streaming()
        assert n_stream == dense() == args.sequences
        assert pq.read_metadata(d / "dense.parquet").num_rows == n_rows
        whole = Interleaved({"streaming": streaming, "dense": dense}).run(rounds, warmup=0)

        # Without ESM-2: both start from layer representations computed beforehand.
        reps = list(
            layer_representations(model, alphabet, records, LAYER, ForwardOptions(8192, "cpu"))
        )
        by_id = dict(reps)
        chunk = [EvalRecord(sid, seqs[i], splits[i]) for i, sid in enumerate(ids)]

        def sae_topk(recs):
            for sid, _ in recs:
                with torch.inference_mode():
                    top = sae.encode(by_id[sid])
                yield sid, top.values.numpy(), top.indices.numpy()

        def stats_only_stream():
            return stream_latent_stats(
                [chunk], sae_topk, WIDTH, TOP, d / "s2.parquet", d / "t2.parquet"
            )

        def stats_only_dense():
            return dense_pipeline(iter(reps), sae, split, d / "dense2.parquet")

        stats = Interleaved({"streaming": stats_only_stream, "dense": stats_only_dense})
        stats.run(rounds, warmup=0)

    n = args.sequences
    print(f"latent stats, {n} sequences (50-300 aa), ESM-2 4x64 random, SAE w{WIDTH} k{K}, CPU")
    for label, timing in (("whole stage", whole), ("stats only ", stats)):
        best = {name: n / min(seconds) for name, seconds in timing.seconds.items()}
        print(
            f"  {label}  streaming: {best['streaming']:8.1f} seq/s   dense baseline: "
            f"{best['dense']:8.1f} seq/s (best rounds)   ratio {timing.ratio_line('dense', 'streaming')}"
        )
    print(f"  seq_stats rows: {n_rows}; {whole.load()}")


if __name__ == "__main__":
    main()
