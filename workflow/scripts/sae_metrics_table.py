"""One row per SAE: its eval.json metrics beside its model, layer, k and width."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.tables import sae_metrics_table, write_csv

write_csv(sae_metrics_table(snakemake.input, snakemake.params.saes), snakemake.output[0])
