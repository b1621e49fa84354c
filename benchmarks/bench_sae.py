"""TopK SAE training on CPU: protsae's step against a dense baseline and against its floor.

1. Against a dense baseline: InterProt-style plain autograd (top-k scattered into a dense
   [N, width] latent matrix, dense decoder matmul, dense encoder backward). Both start from
   the same weights (b_dec at the geometric median) and train with the same loss, Adam,
   learning rate and decoder-norm invariants on the same planted activations, one step of
   each per round, so only the implementation differs. Prints the per-round speed-up and
   each final held-out MSE (they must agree).
2. Distance to the floor: every TopK step computes all pre-activations, so one
   [N, d] x [d, width] matmul is the floor no step can beat. At 4096-token batches, for
   d=320/width 16384 and d=1280/width 10240 (k=64), each round times that matmul and one
   training step; prints step/floor per round (goal <= 1.5x), then where a step's time goes:
   each phase of ``train_step`` timed on its own, one thread, CPU time.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_sae.py [--quick]
"""

from __future__ import annotations

import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Interleaved, load_line, planted_batches, tier_parser  # noqa: E402

from protsae.sae.model import (  # noqa: E402
    AUXK_COEFFICIENT,
    SAEConfig,
    SAEOutput,
    TopKSAE,
    topk_rows,
)
from protsae.sae.step import keep_freed_memory, make_optimizer, train_step  # noqa: E402
from protsae.sae.train import geometric_median  # noqa: E402

FLOOR_SHAPES = ((320, 16384, 64), (1280, 10240, 64))
T = TypeVar("T")
FLOOR_GOAL = 1.5


class DenseTopKSAE(TopKSAE):
    """The same parameters and loss, computed the plain way."""

    def forward(self, x: torch.Tensor, dead_mask: torch.Tensor | None = None) -> SAEOutput:
        pre = (x - self.b_dec) @ self.W_enc + self.b_enc
        top = pre.topk(self.cfg.k, dim=1, sorted=False)
        latents = torch.zeros_like(pre).scatter(1, top.indices, top.values.relu())
        x_hat = latents @ self.W_dec + self.b_dec
        sse = (x_hat - x).pow(2).sum()
        fvu = sse / (x - x.mean(dim=0)).pow(2).sum()
        return SAEOutput(x_hat, top.values, top.indices, sse / x.numel(), fvu, sse.new_zeros(()))


def stepper(model: TopKSAE, batches: list[torch.Tensor], lr: float):
    """A callable that runs the next training step on the next batch (constant rate)."""
    optimizer = make_optimizer(model, lr)
    position = iter(range(len(batches)))

    def step() -> None:
        train_step(model, optimizer, batches[next(position)], None, lr)

    return step


