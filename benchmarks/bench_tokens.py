"""Token batches: protsae's table-lookup converter against fair-esm's ``BatchConverter``.

Both turn the same (id, sequence) batches into the same int64 token tensor (the tests hold them
equal); fair-esm's splits each string on its 33 tokens in turn. Batches of 4096 padded tokens of
random Swiss-Prot-like sequences, 50-1000 residues. Read the ratio, not the absolute numbers.

    python benchmarks/bench_tokens.py
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

try:
    import protsae  # noqa: F401
except ImportError:  # run from a checkout without an editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import esm
import torch

from protsae.esm import token_batches
from protsae.esm.tokens import ResidueBatchConverter

LETTERS = "ACDEFGHIKLMNPQRSTVWY"


def best_of(rounds: int, convert, batches) -> float:
    """Fastest of ``rounds`` passes over every batch, in seconds."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for batch in batches:
            convert(batch)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    rng = random.Random(0)
    records = [
        (f"s{i}", "".join(rng.choices(LETTERS, k=rng.randint(50, 1000)))) for i in range(2000)
    ]
    batches = [
        [records[i] for i in batch] for batch in token_batches([len(s) for _, s in records], 4096)
    ]
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    theirs, ours = alphabet.get_batch_converter(), ResidueBatchConverter(alphabet)
    assert all(torch.equal(theirs(b)[2], ours(b)[2]) for b in batches[:5])
    residues = sum(len(s) for _, s in records)
    baseline = best_of(2, theirs, batches)
    mine = best_of(2, ours, batches)
    print(f"{len(records)} sequences, {residues:,} residues, {len(batches)} batches")
    print(f"fair-esm BatchConverter   {residues / baseline:12,.0f} residues/s")
    print(f"ResidueBatchConverter     {residues / mine:12,.0f} residues/s")
    print(f"speed-up: {baseline / mine:.1f}x")


if __name__ == "__main__":
    main()
