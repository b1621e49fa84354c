"""One generated description per latent of one SAE (best family, best concepts, how often)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.io import claim_outputs, write_parquet
from protsae.latents.descriptions import descriptions_from_files

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

inputs = snakemake.input
table = descriptions_from_files(
    inputs.families,
    inputs.concepts,
    inputs.seq_stats,
    inputs.swissprot,
    inputs.clusters,
    snakemake.params.width,
)
write_parquet(table, snakemake.output[0])
