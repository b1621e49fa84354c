"""Fetch or link one external input, format-checked and verified (protsae.store)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.config import downloads
from protsae.io import claim_outputs
from protsae.store import materialise

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

# The checksums come from the config, not from params: see workflow/rules/download.smk.
entry = downloads(snakemake.config)[snakemake.wildcards.file]
materialise(
    entry,
    snakemake.output.link,
    snakemake.output.record,
    key=snakemake.params.content,
)
