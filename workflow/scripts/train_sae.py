"""Train one TopK SAE on a layer's activation shards (checkpointed: a rerun resumes)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from pathlib import Path

import torch

from protsae.sae.train import TrainOutputs, train_sae

params = snakemake.params
torch.set_num_threads(snakemake.threads)
train_sae(
    list(snakemake.input.shards),
    TrainOutputs(
        Path(snakemake.output.safetensors),
        Path(snakemake.output.json),
        Path(snakemake.output.log_table),
    ),
    width=int(params.width),
    k=int(params.k),
    total_tokens=int(params.total_tokens),
    lr=None if params.lr is None else float(params.lr),
    batch_tokens=int(params.batch_tokens),
    auxk=None if params.auxk is None else int(params.auxk),
    dead_tokens=int(params.dead_tokens),
    shuffle_buffer_tokens=int(params.shuffle_buffer_tokens),
    seed=int(params.seed),
    checkpoint_dir=params.checkpoint_dir,
    checkpoint_every=int(params.checkpoint_every),
    model_name=str(params.model_name),
    layer=int(params.layer),
    bf16=bool(params.bf16),
)
