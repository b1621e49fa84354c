import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.tables import latent_summary_table, write_csv

write_csv(latent_summary_table(snakemake.input), snakemake.output[0])
