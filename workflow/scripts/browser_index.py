"""The feature browser's pages and index over the SAE folders the browser_sae jobs wrote."""

import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.browser import build_index

build_index(
    Path(snakemake.output[0]).parent,
    snakemake.input.saes,
    title=snakemake.params.title,
    viewer=snakemake.input.viewer[0] if snakemake.input.viewer else None,
)
