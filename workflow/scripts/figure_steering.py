"""Fraction of residues unchanged by steering vs conservation, one line per multiplier."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import pandas as pd

from protsae.figures import save_figure, steering_figure

figure = steering_figure(pd.read_parquet(snakemake.input[0]), title=snakemake.params.title)
save_figure(figure, snakemake.output.png, snakemake.output.svg)
