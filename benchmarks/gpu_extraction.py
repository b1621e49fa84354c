"""Activation extraction on a GPU: tokens/s and model FLOP utilisation (MFU), ESM-2 650M shape.

A random-init ESM-2 with the 650M architecture (33 layers, 1280 dims, 20 heads), bf16 autocast,
layer 24 by default, realistic lengths (log-normal, median 300, capped at 1022). Prints

- tokens/s of ``protsae.esm.layer_representations`` and the MFU against the GPU's dense bf16 peak,
  counting 2 x (matmul parameters per token) FLOPs plus attention (QK^T and AV) for the layers
  actually run, over real tokens (padding excluded; the padded count is printed too);
- the same for fair-esm's own full forward (``repr_layers=[L]``, bf16 autocast) on a subset;
- ``extract_shard`` end to end (checkpoint load, tokenizer workers, float16 Parquet writing);
- the bf16-vs-fp32 error of the stored vectors.

Needs CUDA, torch and fair-esm (pure Python: carry its wheel if the machine lacks it); exits with
a message when there is no GPU. ``--device cpu --quick`` runs every step of the script on a tiny
model on the CPU (bf16 autocast included), which ``make test`` does so the script cannot rot;
its numbers mean nothing.

    python benchmarks/gpu_extraction.py [--sequences 4000] [--layer 24] [--peak-tflops 989]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

try:
    import protsae  # noqa: F401
except ImportError:  # run from a checkout without an editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench_extraction import realistic_records  # the sibling CPU benchmark's sequences

from protsae import activations as acts
from protsae import esm as pesm

# Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, TFLOP/s.
# First matching name wins, so the more specific names come first.
BF16_PEAK_TFLOPS = [
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),  # SXM
    ("H200", 989.4),
    ("H800", 989.4),
    ("GH200", 989.4),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.1),
]


def peak_tflops(device_name: str) -> float | None:
    for key, value in BF16_PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return value
    return None


def flops(lengths: list[int], layers_run: int, dim: int) -> float:
    """Matmul (2 x 12 d^2 per token: q, k, v, out, fc1, fc2) plus attention (4 T^2 d) FLOPs."""
    total = 0.0
    for residues in lengths:
        tokens = residues + 2  # BOS and EOS
        total += layers_run * (24 * dim * dim * tokens + 4 * tokens * tokens * dim)
    return total


def padded_lengths(lengths: list[int], budget: int) -> list[int]:
    """What the batches actually compute on: every sequence padded to its batch's longest."""
    padded = []
    for batch in pesm.token_batches(lengths, budget):
        width = max(lengths[i] for i in batch)
        padded.extend([width] * len(batch))
    return padded


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fair_esm_forward(model, alphabet, records, layer, budget, device) -> None:
    convert = alphabet.get_batch_converter()
    lengths = [len(s) for _, s in records]
    for batch in pesm.token_batches(lengths, budget):
        _, strs, tokens = convert([records[i] for i in batch])
        with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16):
            reps = model(tokens.to(device), repr_layers=[layer])["representations"][layer]
            for i, seq in enumerate(strs):
                reps[i, 1 : len(seq) + 1].float().cpu()


