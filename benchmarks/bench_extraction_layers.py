"""Extraction of several layers: one early-exit pass per layer (one job per (layer, shard)) against
one pass per shard that keeps every wanted layer (an ``activations.layer_passes`` group).

Each comparison runs twice: on fair-esm's own forward over a copy of the model cut after the
deepest wanted layer, and on protsae's forward (``multi_layer_representations``, what the
workflow's extraction runs). Within each, the schemes differ only in how many layers they run:
per-layer early exit runs sum(layers) layer passes per sequence, the multi-layer pass max(layers). The predicted ratio
is sum/max; the measured one includes what does not scale with layers (tokenising, embedding,
copying each kept layer out). Printed as ratios against the per-layer scheme, measured in this
process; `protsae plan` prints the same comparison in FLOPs and GPU-hours for a config.

    python benchmarks/bench_extraction_layers.py [--quick]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

try:
    import protsae  # noqa: F401
except ImportError:  # run from a checkout without an editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench_extraction import realistic_records

from protsae import esm as pesm


def truncated(model, layers: int):
    """A copy of ``model`` with only its first ``layers`` transformer layers."""
    cut = copy.copy(model)
    cut._modules = dict(model._modules)  # a shallow copy shares the submodule table
    cut.layers = torch.nn.ModuleList(list(model.layers)[:layers])
    cut.num_layers = layers
    return cut


def extract(model, alphabet, records, layers: list[int], toks: int) -> int:
    """One forward per token-budget batch keeping ``layers``; returns residues copied out."""
    convert = alphabet.get_batch_converter()
    copied = 0
    for batch in pesm.token_batches([len(s) for _, s in records], toks):
        labels, strs, tokens = convert([records[i] for i in batch])
        with torch.inference_mode():
            out = model(tokens, repr_layers=layers)["representations"]
        for layer in layers:
            for i, seq in enumerate(strs):
                copied += len(out[layer][i, 1 : len(seq) + 1].clone())
    return copied


def extract_protsae(model, alphabet, records, layers: list[int], toks: int) -> int:
    """protsae's own forward (what the workflow runs): ``layers`` from one pass that stops at
    the deepest (``multi_layer_representations``, a one-layer list is the early exit)."""
    copied = 0
    for _, hidden in pesm.multi_layer_representations(
        model, alphabet, records, layers, pesm.ForwardOptions(toks)
    ):
        copied += sum(len(h) for h in hidden.values())
    return copied


def compare(
    name: str,
    model,
    alphabet,
    records,
    layers: list[int],
    toks: int,
    rounds: int = 2,
    own_forward: bool = False,
) -> None:
    deepest = max(layers)
    if own_forward:  # the forward stops at the deepest wanted layer by itself
        models, run = dict.fromkeys(layers, model), extract_protsae
        name += " (protsae's forward, as extract_shard / extract_shard_layers run it)"
    else:
        models, run = {layer: truncated(model, layer) for layer in layers}, extract
        name += " (fair-esm's forward, cut after the deepest layer)"
    residues = sum(len(s) for _, s in records)

    def per_layer():
        for layer in layers:
            run(models[layer], alphabet, records, [layer], toks)

    def multi_layer():
        run(models[deepest], alphabet, records, layers, toks)

    run(models[deepest], alphabet, records[:1], layers, toks)  # warm-up
    schemes = {"per-layer early exit": per_layer, "one multi-layer pass": multi_layer}
    times = dict.fromkeys(schemes, 0.0)
    # Alternate the order round by round so load from other processes falls on both alike.
    for round_ in range(rounds):
        for label in list(schemes)[:: 1 if round_ % 2 == 0 else -1]:
            start = time.perf_counter()
            schemes[label]()
            times[label] += time.perf_counter() - start
    base = times["per-layer early exit"]
    print(
        f"\n{name}: layers {layers} of {model.num_layers} x {model.embed_dim} dims, "
        f"{len(records)} sequences, {residues:,} residues, {torch.get_num_threads()} threads"
    )
    print(
        f"  predicted layer-pass ratio sum/max = {sum(layers)}/{deepest} = {sum(layers) / deepest:.2f}"
    )
    for label, seconds in times.items():
        print(
            f"  {label:22s} {seconds:7.2f} s  {rounds * residues * len(layers) / seconds:9,.0f} "
            f"layer-residues/s  {base / seconds:5.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    small = pesm.build_random_init(6, 320, 20, seed=0)
    records = realistic_records(6 if args.quick else 40, seed=0)
    for own in (False, True):
        compare("ESM-2 8M shape", small, small.alphabet, records, [2, 4, 6], 4096, own_forward=own)
    big = pesm.build_random_init(33, 1280, 20, seed=0)
    records = [(i, s[:100]) for i, s in realistic_records(1 if args.quick else 3, seed=1)]
    sweep = [4, 8, 12, 16, 20, 24, 28, 32]
    for own in (False, True):
        compare("ESM-2 650M shape", big, big.alphabet, records, sweep, 4096, own_forward=own)


if __name__ == "__main__":
    main()
