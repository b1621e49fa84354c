"""The steering splice: ESM-2 to the SAE's layer, encode, clamp one latent, decode, add the SAE's
error term back, finish the forward pass, and read the argmax residue at every position.

With ``e = x - decode(encode(x))`` added back, the layer's vector changes only by the clamped
latent's change times its decoder row (times the token's std for a ``token_standardize`` SAE),
so the model sees exactly the latent's intervention and nothing of the SAE's reconstruction
error. Only residue positions are edited; BOS, EOS and padding pass through untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from protsae.esm import MAX_RESIDUES, RESIDUE_LETTERS, forward_with_layer_edit, token_batches
from protsae.esm.tokens import ResidueBatchConverter
from protsae.sae import TopKSAE
from protsae.sae.at_layer import EsmSae

Edit = Callable[[torch.Tensor], torch.Tensor]

#: The residues the steered prediction is chosen from.
STANDARD_RESIDUES = "ACDEFGHIKLMNPQRSTVWY"


@torch.no_grad()
def clamp_latent(
    sae: TopKSAE,
    x: torch.Tensor,
    latent: int | None,
    value: float | torch.Tensor = 0.0,
    only_where_active: bool = False,
) -> torch.Tensor:
    """``x`` [N, d_model] with ``latent`` set to ``value`` in its SAE code, error term kept.

    ``latent`` None is the plain splice (encode, decode, add the error back): ``x`` up to
    float rounding. ``value`` is one number or one per token [N]. ``only_where_active`` leaves tokens where the latent is inactive as they are.
    """
    top = sae.encode(x)
    error = x - sae.decode(top.values, top.indices, x)
    if latent is None:
        return sae.decode(top.values, top.indices, x) + error
    if not 0 <= latent < sae.cfg.width:
        raise ValueError(f"latent {latent} out of range for an SAE of width {sae.cfg.width}")
    present = top.indices == latent
    current = (top.values * present).sum(dim=1)
    target = torch.as_tensor(value, dtype=current.dtype, device=current.device)
    target = target.expand_as(current)
    if only_where_active:
        target = torch.where(current > 0, target, current)
    values = torch.cat([top.values.masked_fill(present, 0.0), target[:, None]], dim=1)
    indices = torch.cat([top.indices, torch.full_like(top.indices[:, :1], latent)], dim=1)
    return sae.decode(values, indices, x) + error


def residue_mask(tokens: torch.Tensor, alphabet: object) -> torch.Tensor:
    """True at the residue positions of a token batch (not BOS, EOS or padding)."""
    special = torch.tensor(
        [alphabet.cls_idx, alphabet.eos_idx, alphabet.padding_idx], device=tokens.device
    )
    return ~torch.isin(tokens, special)


def splice_edit(
    sae: TopKSAE,
    mask: torch.Tensor,
    latent: int | None,
    value: float = 0.0,
    only_where_active: bool = False,
) -> Edit:
    """An edit for :func:`protsae.esm.forward_with_layer_edit` applying :func:`clamp_latent` at
    the positions of ``mask`` [B, T]."""

    def edit(h: torch.Tensor) -> torch.Tensor:
        x = h[mask].float()
        with torch.autocast(h.device.type, enabled=False):
            spliced = clamp_latent(sae, x, latent, value, only_where_active)
        out = h.clone()
        out[mask] = spliced.to(h.dtype)
        return out

    return edit


def spliced_logits(
    model: torch.nn.Module,
    alphabet: object,
    sae: TopKSAE,
    tokens: torch.Tensor,
    layer: int,
    latent: int | None,
    value: float = 0.0,
    only_where_active: bool = False,
) -> torch.Tensor:
    """Logits [B, T, vocab] of ``tokens`` with the splice at ``layer`` (in the SAE's convention)."""
    edit = splice_edit(sae, residue_mask(tokens, alphabet), latent, value, only_where_active)
    with torch.inference_mode():
        return forward_with_layer_edit(
            model, tokens, layer, edit, convention=sae.cfg.activation_convention
        )


def plain_logits(
    model: torch.nn.Module, sae: TopKSAE, tokens: torch.Tensor, layer: int
) -> torch.Tensor:
    """The unmodified forward's logits, in the SAE's activation convention."""
    with torch.inference_mode():
        return forward_with_layer_edit(
            model, tokens, layer, None, convention=sae.cfg.activation_convention
        )


def steered_sequences(
    esm_sae: EsmSae,
    records: Sequence[tuple[str, str]],
    latent: int,
    values: Sequence[float | None],
    only_where_active: bool = False,
    max_tokens_per_batch: int = 4096,
) -> dict[str, list[str]]:
    """``{id: [argmax sequence per value]}``: the residue (of the 20 standard) ESM-2 predicts at
    each position with ``latent`` of the SAE at ``esm_sae.layer`` clamped to each value; a value
    None means no edit at all. Runs wherever ``esm_sae.model`` is."""
    model, alphabet, sae, layer = esm_sae.model, esm_sae.alphabet, esm_sae.sae, esm_sae.layer
    for seq_id, seq in records:
        if not 0 < len(seq) <= MAX_RESIDUES or set(seq) - RESIDUE_LETTERS:
            raise ValueError(
                f"sequence {seq_id!r}: ESM-2 takes 1..{MAX_RESIDUES} residues of its alphabet"
            )
    device = next(model.parameters()).device
    standard = torch.tensor([alphabet.get_idx(r) for r in STANDARD_RESIDUES], device=device)
    convert = ResidueBatchConverter(alphabet)
    out: dict[str, list[str]] = {seq_id: [] for seq_id, _ in records}
    for batch in token_batches([len(s) for _, s in records], max_tokens_per_batch):
        ids, seqs, tokens = convert([records[i] for i in batch])
        tokens = tokens.to(device)
        for value in values:
            if value is None:
                logits = plain_logits(model, sae, tokens, layer)
            else:
                logits = spliced_logits(
                    model, alphabet, sae, tokens, layer, latent, value, only_where_active
                )
            best = logits[..., standard].argmax(-1).cpu()
            for row, (seq_id, seq) in enumerate(zip(ids, seqs, strict=True)):
                first = int(alphabet.prepend_bos)
                picks = best[row, first : first + len(seq)].tolist()
                out[seq_id].append("".join(STANDARD_RESIDUES[i] for i in picks))
    return out
