"""FVE, L0, dead fraction and loss recovered of every SAE of the grid."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import pandas as pd

from protsae.figures import sae_quality_figure, save_figure

figure = sae_quality_figure(pd.read_csv(snakemake.input[0]))
save_figure(figure, snakemake.output.png, snakemake.output.svg)
