"""Convert a Hugging Face ESM-2 (config.json, model.safetensors, vocab.txt) into fair-esm's layout."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.esm.checkpoint import save_hf_as_fairesm

save_hf_as_fairesm(
    snakemake.input.config,
    snakemake.input.model,
    snakemake.input.get("vocab"),
    snakemake.output.model,
    where=snakemake.params.label,
)
