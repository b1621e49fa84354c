"""Pattern classes and family-specific latents along one sweep of the SAE grid."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import pandas as pd

from protsae.figures import save_figure, sweep_figure

figure = sweep_figure(pd.read_csv(snakemake.input[0]), snakemake.params.points)
save_figure(figure, snakemake.output.png, snakemake.output.svg)
