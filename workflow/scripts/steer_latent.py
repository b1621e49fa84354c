"""Clamp one latent at each multiplier and record ESM-2's argmax residues beside the conservation."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import torch

from protsae.esm import ForwardOptions
from protsae.io import claim_outputs
from protsae.steering.steer import steer_latent_from_files

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

torch.set_num_threads(max(1, int(snakemake.threads)))
params = snakemake.params
steer_latent_from_files(
    conservation_path=snakemake.input.conservation,
    sae_path=snakemake.input.sae,
    model_path=snakemake.input.model,
    layer=params.layer,
    multipliers=[float(m) for m in params.multipliers],
    out_path=snakemake.output[0],
    only_where_active=params.only_where_active,
    forward=ForwardOptions(params.max_tokens_per_batch),
)
