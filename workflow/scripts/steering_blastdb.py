"""A protein BLAST database of every Swiss-Prot entry, searched for the steering homologs."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import os

import pyarrow.parquet as pq

from protsae.io import claim_outputs
from protsae.progress import get_logger
from protsae.steering.blast import build_blast_db
from protsae.tools import tool_versions

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

get_logger().info("tools: %s", tool_versions(["makeblastdb"]))
table = pq.read_table(snakemake.input[0], columns=["accession", "sequence"])
build_blast_db(table, os.path.splitext(snakemake.output[0])[0])  # the files' common prefix
