"""protsae: TopK sparse autoencoders on ESM-2 activations, and what their latents mean.

Run the bundled demo with `snakemake --cores all` (no --configfile: config/demo.yaml is
used); paper scale with `--configfile config/config.yaml`, on a cluster with
`--profile slurm`. docs/design.md describes the stages and their outputs.
"""

import os
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

# The library lives in src/; jobs (local, conda or SLURM) import it through PYTHONPATH.
_SRC = str(Path(workflow.basedir) / "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)
# (This sets a variable for the jobs; it requires none from the user, so no `envvars:`.)
os.environ.update(
    PYTHONPATH=os.pathsep.join(p for p in (_SRC, os.environ.get("PYTHONPATH")) if p)
)

# With no --configfile (and no --config) the bundled demo runs; files are not merged
# with it, so a user's config never inherits demo values.
if not config:

    configfile: "config/demo.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/sequences.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/activations.smk"
include: "workflow/rules/sae.smk"
include: "workflow/rules/latents.smk"
include: "workflow/rules/probes.smk"
include: "workflow/rules/steering.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/browser.smk"
include: "workflow/rules/targets.smk"


rule all:
    default_target: True
    input:
        get_final_targets(),
