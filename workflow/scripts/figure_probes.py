"""Probe metric per layer, ESM embedding vs SAE latents, one panel per task."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import pandas as pd

from protsae.figures import probe_metrics_figure, save_figure

figure = probe_metrics_figure(pd.read_csv(snakemake.input[0]))
save_figure(figure, snakemake.output.png, snakemake.output.svg)
