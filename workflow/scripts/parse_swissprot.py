"""Swiss-Prot flat file + InterPro entry.list -> swissprot.parquet (one row per entry) and
swissprot_features.parquet (one row per FT feature)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.io import claim_outputs, write_parquet
from protsae.sequences import parse_swissprot_with_features
from protsae.store import sources_named

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

inputs = snakemake.input
with sources_named({inputs.dat: inputs.dat_record, inputs.entries: inputs.entries_record}):
    table, features = parse_swissprot_with_features(
        inputs.dat, inputs.entries, invalid=snakemake.params.invalid
    )
write_parquet(table, snakemake.output.swissprot)
write_parquet(features, snakemake.output.features)
