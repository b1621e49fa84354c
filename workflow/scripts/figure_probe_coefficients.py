"""Distributions of probe coefficients, ESM embedding vs SAE latents, one panel per task."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.figures import probe_coefficients_figure, save_figure
from protsae.figures.probes import read_coefficients

figure = probe_coefficients_figure(read_coefficients(snakemake.input))
save_figure(figure, snakemake.output.png, snakemake.output.svg)
