"""Masked-LM pre-training of a small ESM-2 on the non-held-out UniRef50 sample sequences."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import pyarrow.parquet as pq
import torch

from protsae.io import claim_outputs
from protsae.pretrain import PretrainSettings, pretrain_esm, training_records

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

params = snakemake.params
torch.set_num_threads(snakemake.threads)
records = training_records(
    pq.read_table(snakemake.input.sample, columns=["id", "sequence"]),
    params.holdout_fraction,
)
settings = PretrainSettings(
    layers=params.layers,
    embed_dim=params.embed_dim,
    heads=params.heads,
    steps=params.steps,
    batch_tokens=params.batch_tokens,
    lr=params.lr,
    seed=params.seed,
)
pretrain_esm(
    records,
    snakemake.output.model,
    settings,
    checkpoint_dir=params.checkpoint_dir,
    checkpoint_every=params.checkpoint_every,
)
