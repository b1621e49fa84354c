"""The offline feature browser: static HTML pages and per-latent data scripts that open
straight from the results folder (file://), with no server and no network."""

from protsae.browser.build import (
    PageSources,
    build_browser,
    build_index,
    build_sae_pages,
    js_call,
)

__all__ = ["PageSources", "build_browser", "build_index", "build_sae_pages", "js_call"]
