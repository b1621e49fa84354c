"""Turn a published InterProt SAE (safetensors) into protsae's sae.safetensors + sae.json."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.esm.checkpoint import model_record
from protsae.io import claim_outputs
from protsae.progress import get_logger
from protsae.sae.formats import import_interprot, record_esm_model, save_sae

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

params = snakemake.params
sae = import_interprot(
    snakemake.input.weights, k=params.k, model=params.model_name, layer=params.layer
)
save_sae(sae, snakemake.output.safetensors, snakemake.output.json)
# The ESM-2 the imported SAE is paired with here: `protsae encode` finds and checks it by this.
record_esm_model(
    snakemake.output.json,
    model_record(snakemake.input.model, params.esm_model, params.model_name),
)
get_logger().info(
    "imported %s: d_model %d, width %d, k %d, decoder rows unit-norm: %s",
    snakemake.input.weights,
    sae.cfg.d_model,
    sae.cfg.width,
    sae.cfg.k,
    sae.cfg.decoder_unit_norm,
)
