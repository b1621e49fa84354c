"""Evaluate one SAE on held-out sequences: eval.json (keys: protsae.sae.evaluate.EVAL_METRICS)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import pyarrow.parquet as pq
import torch

from protsae.activations import holdout_records
from protsae.esm import ForwardOptions
from protsae.io import claim_outputs, write_json
from protsae.sae.evaluate import evaluate_sae
from protsae.sae.formats import load_sae

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

params = snakemake.params
torch.set_num_threads(snakemake.threads)
sae = load_sae(snakemake.input.safetensors, snakemake.input.json)
records = holdout_records(
    pq.read_table(snakemake.input.sample, columns=["id", "sequence"]),
    params.holdout_fraction,
    params.max_sequences,
)
metrics = evaluate_sae(
    sae,
    snakemake.input.model,
    records,
    layer=params.layer,
    forward=ForwardOptions(params.max_tokens_per_batch),
    mask_draws=params.mask_draws,
)
write_json(metrics, snakemake.output[0])
