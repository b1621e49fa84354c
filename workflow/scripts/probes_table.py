"""tables/probes.csv: one row per (layer, task, features)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.probes.run import probes_table
from protsae.tables import write_csv

write_csv(probes_table(snakemake.input), snakemake.output[0])
