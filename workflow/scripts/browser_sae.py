"""One SAE's folder of the feature browser: its latent pages' data, alignments, structures."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.browser import build_sae_pages
from protsae.io import claim_outputs

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

inputs = snakemake.input
build_sae_pages(
    snakemake.output[0],
    snakemake.params.sae,
    inputs.swissprot,
    inputs.entries,
    top_sequences=snakemake.params.top_sequences,
    quantile_bins=snakemake.params.quantiles["bins"],
    per_quantile=snakemake.params.quantiles["examples"],
    threads=snakemake.threads,
    probe_paths=inputs.probes,
    steering_tables=inputs.steered,
    features_path=inputs.get("features"),
    descriptions_path=inputs.get("descriptions"),
    structures_dir=inputs.structures[0] if inputs.structures else None,
)
