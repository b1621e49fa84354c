"""Activation conventions: which ESM-2 vectors an SAE was trained on.

An SAE only means something on inputs computed the way its training inputs were, so each SAE
records its convention (``sae.json`` key ``activation_convention``) and every stage that encodes
with it computes activations that way (:mod:`protsae.esm` takes a ``convention`` keyword).

- ``"fair-esm"`` (protsae's own SAEs): fair-esm's ``repr_layers`` vectors. The token embedding
  is multiplied by fair-esm's token-dropout factor (0.88 when nothing is masked), the last layer's
  vector is taken after the final ``emb_layer_norm_after``, and only residues are trained on.
- ``"interprot"`` (published InterProt SAEs): InterProt's ESM-2 wrapper, built with
  ``token_dropout=False``: the embedding is not rescaled (nor are ``<mask>`` embeddings zeroed),
  no layer's vector ever has the final layer norm (it is applied only before the LM head), and
  BOS/EOS were part of the training data.

This module imports nothing heavy, so SAE code can name conventions without loading fair-esm.
"""

from __future__ import annotations

FAIR_ESM = "fair-esm"
INTERPROT = "interprot"
ACTIVATION_CONVENTIONS: tuple[str, ...] = (FAIR_ESM, INTERPROT)


def check_convention(convention: str) -> str:
    """Return ``convention`` if it is one we know, else raise naming the known ones."""
    if convention not in ACTIVATION_CONVENTIONS:
        raise ValueError(
            f"activation convention must be one of {ACTIVATION_CONVENTIONS}, got {convention!r}"
        )
    return convention


def trains_on_bos_eos(convention: str) -> bool:
    """Whether SAEs of this convention saw the BOS and EOS positions in training."""
    return check_convention(convention) == INTERPROT
