"""The latents behind one SAE probe, and both probes' coefficients for the figures."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.io import claim_outputs
from protsae.probes.interpret import ProbePair, interpret_from_files

claim_outputs(*snakemake.output)  # one writer at a time; a killed one's temporary files go

inp, params = snakemake.input, snakemake.params
interpret_from_files(
    params.layer,
    snakemake.wildcards.task,
    ProbePair(inp.esm, inp.sae, params.sae_features),
    inp.classes,
    inp.families,
    params.top_n,
    snakemake.output.top_latents,
    snakemake.output.coefficients,
)
