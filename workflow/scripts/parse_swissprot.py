"""Swiss-Prot flat file + InterPro entry.list -> swissprot.parquet (one row per entry)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.io import claim_outputs, write_parquet
from protsae.sequences import parse_swissprot

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

table = parse_swissprot(
    snakemake.input.dat, snakemake.input.entries, invalid=snakemake.params.invalid
)
write_parquet(table, snakemake.output[0])
