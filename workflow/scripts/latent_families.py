"""Family specificity of every latent of one SAE (threshold chosen on train, F1 on test)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.io import claim_outputs, write_parquet
from protsae.latents import families_from_files
from protsae.progress import get_logger

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

table = families_from_files(
    snakemake.input.seq_stats,
    snakemake.input.swissprot,
    snakemake.input.clusters,
    snakemake.params.width,
    thresholds=[float(t) for t in snakemake.params.thresholds],
    f1_threshold=snakemake.params.f1_threshold,
    min_train_members=snakemake.params.min_train_members,
)
write_parquet(table, snakemake.output[0])
n_specific = sum(table["family_specific"].to_pylist())
get_logger().info("%d latents, %d family-specific", len(table), n_specific)
