"""Train one TopK SAE on a layer's activation shards (checkpointed: a rerun resumes)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from pathlib import Path

import torch

from protsae.esm.checkpoint import model_record
from protsae.io import claim_outputs
from protsae.sae.formats import record_esm_model
from protsae.sae.train import TrainConfig, TrainOutputs, TrainRun, train_sae

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

params = snakemake.params
torch.set_num_threads(snakemake.threads)
train_sae(
    list(snakemake.input.shards),
    TrainOutputs(
        Path(snakemake.output.safetensors),
        Path(snakemake.output.json),
        Path(snakemake.output.log_table),
    ),
    TrainConfig.from_mapping(params.training),
    execution=TrainRun(checkpoint_dir=params.checkpoint_dir),
    model_name=params.model_name,
    layer=params.layer,
)
# Which ESM-2 the SAE was trained on: `protsae encode` finds and checks the weights by it.
record_esm_model(
    snakemake.output.json,
    model_record(snakemake.input.model, params.esm_model, params.model_name),
)
