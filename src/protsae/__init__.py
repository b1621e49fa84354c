"""protsae: sparse autoencoders on ESM-2 activations, and what their latents mean."""

__version__ = "0.1.0"
