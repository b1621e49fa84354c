"""ESM-2's masked-LM loss with a layer edit: the "loss recovered" half of SAE evaluation."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import esm
import numpy as np
import torch
import torch.nn.functional as F
from esm.model.esm2 import ESM2

from protsae.conventions import FAIR_ESM, check_convention
from protsae.esm.forward import (
    Edit,
    ForwardOptions,
    Record,
    check_layer,
    check_records,
    forward_with_layer_edit,
    model_device,
    token_batches,
)
from protsae.esm.tokens import ResidueBatchConverter
from protsae.ids import id_rng


def mask_positions(seq_id: str, length: int, mask_fraction: float, seed: int) -> np.ndarray:
    """The residue positions masked for the masked-LM loss: at least one, seeded per id."""
    if not 0 < mask_fraction <= 1:
        raise ValueError(f"mask_fraction must be in (0, 1], got {mask_fraction}")
    count = max(1, round(mask_fraction * length))
    # A distinct stream from sample_positions' so the two selections are unrelated.
    chosen = id_rng(seq_id, seed + 0x5EED).choice(length, size=count, replace=False)
    return np.sort(chosen).astype(np.int64)


@dataclass(frozen=True)
class LayerEdit:
    """An edit of a layer's output used only where ``positions`` says: it maps a batch's
    (masked) tokens [B, T] to the bool [B, T] positions where ``edit``'s output replaces the
    clean one (None: everywhere)."""

    edit: Edit
    positions: Callable[[torch.Tensor], torch.Tensor] | None = None


@dataclass(frozen=True)
class Masking:
    """Which residues the masked-LM loss masks and scores: ``fraction`` of each sequence's
    residues drawn from (id, ``seed``); ``fraction=0`` masks nothing and scores every residue."""

    fraction: float = 0.15
    seed: int = 0


def masked_lm_cross_entropy(
    model: ESM2,
    alphabet: esm.data.Alphabet,
    records: Sequence[Record],
    layer: int,
    edit: Edit | LayerEdit | None,
    masking: Masking | None = None,
    forward: ForwardOptions | None = None,
    *,
    convention: str = FAIR_ESM,
) -> tuple[float, int]:
    """Mean masked-LM cross-entropy (nats) over masked residues, and how many were scored.

    The masked positions depend on (id, seed) only, so clean, SAE-reconstructed and
    zero-ablated runs score exactly the same positions and their losses compare.
    ``masking`` (default :class:`Masking`) with ``fraction=0`` masks nothing and scores every
    residue (InterProt's variant). A :class:`LayerEdit` applies its edit only at its positions;
    elsewhere the layer keeps its clean output. ESM-2 runs as ``forward`` says (default: 4096
    tokens per batch, where the model is). ``convention`` is the forward's
    (:mod:`protsae.conventions`).
    """
    masking = masking or Masking()
    forward = forward or ForwardOptions()
    mask_fraction, seed = masking.fraction, masking.seed
    edit_positions = None
    if isinstance(edit, LayerEdit):
        edit, edit_positions = edit.edit, edit.positions
    check_layer(model, layer)
    check_convention(convention)
    check_records(records)
    if not 0 <= mask_fraction <= 1:
        raise ValueError(f"mask_fraction must be in [0, 1], got {mask_fraction}")
    device = model_device(model, forward.device)
    convert = ResidueBatchConverter(alphabet)
    total = 0.0
    count = 0
    for batch in token_batches([len(seq) for _, seq in records], forward.max_tokens_per_batch):
        _, _, tokens = convert([records[i] for i in batch])
        rows, cols = [], []
        for row, i in enumerate(batch):
            seq_id, sequence = records[i]
            if mask_fraction == 0:
                positions = np.arange(len(sequence), dtype=np.int64)
            else:
                positions = mask_positions(seq_id, len(sequence), mask_fraction, seed)
            rows.append(np.full(len(positions), row))
            cols.append(positions + int(alphabet.prepend_bos))
        row_index = torch.from_numpy(np.concatenate(rows))
        col_index = torch.from_numpy(np.concatenate(cols))
        targets = tokens[row_index, col_index].to(device)
        if mask_fraction > 0:
            tokens[row_index, col_index] = alphabet.mask_idx
        tokens = tokens.to(device)
        with torch.inference_mode():
            batch_edit = edit
            if edit is not None and edit_positions is not None:
                batch_edit = _restricted(edit, edit_positions(tokens))
            logits = forward_with_layer_edit(model, tokens, layer, batch_edit, convention)
            scored = logits[row_index.to(device), col_index.to(device)]
            loss = F.cross_entropy(scored, targets, reduction="sum")
        total += float(loss)
        count += len(targets)
    return (total / count if count else math.nan), count


def _restricted(edit: Edit, where: torch.Tensor) -> Edit:
    """``edit`` applied only at the bool [B, T] positions ``where``; clean output elsewhere."""

    def restricted(h: torch.Tensor) -> torch.Tensor:
        return torch.where(where.unsqueeze(-1), edit(h), h)

    return restricted
