"""TopK SAE training speed on CPU: protsae's sparse implementation vs a dense baseline.

The baseline is InterProt-style plain autograd: top-k scattered into a dense [N, width]
latent matrix, dense decoder matmul, dense encoder backward. Both start from the same
weights (b_dec at the geometric median), train with the same loss, Adam, learning-rate
schedule and decoder-norm invariants on the same synthetic planted activations (sparse
non-negative combinations of random unit atoms), so only the implementation differs.
Prints tokens/s of both, their ratio (goal >= 3x) and each final MSE on held-out tokens
(goal: ours within 1% of the baseline).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_sae.py [--quick] [--steps N]
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from protsae.sae.config import lr_at
from protsae.sae.model import SAEConfig, SAEOutput, TopKSAE
from protsae.sae.train import geometric_median, make_optimizer, train_step


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


def planted_batches(
    steps: int, batch: int, d: int, n_atoms: int, active: int, seed: int
) -> tuple[list[torch.Tensor], torch.Tensor]:
    rng = np.random.default_rng(seed)
    atoms = rng.standard_normal((n_atoms, d)).astype(np.float32)
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)

    def sample(n: int) -> torch.Tensor:
        chosen = rng.integers(0, n_atoms, (n, active))
        coefficients = rng.exponential(1.0, (n, active)).astype(np.float32)
        x = np.einsum("nk,nkd->nd", coefficients, atoms[chosen]) + 1.0
        return torch.from_numpy(x + 0.05 * rng.standard_normal((n, d)).astype(np.float32))

    return [sample(batch) for _ in range(steps)], sample(batch)


def train(model: TopKSAE, batches: list[torch.Tensor], lr: float) -> tuple[float, float]:
    """Tokens/s over all steps but the first (warm-up), and the seconds they took."""
    optimizer = make_optimizer(model, lr)
    start = 0.0
    for step, x in enumerate(batches):
        if step == 1:
            start = time.perf_counter()
        train_step(model, optimizer, x, None, lr_at(step, len(batches), lr, 0, 0.0))
    elapsed = time.perf_counter() - start
    return sum(len(x) for x in batches[1:]) / elapsed, elapsed


def encoder_matmul_rate(batches: list[torch.Tensor], w_enc: torch.Tensor) -> float:
    """Tokens/s of the encoder matmul alone ([tokens, d] x [d, width]), timed like ``train``:
    the floor no TopK step can beat, since every step must compute all pre-activations."""
    with torch.no_grad():
        batches[0] @ w_enc  # warm-up
        start = time.perf_counter()
        for x in batches[1:]:
            x @ w_enc
        elapsed = time.perf_counter() - start
    return sum(len(x) for x in batches[1:]) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few, smaller steps (CI)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch-tokens", type=int, default=None)
    parser.add_argument("--d-model", type=int, default=320)
    parser.add_argument("--width", type=int, default=16384)
    parser.add_argument("--k", type=int, default=64)
    args = parser.parse_args()
    steps = args.steps or (4 if args.quick else 12)
    batch = args.batch_tokens or (1024 if args.quick else 4096)
    d, width, k = args.d_model, args.width, args.k

    batches, held_out = planted_batches(steps, batch, d, n_atoms=4 * width, active=k // 2, seed=0)
    ours = TopKSAE(SAEConfig(d_model=d, width=width, k=k), seed=0)
    with torch.no_grad():
        ours.b_dec.copy_(geometric_median(batches[0]))
    baseline = DenseTopKSAE(copy.deepcopy(ours.cfg))
    baseline.load_state_dict(ours.state_dict())
    lr = 2e-4 / (width / 16384) ** 0.5 * 4  # a few steps: a larger rate so MSE moves visibly

    with torch.no_grad():
        mse_init = float(ours(held_out).mse)
    base_rate, base_time = train(baseline, batches, lr)
    our_rate, our_time = train(ours, batches, lr)
    floor_rate = encoder_matmul_rate(batches, ours.W_enc.detach())
    with torch.no_grad():
        mse_ours = float(ours(held_out).mse)
        mse_base = float(baseline(held_out).mse)
    print(
        f"TopK SAE training, CPU ({torch.get_num_threads()} threads): d={d} width={width} k={k}, "
        f"{steps} steps x {batch} tokens (first step not timed)"
    )
    print(f"  dense baseline  : {base_rate:9.0f} tokens/s  ({base_time:.1f} s)")
    print(f"  protsae (sparse): {our_rate:9.0f} tokens/s  ({our_time:.1f} s)")
    print(f"  speed-up        : {our_rate / base_rate:9.2f}x  (goal >= 3x)")
    print(
        f"  encoder matmul  : {floor_rate:9.0f} tokens/s alone; a training step takes "
        f"{floor_rate / our_rate:.2f}x its time (distance to the floor; 1.0 is the limit)"
    )
    print(
        f"  held-out MSE    : ours {mse_ours:.6f}, baseline {mse_base:.6f} (at init {mse_init:.6f}), "
        f"relative difference {abs(mse_ours - mse_base) / mse_base:.2e} (goal < 1e-2)"
    )


if __name__ == "__main__":
    main()
