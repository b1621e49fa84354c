"""One row per SAE: latents per pattern class and family-specific latents."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.tables import latent_summary_table, write_csv

write_csv(latent_summary_table(snakemake.input, snakemake.params.saes), snakemake.output[0])
