"""Training throughput of protsae.pretrain at the demo's ESM-2 size, against its own forward pass.

Baseline (same process, same model size and batches): fair-esm's forward pass alone, in
inference mode. Training costs a forward, a backward and an AdamW step, so a ratio near 1/3
means the loop adds little of its own. Threads: 1 (the demo rule's), then all cores; on a
busy machine more threads can be slower. Prints residues/s of each and the ratios.

    python benchmarks/bench_pretrain.py [--steps 30] [--quick]
"""

from __future__ import annotations

import argparse
import logging
import random
import tempfile
import time
from pathlib import Path

import esm
import torch

from protsae.esm import build_random_init
from protsae.pretrain import PretrainSettings, epoch_batches, pretrain_esm


def records(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [
        (f"b{i}", "".join(rng.choices("ACDEFGHIKLMNPQRSTVWY", k=rng.randint(100, 400))))
        for i in range(n)
    ]


def forward_rate(data, settings: PretrainSettings, steps: int) -> float:
    model = build_random_init(settings.layers, settings.embed_dim, settings.heads, 0)
    convert = esm.data.Alphabet.from_architecture("ESM-1b").get_batch_converter()
    batches = epoch_batches([len(s) for _, s in data], settings.batch_tokens, 0, 0)[:steps]
    residues, start = 0, time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            model(convert([data[i] for i in batch])[2])
            residues += sum(len(data[i][1]) for i in batch)
    return residues / (time.perf_counter() - start)


def training_rate(data, settings: PretrainSettings) -> float:
    logger = logging.getLogger("bench")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    batches = epoch_batches([len(s) for _, s in data], settings.batch_tokens, settings.seed, 0)
    residues = sum(len(data[i][1]) for b in batches[: settings.steps] for i in b)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        pretrain_esm(data, Path(tmp) / "m.pt", settings, device="cpu", logger=logger)
        return residues / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="5 steps, to check it runs")
    args = parser.parse_args()
    steps = 5 if args.quick else args.steps
    # the demo's model and batches (config/demo.yaml esm.pretrain)
    settings = PretrainSettings(4, 64, 4, steps=steps, batch_tokens=2048, lr=3e-3, seed=0)
    data = records(40 * steps)
    for threads in sorted({1, torch.get_num_threads()}):
        torch.set_num_threads(threads)
        forward = forward_rate(data, settings, steps)
        train = training_rate(data, settings)
        print(
            f"threads={threads}: training {train:,.0f} residues/s, forward only "
            f"{forward:,.0f} residues/s, ratio {train / forward:.2f}"
        )


if __name__ == "__main__":
    main()
