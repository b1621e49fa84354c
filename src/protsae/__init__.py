"""protsae: sparse autoencoders on ESM-2 activations, and what their latents mean."""

from __future__ import annotations

from typing import Any

from protsae.version import __version__

__all__ = ["__version__", "encode"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import protsae` stays light (no torch) until protsae.encode is used.
    if name == "encode":
        from protsae.encoding.run import encode

        return encode
    raise AttributeError(f"module 'protsae' has no attribute {name!r}")
