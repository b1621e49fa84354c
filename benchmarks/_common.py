"""What the benchmarks share: the quick/full tier flag, interleaved timing, the load line.

Every ``benchmarks/bench_*.py`` takes ``--quick`` (``make bench``: reduced sizes, the same
ratios printed, all of them together within 15 minutes on 2 cores); without it they run the
full sizes (``make bench-full``). Timings that are compared are taken in one process,
interleaved round by round with the order rotated, so that load from other processes falls on
every contender alike; each ratio is reported as min / median / max over the rounds together
with the load average before and after (``docs/performance.md``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch


def tier_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the ``--quick`` flag every benchmark honours."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="the make-bench tier: reduced sizes, same ratios"
    )
    return parser


def load_line() -> str:
    """The 1-minute load average and the CPU count, for the record beside each figure."""
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"


class Interleaved:
    """Time named contenders round by round, rotating their order every round."""

    def __init__(
        self,
        contenders: dict[str, Callable[[], object]],
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """``clock``: wall time by default; ``time.thread_time`` with one torch thread gives
        CPU time, which other processes' load barely changes."""
        self.contenders = contenders
        self.clock = clock
        self.seconds: dict[str, list[float]] = {name: [] for name in contenders}
        self.load_before = self.load_after = 0.0

    def run(self, rounds: int, warmup: int = 1) -> Interleaved:
        names = list(self.contenders)
        for _ in range(warmup):
            for name in names:
                self.contenders[name]()
        self.load_before = os.getloadavg()[0]
        for r in range(rounds):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                start = self.clock()
                self.contenders[name]()
                self.seconds[name].append(self.clock() - start)
        self.load_after = os.getloadavg()[0]
        return self

    def times(self, name: str) -> str:
        """``min / median`` seconds of one contender."""
        values = self.seconds[name]
        return f"{min(values):.3f} / {statistics.median(values):.3f} s"

    def ratios(self, slower: str, faster: str) -> tuple[float, float, float]:
        """Per-round ratios slower/faster: (min, median, max)."""
        per_round = [a / b for a, b in zip(self.seconds[slower], self.seconds[faster], strict=True)]
        return min(per_round), statistics.median(per_round), max(per_round)

    def ratio_line(self, slower: str, faster: str) -> str:
        low, mid, high = self.ratios(slower, faster)
        return f"{mid:.2f}x (min {low:.2f}, max {high:.2f} over {len(self.seconds[faster])} rounds)"

    def load(self) -> str:
        return (
            f"load average {self.load_before:.1f} -> {self.load_after:.1f} "
            f"on {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads"
        )


def planted_batches(
    steps: int, batch: int, d: int, n_atoms: int, active: int, seed: int
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Synthetic activations with a planted dictionary: each token a sparse non-negative
    combination of ``active`` of ``n_atoms`` random unit atoms, plus an offset and noise.
    ``steps`` training batches and one held-out batch."""
    rng = np.random.default_rng(seed)
    atoms = rng.standard_normal((n_atoms, d)).astype(np.float32)
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)

    def sample(n: int) -> torch.Tensor:
        chosen = rng.integers(0, n_atoms, (n, active))
        coefficients = rng.exponential(1.0, (n, active)).astype(np.float32)
        x = np.einsum("nk,nkd->nd", coefficients, atoms[chosen]) + 1.0
        return torch.from_numpy(x + 0.05 * rng.standard_normal((n, d)).astype(np.float32))

    return [sample(batch) for _ in range(steps)], sample(batch)
