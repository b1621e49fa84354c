"""Activation extraction speed on CPU: protsae.esm against fair-esm's own extraction loop.

The baseline is what fair-esm's ``scripts/extract.py`` does: length-sorted token-budget
batches from ``FastaBatchedDataset.get_batch_indices``, the batch converter, a full forward with
``repr_layers=[L]``, each sequence's representation copied out. Ours stops after layer L and
uses fused attention. Both run in this process on the same sequences; the printed ratios are
what to read, not the absolute numbers (they depend on the machine).

    python benchmarks/bench_extraction.py            # ~5-8 minutes on 2 cores
    python benchmarks/bench_extraction.py --quick    # ~1 minute
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

try:
    import protsae  # noqa: F401
except ImportError:  # run from a checkout without an editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import esm

from protsae import activations as acts
from protsae import esm as pesm

# UniProtKB/Swiss-Prot amino-acid composition (percent), so residues look like real proteins.
AA_FREQ = {
    "A": 8.25, "R": 5.53, "N": 4.06, "D": 5.45, "C": 1.37, "Q": 3.93, "E": 6.75,
    "G": 7.07, "H": 2.27, "I": 5.96, "L": 9.66, "K": 5.84, "M": 2.42, "F": 3.86,
    "P": 4.70, "S": 6.56, "T": 5.34, "W": 1.08, "Y": 2.92, "V": 6.87,
}  # fmt: skip


def realistic_records(n: int, seed: int) -> list[tuple[str, str]]:
    """Log-normal lengths (median 300, like UniRef50), capped at ESM-2's 1022."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(300), 0.6, n).astype(int), 30, pesm.MAX_RESIDUES)
    letters = np.array(list(AA_FREQ))
    p = np.array(list(AA_FREQ.values()))
    p = p / p.sum()
    return [
        (f"bench_{i}", "".join(rng.choice(letters, size=length, p=p)))
        for i, length in enumerate(lengths)
    ]


def fair_esm_extract(model, alphabet, records, layer: int, toks_per_batch: int) -> dict:
    """fair-esm's extract.py loop, minus file writing; returns a few outputs for a sanity check."""
    dataset = esm.data.FastaBatchedDataset([r[0] for r in records], [r[1] for r in records])
    batches = dataset.get_batch_indices(toks_per_batch, extra_toks_per_seq=1)
    loader = torch.utils.data.DataLoader(
        dataset, collate_fn=alphabet.get_batch_converter(), batch_sampler=batches
    )
    kept = {}
    with torch.no_grad():
        for labels, strs, toks in loader:
            out = model(toks, repr_layers=[layer], return_contacts=False)
            reps = {k: v.to(device="cpu") for k, v in out["representations"].items()}
            for i, label in enumerate(labels):
                vector = reps[layer][i, 1 : len(strs[i]) + 1].clone()
                if len(kept) < 4:
                    kept[label] = vector
    return kept


def compare(
    name: str, model, alphabet, records, layer: int, toks: int, chunks: int, checkpoint=None
) -> None:
    """Time the methods chunk by chunk, rotating their order, so that load from other processes
    on a shared machine falls on all of them alike rather than on whichever ran last."""
    tokens = sum(len(s) for _, s in records)
    print(
        f"\n{name}: {model.num_layers} layers x {model.embed_dim} dims, layer {layer}, "
        f"{len(records)} sequences, {tokens:,} residues, {toks} tokens per batch, "
        f"{torch.get_num_threads()} threads, {chunks} interleaved chunks"
    )
    kept: dict[str, torch.Tensor] = {}
    diffs: list[float] = []
    quiet = logging.getLogger("bench-quiet")  # extract_shard's progress lines would drown the table
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False

    def baseline(chunk):
        kept.update(fair_esm_extract(model, alphabet, chunk, layer, toks))

    def ours(chunk):
        for seq_id, hidden in pesm.layer_representations(
            model, alphabet, chunk, layer, pesm.ForwardOptions(toks)
        ):
            if seq_id in kept:
                diffs.append((hidden - kept[seq_id]).abs().max().item())

    def shard(chunk):
        with tempfile.TemporaryDirectory() as tmp:
            acts.extract_shard(
                checkpoint,
                chunk,
                Path(tmp) / "shard.parquet",
                layer,
                acts.ShardFormat("bench", "float16"),
                pesm.ForwardOptions(toks, "cpu"),
                quiet,
            )

    methods = {
        "fair-esm extract loop (baseline)": baseline,
        "protsae layer_representations": ours,
    }
    if checkpoint is not None:
        methods["protsae extract_shard (load, extract, float16 Parquet)"] = shard
    warm = records[:2]
    for method in methods.values():
        method(warm)
    kept.clear()
    diffs.clear()

    seconds = dict.fromkeys(methods, 0.0)
    names = list(methods)
    load_before = os.getloadavg()[0]
    for c in range(chunks):
        chunk = records[c::chunks]
        rotation = c % len(names)
        for method_name in names[rotation:] + names[:rotation]:
            start = time.perf_counter()
            methods[method_name](chunk)
            seconds[method_name] += time.perf_counter() - start
    base_rate = tokens / seconds[names[0]]
    for method_name in names:
        rate = tokens / seconds[method_name]
        print(f"  {method_name:58s} {rate:9,.0f} tokens/s  {rate / base_rate:5.2f}x")
    print(
        f"  max |protsae - fair-esm| over {len(diffs)} sequences: {max(diffs, default=0):.1e}; "
        f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sets, about a minute")
    parser.add_argument("--sequences", type=int, help="sequences for the 6-layer model (500)")
    parser.add_argument("--big-sequences", type=int, help="sequences for the 650M shape (20)")
    parser.add_argument("--skip-big", action="store_true", help="skip the 33-layer 1280-dim run")
    parser.add_argument("--tokens-per-batch", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    n_small = args.sequences or (60 if args.quick else 500)
    n_big = args.big_sequences or (2 if args.quick else 20)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "random-t6-d320-s0.pt"
        pesm.save_random_init(checkpoint, 6, 320, 20, seed=0)
        model, alphabet = pesm.load_model(checkpoint)
        records = realistic_records(n_small, seed=0)
        compare(
            "ESM-2 8M shape", model, alphabet, records, 3, args.tokens_per_batch,
            chunks=max(2, n_small // 25), checkpoint=checkpoint,
        )  # fmt: skip

    if not args.skip_big:
        model = pesm.build_random_init(33, 1280, 20, seed=0)
        records = realistic_records(n_big, seed=1)
        compare(
            "ESM-2 650M shape", model, model.alphabet, records, 24, args.tokens_per_batch,
            chunks=max(2, n_big // 2),
        )  # fmt: skip


if __name__ == "__main__":
    main()