def against_dense(steps: int, batch: int, d: int, width: int, k: int) -> None:
    batches, held_out = planted_batches(steps + 1, batch, d, 4 * width, k // 2, seed=0)
    ours = TopKSAE(SAEConfig(d_model=d, width=width, k=k), seed=0)
    with torch.no_grad():
        ours.b_dec.copy_(geometric_median(batches[0]))
    baseline = DenseTopKSAE(copy.deepcopy(ours.cfg))
    baseline.load_state_dict(ours.state_dict())
    lr = 2e-4 / (width / 16384) ** 0.5 * 4  # a few steps: a larger rate so MSE moves visibly
    with torch.no_grad():
        mse_init = float(ours(held_out).mse)
    timing = Interleaved(
        {"dense": stepper(baseline, batches, lr), "protsae": stepper(ours, batches, lr)}
    ).run(rounds=steps, warmup=1)
    with torch.no_grad():
        mse_ours, mse_base = float(ours(held_out).mse), float(baseline(held_out).mse)
    print(
        f"\n1. protsae vs dense baseline: d={d} width={width} k={k}, {batch}-token steps, "
        f"{steps} rounds after 1 warm-up; {timing.load()}"
    )
    print(
        f"  step time (min / median) : dense {timing.times('dense')}, ours {timing.times('protsae')}"
    )
    print(f"  speed-up                 : {timing.ratio_line('dense', 'protsae')}")
    print(
        f"  held-out MSE             : ours {mse_ours:.6f}, dense {mse_base:.6f} "
        f"(at init {mse_init:.6f}), relative difference {abs(mse_ours - mse_base) / mse_base:.1e}"
    )


def to_floor(rounds: int, batch: int, d: int, width: int, k: int) -> None:
    """Step/floor per round, twice: wall time with this process's torch threads, and CPU
    time on one thread (``time.thread_time``), which other processes' load barely changes."""
    generator = torch.Generator().manual_seed(1)
    batches = [torch.randn(batch, d, generator=generator) + 1.0 for _ in range(2 * rounds + 2)]
    model = TopKSAE(SAEConfig(d_model=d, width=width, k=k), seed=0)
    w_enc = torch.randn(d, width, generator=generator)
    bias = torch.zeros(width)
    out = torch.empty(batch, width)
    x = batches[0]
    step = stepper(model, batches, 1e-4)
    threads = torch.get_num_threads()
    for label, n_threads, clock in (
        (f"wall, {threads} threads", threads, time.perf_counter),
        ("CPU, 1 thread", 1, time.thread_time),
    ):
        torch.set_num_threads(n_threads)
        contenders = {"floor": lambda: torch.addmm(bias, x, w_enc, out=out), "step": step}
        timing = Interleaved(contenders, clock=clock).run(rounds=rounds, warmup=1)
        mid = timing.ratios("step", "floor")[1]
        print(
            f"  d={d:4d} width={width:5d} k={k} ({label:14s}): step {timing.times('step')}, "
            f"matmul {timing.times('floor')}; step/floor {timing.ratio_line('step', 'floor')} "
            f"[{'ok' if mid <= FLOOR_GOAL else 'above'} goal <= {FLOOR_GOAL}x]; {timing.load()}"
        )
    torch.set_num_threads(threads)


def phases(rounds: int, batch: int, d: int, width: int, k: int) -> None:
    """Each phase of one ``train_step`` timed on its own (one thread, CPU time, min / median
    over rounds): the floor matmul and the top-k inside the forward pass, then forward,
    backward, gradient projection, Adam and renormalisation, whose sum is one step."""
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(batch, d, generator=generator) + 1.0
    model = TopKSAE(SAEConfig(d_model=d, width=width, k=k), seed=0)
    optimizer = make_optimizer(model, 1e-4)
    pre = torch.empty(batch, width)
    seconds: dict[str, list[float]] = {}
    inside_forward = ("  encoder matmul (in forward)", "  top-k (in forward)")

    def timed(name: str, run: Callable[[], T]) -> T:
        start = time.thread_time()
        result = run()
        seconds.setdefault(name, []).append(time.thread_time() - start)
        return result

    def loss_of_forward() -> torch.Tensor:
        out = model(x)
        return out.fvu + AUXK_COEFFICIENT * out.auxk_loss

    def backward(loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()

    for _ in range(rounds + 1):
        with torch.no_grad():
            timed(
                inside_forward[0],
                lambda: torch.addmm(model.b_enc, x - model.b_dec, model.W_enc, out=pre),
            )
            timed(inside_forward[1], lambda: topk_rows(pre, k))
        loss = timed("forward: matmul, top-k, decode, loss", loss_of_forward)
        timed("backward", lambda: backward(loss))  # noqa: B023 (called at once)
        timed("gradient projection", model.remove_gradient_parallel_to_decoder)
        timed("Adam", optimizer.step)
        timed("renormalisation", model.set_decoder_norm_to_unit)
    floor = min(seconds[inside_forward[0]][1:])
    step = 0.0
    print(f"  d={d} width={width}: phases, min / median of {rounds} (one thread, CPU time)")
    for name, values in seconds.items():
        low, mid = min(values[1:]), statistics.median(values[1:])
        step += 0.0 if name in inside_forward else low
        print(f"    {name:38s} {low * 1e3:7.1f} / {mid * 1e3:7.1f} ms  {low / floor:5.2f}x floor")
    print(f"    {'sum of phase minima':38s} {step * 1e3:7.1f} ms  {step / floor:5.2f}x floor")


def main() -> None:
    parser = tier_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, help="rounds of part 1 (quick 6, full 12)")
    parser.add_argument("--batch-tokens", type=int, help="tokens per step of part 1 (1024/4096)")
    parser.add_argument("--floor-rounds", type=int, help="rounds per shape of part 2 (8/12)")
    parser.add_argument("--d-model", type=int, default=320)
    parser.add_argument("--width", type=int, default=16384)
    parser.add_argument("--k", type=int, default=64)
    args = parser.parse_args()
    steps = args.steps or (6 if args.quick else 12)
    batch = args.batch_tokens or (1024 if args.quick else 4096)
    floor_rounds = args.floor_rounds or (8 if args.quick else 12)
    keep_freed_memory()  # what train_sae does on CPU; the same for every contender here

    print(f"TopK SAE training on CPU, {torch.get_num_threads()} threads; {load_line()}")
    against_dense(steps, batch, args.d_model, args.width, args.k)
    print(
        f"\n2. distance to the floor: one step over one [4096, d] x [d, width] matmul, "
        f"{floor_rounds} rounds per shape after 1 warm-up (1.0 is the limit)"
    )
    threads = torch.get_num_threads()
    for d, width, k in FLOOR_SHAPES:
        to_floor(floor_rounds, 4096, d, width, k)
        phases(floor_rounds, 4096, d, width, k)
        torch.set_num_threads(threads)


if __name__ == "__main__":
    main()
