"""Latent statistics of one SAE on the Swiss-Prot evaluation set: seq_stats and top_examples."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import torch

from protsae.io import claim_outputs
from protsae.latents.stats import latent_stats_from_files

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

torch.set_num_threads(max(1, int(snakemake.threads)))
params = snakemake.params
latent_stats_from_files(
    sae_path=snakemake.input.sae,
    model_path=snakemake.input.model,
    swissprot_path=snakemake.input.swissprot,
    clusters_path=snakemake.input.clusters,
    layer=params.layer,
    top_examples=params.top_examples,
    max_tokens_per_batch=params.max_tokens_per_batch,
    seq_stats_path=snakemake.output.seq_stats,
    top_examples_path=snakemake.output.top_examples,
)
