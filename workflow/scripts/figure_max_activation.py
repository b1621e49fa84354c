"""Max-activation histograms of one SAE's family-specific and non-specific latents."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.figures import save_figure
from protsae.figures.max_activation import max_activation_from_files

figure = max_activation_from_files(
    snakemake.input.seq_stats,
    snakemake.input.families,
    snakemake.input.swissprot,
    title=snakemake.params.title,
)
save_figure(figure, snakemake.output.png, snakemake.output.svg)
