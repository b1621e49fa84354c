"""Fraction unchanged per multiplier and conservation bin, per steered latent and averaged."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import pyarrow.compute as pc

from protsae.io import write_parquet
from protsae.progress import get_logger
from protsae.steering.summary import summarize

tables = snakemake.input.tables
tables = [tables] if isinstance(tables, str) else list(tables)
params = snakemake.params
table = summarize(
    tables,
    bins=[float(b) for b in params.bins],
    filter_multiplier=params.filter_multiplier,
    min_fraction_unchanged=params.min_fraction_unchanged,
)
write_parquet(table, snakemake.output[0])
kept = table["n_latents_kept"][0].as_py() if table.num_rows else 0
get_logger().info("%d steered latent table(s), %d kept by the filter", len(tables), kept)
for row in table.filter(pc.equal(table["scope"], "average")).to_pylist():
    get_logger().info("average %s", row)
