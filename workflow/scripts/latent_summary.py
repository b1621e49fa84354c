"""Per-SAE summary: latents per pattern class and the family-specific latents."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.io import write_json
from protsae.latents import summary_from_files

write_json(
    summary_from_files(snakemake.input.classes, snakemake.input.families), snakemake.output[0]
)
