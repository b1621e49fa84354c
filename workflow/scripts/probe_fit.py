"""One linear probe: ESM-2 layer embeddings or SAE latents of one task, fitted and scored."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import torch

from protsae.esm import ForwardOptions
from protsae.io import claim_outputs
from protsae.probes.fit import probe_from_files, settings_for_task

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

torch.set_num_threads(max(1, int(snakemake.threads)))
params = snakemake.params
settings = settings_for_task(snakemake.wildcards.task, params.grid, params.training, params.seed)
probe_from_files(
    snakemake.input.data,
    snakemake.input.model,
    params.layer,
    snakemake.output.json,
    snakemake.output.coef,
    sae_path=snakemake.input.sae[0] if snakemake.input.sae else None,
    forward=ForwardOptions(params.max_tokens_per_batch),
    settings=settings,
)