def report(name: str, seconds: float, lengths, layers_run, dim, peak, budget) -> float:
    tokens = sum(lengths)
    useful = flops(lengths, layers_run, dim)
    padded = flops(padded_lengths(lengths, budget), layers_run, dim)
    rate = tokens / seconds
    line = f"  {name:44s} {rate:12,.0f} tokens/s  {useful / seconds / 1e12:7.1f} TFLOP/s"
    if peak:
        line += f"  MFU {100 * useful / seconds / (peak * 1e12):5.1f}%"
    print(line + f"  (padding adds {100 * (padded / useful - 1):.1f}% FLOPs)")
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=4000)
    parser.add_argument("--baseline-sequences", type=int, default=1000)
    parser.add_argument("--shard-sequences", type=int, default=2000)
    parser.add_argument("--layer", type=int, default=24)
    parser.add_argument("--layers", type=int, default=33)
    parser.add_argument("--embed-dim", type=int, default=1280)
    parser.add_argument("--heads", type=int, default=20)
    parser.add_argument("--tokens-per-batch", type=int, default=16384)
    parser.add_argument("--loader-workers", type=int, default=4)
    parser.add_argument("--peak-tflops", type=float, help="override the bf16 peak of the table")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--allow-cpu", action="store_true", help="same as --device cpu")
    parser.add_argument("--quick", action="store_true", help="tiny model and data (smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.sequences, args.baseline_sequences, args.shard_sequences = 6, 4, 4
        args.layers, args.embed_dim, args.heads, args.layer = 2, 32, 4, 1
        args.tokens_per_batch, args.loader_workers = 4096, 0
    if args.allow_cpu:
        args.device = "cpu"

    if args.device != "cpu" and not torch.cuda.is_available():
        print(
            "gpu_extraction.py: no CUDA device visible; run it on a GPU machine "
            "(--device cpu --quick smoke-tests the script).",
            file=sys.stderr,
        )
        return 1
    device = torch.device("cpu" if args.device == "cpu" else "cuda")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = args.peak_tflops or peak_tflops(name)
    print(
        f"device {name}; bf16 peak {peak or 'unknown (pass --peak-tflops)'} TFLOP/s; "
        f"torch {torch.__version__}"
    )
    model = pesm.build_random_init(args.layers, args.embed_dim, args.heads, seed=0).to(device)
    alphabet = model.alphabet
    records = realistic_records(args.sequences, seed=0)
    lengths = [len(s) for _, s in records]
    budget = args.tokens_per_batch
    print(
        f"ESM-2 {args.layers} layers x {args.embed_dim} dims, layer {args.layer}, "
        f"{len(records)} sequences, {sum(lengths):,} residues, {budget} tokens per batch"
    )

    def ours(subset, workers=args.loader_workers):
        for _ in pesm.layer_representations(
            model,
            alphabet,
            subset,
            args.layer,
            pesm.ForwardOptions(budget, device, loader_workers=workers, bf16=True),
        ):
            pass

    ours(records[: min(64, len(records))], workers=0)  # warm-up: kernels, allocator
    synchronize(device)
    start = time.perf_counter()
    ours(records)
    synchronize(device)
    ours_rate = report(
        "protsae layer_representations",
        time.perf_counter() - start,
        lengths,
        args.layer,
        args.embed_dim,
        peak,
        budget,
    )

    subset = records[: args.baseline_sequences]
    fair_esm_forward(model, alphabet, subset[:64], args.layer, budget, device)
    synchronize(device)
    start = time.perf_counter()
    fair_esm_forward(model, alphabet, subset, args.layer, budget, device)
    synchronize(device)
    seconds = time.perf_counter() - start
    sub_lengths = [len(s) for _, s in subset]
    base_rate = report(
        "fair-esm full forward (bf16 autocast)",
        seconds,
        sub_lengths,
        args.layers,
        args.embed_dim,
        peak,
        budget,
    )
    print(f"  protsae / fair-esm tokens/s: {ours_rate / base_rate:.2f}x")

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / f"random-t{args.layers}-d{args.embed_dim}-s0.pt"
        pesm.save_random_init(checkpoint, args.layers, args.embed_dim, args.heads, seed=0)
        shard_records = records[: args.shard_sequences]
        quiet = logging.getLogger("gpu-bench-quiet")
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
        start = time.perf_counter()
        rows = acts.extract_shard(
            checkpoint,
            shard_records,
            Path(tmp) / "shard.parquet",
            args.layer,
            acts.ShardFormat("bench", "float16"),
            pesm.ForwardOptions(budget, device, loader_workers=args.loader_workers),
            quiet,
        )
        seconds = time.perf_counter() - start
        size = (Path(tmp) / "shard.parquet").stat().st_size
    report(
        "extract_shard (load + extract + Parquet)",
        seconds,
        [len(s) for _, s in shard_records],
        args.layer,
        args.embed_dim,
        peak,
        budget,
    )
    print(f"  shard: {rows:,} rows, {size / 1e6:,.0f} MB")

    check = records[:32]
    fp32 = dict(
        pesm.layer_representations(
            model, alphabet, check, args.layer, pesm.ForwardOptions(budget, bf16=False)
        )
    )
    bf16 = dict(
        pesm.layer_representations(
            model, alphabet, check, args.layer, pesm.ForwardOptions(budget, bf16=True)
        )
    )
    errors = torch.cat([(bf16[k] - fp32[k]).flatten() for k in fp32])
    scale = torch.cat([fp32[k].flatten() for k in fp32])
    print(
        f"  bf16 vs fp32 vectors: rms error {errors.pow(2).mean().sqrt():.3g} "
        f"(rms value {scale.pow(2).mean().sqrt():.3g}), max |error| {errors.abs().max():.3g}"
    )
    if device.type == "cuda":
        print(f"  peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
