"""TopK SAE training throughput on a CUDA GPU: d=1280, width 32768, k=64, bf16 autocast.

Times ``protsae.sae.step.train_step`` (the step ``train_sae`` runs) on synthetic
activations already on the GPU, so it measures the SAE, not the data pipeline
(benchmarks/bench_shard_read.py covers reading). Also runs the dense plain-autograd baseline
of bench_sae.py on the same batches for a ratio. Goal: >= 1M tokens/s. Exits cleanly, with a
message, where there is no CUDA. ``--device cpu --quick`` runs every step on tiny shapes on the
CPU (bf16 autocast included), which ``make test`` does so the script cannot rot; its numbers mean
nothing.

    PYTHONPATH=src .venv/bin/python benchmarks/gpu_sae.py [--steps 50] [--batch-tokens 16384]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sae import DenseTopKSAE  # noqa: E402

from protsae.sae.model import SAEConfig, TopKSAE  # noqa: E402
from protsae.sae.step import make_optimizer, train_step  # noqa: E402


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def tokens_per_second(model: TopKSAE, batches: list[torch.Tensor], steps: int) -> float:
    optimizer = make_optimizer(model, 1e-4)
    for x in batches[:3]:  # warm-up: kernels, allocator, fused Adam state
        train_step(model, optimizer, x, None, 1e-4, torch.bfloat16)
    synchronize(batches[0].device)
    start = time.perf_counter()
    for step in range(steps):
        train_step(model, optimizer, batches[step % len(batches)], None, 1e-4, torch.bfloat16)
    synchronize(batches[0].device)
    return steps * batches[0].shape[0] / (time.perf_counter() - start)


def encoder_matmul_rate(batches: list[torch.Tensor], w_enc: torch.Tensor, steps: int) -> float:
    """Tokens/s of the bf16 encoder matmul alone ([tokens, d] x [d, width]): the floor of a step."""
    w = w_enc.to(torch.bfloat16)
    xs = [x.to(torch.bfloat16) for x in batches]
    with torch.no_grad():
        for x in xs[:3]:
            x @ w
        synchronize(w.device)
        start = time.perf_counter()
        for step in range(steps):
            xs[step % len(xs)] @ w
        synchronize(w.device)
    return steps * xs[0].shape[0] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-tokens", type=int, default=16384)
    parser.add_argument("--d-model", type=int, default=1280)
    parser.add_argument("--width", type=int, default=32768)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--quick", action="store_true", help="tiny shapes (smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.batch_tokens, args.d_model, args.width, args.k = 3, 128, 32, 256, 8
    if args.device != "cpu" and not torch.cuda.is_available():
        print(
            "gpu_sae: no CUDA device here; nothing to measure (run it on a GPU machine; "
            "--device cpu --quick smoke-tests the script)"
        )
        return
    device = torch.device("cpu" if args.device == "cpu" else "cuda")
    cfg = SAEConfig(d_model=args.d_model, width=args.width, k=args.k)
    generator = torch.Generator(device=device).manual_seed(0)
    batches = [
        torch.randn(args.batch_tokens, args.d_model, device=device, generator=generator)
        for _ in range(8)
    ]
    ours = TopKSAE(cfg, seed=0).to(device)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    rate = tokens_per_second(ours, batches, args.steps)
    print(
        f"TopK SAE training on {device_name}: d={args.d_model} "
        f"width={args.width} k={args.k}, {args.batch_tokens} tokens/batch, bf16 autocast"
    )
    print(f"  protsae (sparse): {rate:12,.0f} tokens/s  (goal >= 1,000,000)")
    floor = encoder_matmul_rate(batches, ours.W_enc.detach(), args.steps)
    print(
        f"  encoder matmul  : {floor:12,.0f} tokens/s alone; a step takes {floor / rate:.2f}x "
        "its time (distance to the floor)"
    )
    if not args.no_baseline:
        baseline = DenseTopKSAE(cfg, seed=0).to(device)
        base_rate = tokens_per_second(baseline, batches, max(5, args.steps // 5))
        print(f"  dense baseline  : {base_rate:12,.0f} tokens/s  (ratio {rate / base_rate:.2f}x)")
    if device.type == "cuda":
        print(f"  peak GPU memory : {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
