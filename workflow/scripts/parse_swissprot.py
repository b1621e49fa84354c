"""Swiss-Prot flat file + InterPro entry.list -> swissprot.parquet (one row per entry)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: SIM115

from protsae.io import write_parquet  # noqa: E402
from protsae.sequences import parse_swissprot  # noqa: E402

table = parse_swissprot(snakemake.input.dat, snakemake.input.entries)
write_parquet(table, snakemake.output[0])
