"""Probe coefficients, ESM embedding vs SAE latents, one panel per task, layer and class."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import pandas as pd

from protsae.figures import probe_coefficients_figure, save_figure
from protsae.figures.probes import read_coefficients

figure = probe_coefficients_figure(
    read_coefficients(snakemake.input.coefficients), pd.read_csv(snakemake.input.table)
)
save_figure(figure, snakemake.output.png, snakemake.output.svg)
