"""One control of a probe task (majority class, or amino-acid composition through the task's probe)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import torch

from protsae.io import claim_outputs
from protsae.probes.control import control_from_files
from protsae.probes.fit import settings_for_task

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

torch.set_num_threads(max(1, int(snakemake.threads)))
params = snakemake.params
settings = settings_for_task(snakemake.wildcards.task, params.grid, params.training, params.seed)
control_from_files(
    snakemake.input.data, snakemake.wildcards.control, snakemake.output.json, settings
)
