"""Swiss-Prot flat file + InterPro entry.list -> swissprot.parquet (one row per entry)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.io import claim_outputs, write_parquet
from protsae.sequences import parse_swissprot
from protsae.store import sources_named

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

inputs = snakemake.input
with sources_named({inputs.dat: inputs.dat_record, inputs.entries: inputs.entries_record}):
    table = parse_swissprot(inputs.dat, inputs.entries, invalid=snakemake.params.invalid)
write_parquet(table, snakemake.output[0])
