"""Token batches: protsae's table-lookup converter against fair-esm's ``BatchConverter``.

Both turn the same (id, sequence) batches into the same int64 token tensor (the tests hold them
equal); fair-esm's splits each string on its 33 tokens in turn. Batches of 4096 padded tokens of
random Swiss-Prot-like sequences, 50-1000 residues. Read the ratio, not the absolute numbers.

    python benchmarks/bench_tokens.py [--quick]    # --quick: 500 sequences instead of 2000
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

try:
    import protsae  # noqa: F401
except ImportError:  # run from a checkout without an editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import esm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Interleaved, tier_parser  # noqa: E402

from protsae.esm import token_batches
from protsae.esm.tokens import ResidueBatchConverter

LETTERS = "ACDEFGHIKLMNPQRSTVWY"


def over_all(convert, batches):
    """A callable that converts every batch once."""

    def run() -> None:
        for batch in batches:
            convert(batch)

    return run


def main() -> None:
    args = tier_parser(__doc__.splitlines()[0]).parse_args()
    rng = random.Random(0)
    n = 500 if args.quick else 2000
    records = [(f"s{i}", "".join(rng.choices(LETTERS, k=rng.randint(50, 1000)))) for i in range(n)]
    batches = [
        [records[i] for i in batch] for batch in token_batches([len(s) for _, s in records], 4096)
    ]
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    theirs, ours = alphabet.get_batch_converter(), ResidueBatchConverter(alphabet)
    assert all(torch.equal(theirs(b)[2], ours(b)[2]) for b in batches[:5])
    residues = sum(len(s) for _, s in records)
    timing = Interleaved(
        {"fair-esm": over_all(theirs, batches), "protsae": over_all(ours, batches)}
    ).run(rounds=3, warmup=0)
    print(
        f"{len(records)} sequences, {residues:,} residues, {len(batches)} batches; {timing.load()}"
    )
    for label, name in (
        ("fair-esm BatchConverter", "fair-esm"),
        ("ResidueBatchConverter", "protsae"),
    ):
        best = min(timing.seconds[name])
        print(f"{label:24s} {residues / best:12,.0f} residues/s (best round; {timing.times(name)})")
    print(f"speed-up: {timing.ratio_line('fair-esm', 'protsae')}")


if __name__ == "__main__":
    main()
