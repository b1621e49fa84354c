"""Latent statistics of one SAE on the Swiss-Prot evaluation set: seq_stats and top_examples."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import torch

from protsae.esm import ForwardOptions
from protsae.io import claim_outputs
from protsae.latents.stats import EvaluationSet, latent_stats_from_files
from protsae.sae.at_layer import EsmSaeFiles

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

torch.set_num_threads(max(1, int(snakemake.threads)))
params = snakemake.params
latent_stats_from_files(
    EsmSaeFiles(snakemake.input.model, snakemake.input.sae, params.layer),
    EvaluationSet(snakemake.input.swissprot, snakemake.input.clusters),
    top_examples=params.top_examples,
    seq_stats_path=snakemake.output.seq_stats,
    top_examples_path=snakemake.output.top_examples,
    forward=ForwardOptions(params.max_tokens_per_batch),
)
