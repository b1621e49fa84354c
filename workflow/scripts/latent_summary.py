"""Per-SAE summary: latents per pattern class and the family-specific latents."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: SIM115

from protsae.io import write_json  # noqa: E402
from protsae.latents import summary_from_files  # noqa: E402

write_json(
    summary_from_files(snakemake.input.classes, snakemake.input.families), snakemake.output[0]
)
