"""The static feature browser over every latent of every SAE."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.browser import build_browser
from protsae.io import claim_outputs

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

build_browser(
    snakemake.output[0],
    snakemake.params.saes,
    snakemake.input.swissprot,
    snakemake.input.entries,
    top_sequences=snakemake.params.top_sequences,
    threads=snakemake.threads,
    probe_paths=snakemake.input.get("probes", []),
    title=snakemake.params.title,
)
