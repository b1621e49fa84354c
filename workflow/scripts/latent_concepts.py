"""Residue concepts of one SAE: every latent against every Swiss-Prot feature concept."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import torch

from protsae.esm import ForwardOptions
from protsae.io import claim_outputs, write_parquet
from protsae.latents.concepts import concept_specific_latents
from protsae.latents.stats import EvaluationSet, concepts_from_files
from protsae.progress import get_logger
from protsae.sae.at_layer import EsmSaeFiles

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

torch.set_num_threads(max(1, int(snakemake.threads)))
params, inputs = snakemake.params, snakemake.input
table = concepts_from_files(
    EsmSaeFiles(inputs.model, inputs.sae, params.layer),
    EvaluationSet(inputs.swissprot, inputs.clusters),
    features_path=inputs.features,
    seq_stats_path=inputs.seq_stats,
    fractions=[float(t) for t in params.thresholds],
    min_proteins=params.min_proteins,
    forward=ForwardOptions(params.max_tokens_per_batch),
)
write_parquet(table, snakemake.output[0])
get_logger().info(
    "%d (latent, concept) rows, %d concept-specific latents",
    table.num_rows,
    concept_specific_latents(table),
)
