"""MMseqs2 clusters of the Swiss-Prot entries and their train/test split -> parquet."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from pathlib import Path

import pyarrow.parquet as pq

from protsae.io import claim_outputs, write_parquet
from protsae.sequences import Clustering, cluster_sequences

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

params = snakemake.params
output = Path(snakemake.output[0])
table = cluster_sequences(
    pq.read_table(snakemake.input.swissprot, columns=["accession", "sequence"]),
    Clustering(params.min_seq_id, params.coverage, params.sensitivity),
    max_length=params.max_length,
    threads=snakemake.threads,
    test_fraction=params.test_fraction,
    seed=params.seed,
    workdir=output.parent,  # MMseqs2's temporary files beside the output, not in a small /tmp
)
write_parquet(table, output)
