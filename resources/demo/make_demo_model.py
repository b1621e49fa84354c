"""Rebuild the demo's small ESM-2 (esm2_t4_demo.pt) from the demo's UniRef50 file.

Usage: python resources/demo/make_demo_model.py [--out DIR]

fair-esm's own ``ESM2`` class (4 layers, 64 dimensions, 4 heads) trained by masked-LM with ESM's
masking (``protsae.pretrain``, the code behind the workflow's ``pretrain_esm`` rule) on the
sequences of ``uniref50.fasta.gz`` that the demo does not hold out for evaluation
(``activations.holdout_fraction`` of config/demo.yaml, the same hash of the id), read by the
pipeline's own sampler (every record ESM can tokenize, up to ``sequences.max_length``). Written in
fair-esm's checkpoint layout, with its contact-regression file beside it, and
``esm2_t4_demo.json``: the settings, the digest of the training records (a test checks it
against the bundled data, so a model trained on older data is caught) and the final loss.

The run is seeded and single-threaded, so on one platform (CPU, PyTorch version) it rebuilds
the same bytes; it takes about 27 minutes on one core. Run make_demo_data.py first: the model
learns that script's planted families.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch
import yaml

from protsae.pretrain import PretrainSettings, pretrain_esm, records_digest, training_records
from protsae.progress import get_logger
from protsae.sequences.fasta import sample_uniref50

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NAME = "esm2_t4_demo.pt"
EVERY_RECORD = 1_000_000  # a sample larger than the file is the whole file
SETTINGS = PretrainSettings(
    layers=4, embed_dim=64, heads=4, steps=8000, batch_tokens=2048, lr=3e-3, seed=0
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--uniref", type=Path, default=HERE / "uniref50.fasta.gz")
    parser.add_argument("--steps", type=int, default=SETTINGS.steps, help="for quick checks only")
    args = parser.parse_args()
    torch.set_num_threads(1)  # reductions in one fixed order: the same bytes on every rebuild
    demo = yaml.safe_load((ROOT / "config/demo.yaml").read_text())
    sampling = demo["sequences"]
    table = sample_uniref50(args.uniref, EVERY_RECORD, sampling["max_length"], sampling["seed"])
    records = training_records(table, float(demo["activations"]["holdout_fraction"]))
    settings = dataclasses.replace(SETTINGS, steps=args.steps)
    started = time.perf_counter()
    loss = pretrain_esm(records, args.out / NAME, settings, device="cpu", logger=get_logger())
    record = {
        "settings": dataclasses.asdict(settings),
        "n_sequences": len(records),
        "records_sha256": records_digest(records),
        "final_loss": round(loss, 4),
        "torch": torch.__version__,
    }
    (args.out / NAME).with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"{NAME}: {len(records)} sequences, {settings.steps} steps, "
        f"final loss {loss:.4f}, {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
