"""The best residue concepts of one SAE (latent, concept, test F1)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.figures import save_figure
from protsae.figures.concepts import best_concepts_from_files

figure = best_concepts_from_files(snakemake.input.concepts, title=snakemake.params.title)
save_figure(figure, snakemake.output.png, snakemake.output.svg)
