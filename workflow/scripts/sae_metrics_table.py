import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.tables import sae_metrics_table, write_csv

write_csv(sae_metrics_table(snakemake.input), snakemake.output[0])
