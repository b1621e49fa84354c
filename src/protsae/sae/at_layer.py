"""An ESM-2 and an SAE trained on one of its layers, loaded together and checked against each
other: what the latent statistics, concepts, probes, steering and ``protsae encode`` run.

:meth:`EsmSae.load` is the one place that resolves the device, loads the ESM-2 checkpoint and
the SAE, and checks the SAE's layer and width against the model; :meth:`EsmSae.encoder` is the
one ESM-2 -> SAE encoding loop.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from protsae.device import resolve_device
from protsae.esm import ForwardOptions, layer_representations, load_model
from protsae.sae.formats import load_sae
from protsae.sae.model import TopKSAE

#: (id, sequence) records -> each sequence's top-k SAE activations, in any order:
#: (id, values [length, k] float, indices [length, k] int).
Encoder = Callable[[Sequence[tuple[str, str]]], Iterator[tuple[str, np.ndarray, np.ndarray]]]


def load_sae_for_model(
    sae_path: str | os.PathLike[str],
    model: torch.nn.Module,
    model_path: str | os.PathLike[str],
    layer: int,
    device: str | torch.device,
) -> TopKSAE:
    """The SAE at ``sae_path``, checked against the ESM-2 it will encode: its layer and d_model."""
    sae = load_sae(sae_path, device=device)
    if sae.cfg.layer >= 0 and sae.cfg.layer != layer:
        raise ValueError(f"{sae_path}: the SAE was trained on layer {sae.cfg.layer}, not {layer}")
    if sae.cfg.d_model != model.embed_dim:
        raise ValueError(
            f"{sae_path}: SAE d_model {sae.cfg.d_model} != {model_path} embed_dim {model.embed_dim}"
        )
    return sae


def esm_sae_encoder(
    model: torch.nn.Module,
    alphabet: object,
    sae: TopKSAE,
    layer: int,
    max_tokens_per_batch: int,
    device: str | torch.device,
) -> Encoder:
    """An :data:`Encoder`: ESM-2 up to ``layer`` (early exit), then the SAE's top-k encoder.

    Activations follow the SAE's ``activation_convention`` (:mod:`protsae.conventions`); only
    residues are encoded and reported, whatever positions the SAE was trained on.
    Residues of consecutive sequences are concatenated up to ``max_tokens_per_batch`` rows
    per SAE call, so the SAE runs on batches, not on one sequence at a time.
    """

    def encode_rows(
        pending: list[tuple[str, torch.Tensor]],
    ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        x = torch.cat([rep for _, rep in pending]).to(device, non_blocking=True)
        with torch.inference_mode():
            top = sae.encode(x)
        values = top.values.float().cpu().numpy()
        indices = top.indices.to(torch.int32).cpu().numpy()
        start = 0
        for seq_id, rep in pending:
            end = start + len(rep)
            yield seq_id, values[start:end], indices[start:end]
            start = end

    def encode(records: Sequence[tuple[str, str]]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        pending: list[tuple[str, torch.Tensor]] = []
        n_rows = 0
        for seq_id, rep in layer_representations(
            model,
            alphabet,
            records,
            layer,
            ForwardOptions(max_tokens_per_batch, device),
            convention=sae.cfg.activation_convention,
        ):
            pending.append((seq_id, rep))
            n_rows += len(rep)
            if n_rows >= max_tokens_per_batch:
                yield from encode_rows(pending)
                pending, n_rows = [], 0
        if pending:
            yield from encode_rows(pending)

    return encode


@dataclass(frozen=True)
class EsmSae:
    """ESM-2 (``model``, ``alphabet``) and an SAE trained on its ``layer``, on ``device``."""

    model: torch.nn.Module
    alphabet: object
    sae: TopKSAE
    layer: int
    device: torch.device

    @classmethod
    def load(
        cls,
        model_path: str | os.PathLike[str],
        sae_path: str | os.PathLike[str],
        layer: int,
        device: str | torch.device = "auto",
    ) -> EsmSae:
        """Load both on ``device`` ("auto": CUDA when there is one) and check they fit."""
        device = resolve_device(device)
        model, alphabet = load_model(model_path, device)
        sae = load_sae_for_model(sae_path, model, model_path, layer, device)
        return cls(model, alphabet, sae, layer, device)

    def encoder(self, max_tokens_per_batch: int) -> Encoder:
        """ESM-2 to the SAE's layer then its top-k encoder (:func:`esm_sae_encoder`)."""
        return esm_sae_encoder(
            self.model, self.alphabet, self.sae, self.layer, max_tokens_per_batch, self.device
        )


@dataclass(frozen=True)
class EsmSaeFiles:
    """Where an :class:`EsmSae` comes from: the ESM-2 checkpoint, the SAE and its layer."""

    model_path: str | os.PathLike[str]
    sae_path: str | os.PathLike[str]
    layer: int

    def load(self, device: str | torch.device | None = "auto") -> EsmSae:
        """:meth:`EsmSae.load` of these files on ``device`` (None or "auto": CUDA when there is one)."""
        return EsmSae.load(self.model_path, self.sae_path, self.layer, device or "auto")
