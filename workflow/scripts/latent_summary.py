"""Per-SAE summary: latents per pattern class, the family-specific latents, concept-specific count."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.io import write_json
from protsae.latents import summary_from_files

inputs = snakemake.input
summary = summary_from_files(
    inputs.classes,
    inputs.families,
    inputs.concepts,
    snakemake.params.concept_f1_threshold,
)
write_json(summary, snakemake.output[0])
