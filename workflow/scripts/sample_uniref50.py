"""Seeded reservoir sample of UniRef50 (one streaming pass) -> uniref50_sample.parquet."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.io import claim_outputs, write_parquet
from protsae.sequences import sample_uniref50
from protsae.store import sources_named

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

params = snakemake.params
with sources_named({snakemake.input.fasta: snakemake.input.fasta_record}):
    table = sample_uniref50(
        snakemake.input.fasta,
        sample_size=params.sample_size,
        max_length=params.max_length,
        seed=params.seed,
    )
write_parquet(table, snakemake.output[0])
