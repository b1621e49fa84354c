"""One latent's steered sequences, their BLAST homologs in its family, alignments, conservation."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import os
from pathlib import Path

from protsae.io import claim_outputs, write_parquet
from protsae.progress import get_logger
from protsae.steering.homologs import HomologSearch, latent_conservation, read_target
from protsae.tools import tool_versions

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

logger = get_logger()
logger.info("tools: %s", tool_versions(["blastp", "clustalo"]))
params, inputs, outputs = snakemake.params, snakemake.input, snakemake.output
target = read_target(
    params.latent,
    inputs.families,
    inputs.top_examples,
    inputs.swissprot,
    n_sequences=params.sequences,
)
logger.info(
    "latent %d: family %s, max activation %.4g, steered sequences %s",
    target.latent,
    target.family,
    target.max_activation,
    [seq_id for seq_id, _ in target.sequences],
)
conservation, alignments = latent_conservation(
    target,
    inputs.swissprot,
    os.path.splitext(inputs.db[0])[0],  # the database files' common prefix
    HomologSearch(params.evalue, params.max_hits, params.min_homologs),
    threads=snakemake.threads,
    workdir=Path(outputs.conservation).parent,
)
write_parquet(alignments, outputs.alignments)
write_parquet(conservation, outputs.conservation)
