"""Activation-pattern class of every latent of one SAE (method.md's rules, first match wins)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.io import claim_outputs, write_parquet
from protsae.latents import PatternRules, classes_from_files
from protsae.progress import get_logger

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

params = snakemake.params
rules = PatternRules(
    min_sequences=params.min_sequences,
    periodic_fraction=params.periodic_fraction,
    periodic_min_activations=params.periodic_min_activations,
    periodic_max_region=params.periodic_max_region,
    motif_bounds=tuple(float(b) for b in params.motif_bounds),
    whole_coverage=params.whole_coverage,
)
table = classes_from_files(
    snakemake.input.seq_stats, snakemake.input.top_examples, params.width, rules
)
write_parquet(table, snakemake.output[0])
get_logger().info("%d latents classified: %s", len(table), rules)
