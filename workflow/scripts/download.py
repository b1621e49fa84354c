"""Fetch one external input (http(s)/ftp/file URL or local path), format-checked and
verified against its checksums."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from protsae.sources import fetch

params = snakemake.params
fetch(
    str(params.url),
    snakemake.output[0],
    md5=params.md5 or None,
    sha256=params.sha256 or None,
    kind=params.kind,
    label=params.label,
)
