"""One shard of each layer of params.layers (a lone layer is a group of one) from one ESM-2
forward that stops at the deepest of them; the outputs are in the order of params.layers."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import torch

from protsae.activations import ShardFormat, extract_shard_layers, read_shard_records
from protsae.esm import ForwardOptions
from protsae.io import claim_outputs
from protsae.progress import get_logger

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

params = snakemake.params
logger = get_logger()
torch.set_num_threads(max(1, snakemake.threads))

logger.info("layers %s in one pass", params.layers)
records = read_shard_records(
    snakemake.input.sample, params.shard, params.n_shards, params.holdout_fraction, logger
)
extract_shard_layers(
    snakemake.input.model,
    records,
    dict(zip(params.layers, snakemake.output, strict=True)),
    ShardFormat(params.model_name, params.dtype, params.tokens_per_sequence, params.seed),
    ForwardOptions(params.max_tokens_per_batch),
    logger=logger,
)
