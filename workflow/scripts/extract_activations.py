"""One activation shard: layer-L ESM-2 vectors of the training sequences that hash to this shard."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import torch

from protsae.activations import extract_shard, read_shard_records
from protsae.io import claim_outputs
from protsae.progress import get_logger

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

params = snakemake.params
logger = get_logger()
torch.set_num_threads(max(1, int(snakemake.threads)))

records = read_shard_records(
    snakemake.input.sample,
    int(params.shard),
    int(params.n_shards),
    float(params.holdout_fraction),
    logger,
)
tokens_per_sequence = params.tokens_per_sequence
extract_shard(
    snakemake.input.model,
    records,
    snakemake.output[0],
    layer=int(params.layer),
    model_name=str(params.model_name),
    max_tokens_per_batch=int(params.max_tokens_per_batch),
    dtype=str(params.dtype),
    tokens_per_sequence=None if tokens_per_sequence is None else int(tokens_per_sequence),
    seed=int(params.seed),
    logger=logger,
)
