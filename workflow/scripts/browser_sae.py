"""One SAE's folder of the feature browser: its latent pages' data, alignments, structures."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.browser import PageSources, build_sae_pages
from protsae.io import claim_outputs

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

inputs = snakemake.input


def optional(name):
    """A named input that may be absent (an empty list) or one path."""
    value = inputs.get(name, [])
    return value if isinstance(value, str) else (value[0] if len(value) else None)


sources = PageSources(
    inputs.swissprot,
    inputs.entries,
    probe_paths=inputs.probes,
    steering_tables=inputs.steered,
    features_path=optional("features"),
    descriptions_path=optional("descriptions"),
    structures_dir=optional("structures"),
)
build_sae_pages(
    snakemake.output[0],
    snakemake.params.sae,
    sources,
    top_sequences=snakemake.params.top_sequences,
    quantile_bins=snakemake.params.quantile_bins,
    per_quantile=snakemake.params.quantile_examples,
    threads=snakemake.threads,
)
