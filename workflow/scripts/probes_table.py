"""tables/probes.csv: one row per (layer, task, features), with bootstrap intervals."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.probes.table import probes_table
from protsae.tables import write_csv

table = probes_table(snakemake.input.probes, snakemake.input.controls, seed=snakemake.params.seed)
write_csv(table, snakemake.output[0])
