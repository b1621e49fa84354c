"""The feature browser's pages and index over the SAE folders the browser_sae jobs wrote."""

import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.browser import build_index

viewer = snakemake.input.get("viewer", [])
saes = snakemake.input.saes
build_index(
    Path(snakemake.output[0]).parent,
    [saes] if isinstance(saes, str) else list(saes),
    title=snakemake.params.title,
    viewer=viewer if isinstance(viewer, str) else (viewer[0] if len(viewer) else None),
)
