"""Fetch one external input (http(s)/ftp/file URL or local path) with checksum verification."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: SIM115

from protsae.sources import fetch  # noqa: E402

params = snakemake.params
fetch(
    str(params.url),
    snakemake.output[0],
    md5=params.md5 or None,
    sha256=params.sha256 or None,
)
