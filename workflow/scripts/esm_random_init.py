"""Save a seeded random-init ESM-2 in fair-esm's checkpoint format (offline demo and tests)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.esm import save_random_init
from protsae.io import claim_outputs
from protsae.progress import get_logger

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

params = snakemake.params
save_random_init(
    snakemake.output[0],
    num_layers=params.layers,
    embed_dim=params.embed_dim,
    attention_heads=params.heads,
    seed=params.seed,
)
get_logger().info(
    "random ESM-2 (%s layers, %s dims, %s heads, seed %s) saved to %s",
    params.layers,
    params.embed_dim,
    params.heads,
    params.seed,
    snakemake.output[0],
)
