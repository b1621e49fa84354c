"""Predicted structures of one SAE's top sequences, each checked against Swiss-Prot."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.browser.data import sequences_for, shown_sequences
from protsae.browser.structures import collect_structures

shown = shown_sequences(snakemake.input.top_examples, snakemake.params.top_sequences)
accessions = {acc for ids in shown.values() for acc in ids}
collect_structures(
    sequences_for(snakemake.input.swissprot, accessions),
    snakemake.output[0],
    snakemake.params.source,
    url=snakemake.params.url,
    folder=snakemake.params.folder,
    cache_dir=snakemake.params.cache,
)
