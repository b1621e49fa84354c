"""tables/probes.csv: one row per (layer, task, features)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.tables import probes_table, write_csv

write_csv(probes_table(snakemake.input), snakemake.output[0])
