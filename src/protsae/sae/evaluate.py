"""Evaluating an SAE on held-out sequences: reconstruction quality and ESM loss recovered.

Reconstruction statistics (FVE, MSE, L0, dead fraction) are taken over every residue of the
held-out records, with activations from ``protsae.esm.layer_representations``. The masked-LM
cross-entropy compares three runs of ESM on identical masked positions: clean, with layer L's
output replaced by the SAE reconstruction, and with it zero-ablated.

Decision: the SAE reconstruction (like the zero ablation) replaces layer L's output at every
position, BOS, EOS and padding included. Padding never influences real positions, but BOS and
EOS do, and the SAE never saw them in training (they are not stored in shards), so this is a
slightly pessimistic measure compared with editing residues only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

import torch

from protsae import esm as esm_lib
from protsae.device import resolve_device
from protsae.progress import Progress, get_logger
from protsae.sae.model import TopKSAE

EVAL_KEYS = (
    "fve",
    "mse",
    "l0",
    "dead_fraction",
    "ce_clean",
    "ce_sae",
    "ce_zero",
    "loss_recovered",
    "n_tokens",
)


class ReconstructionStats:
    """Accumulates SSE, variance, L0 and latent firing over batches, in float64."""

    def __init__(self, d_model: int, width: int, device: torch.device | str = "cpu") -> None:
        self.n_tokens = 0
        self.sse = 0.0
        self.l0_sum = 0.0
        self.sum_x = torch.zeros(d_model, dtype=torch.float64, device=device)
        self.sum_sq = 0.0
        self.fired = torch.zeros(width, dtype=torch.bool, device=device)
        self.d_model = d_model

    @torch.no_grad()
    def add(self, sae: TopKSAE, x: torch.Tensor) -> None:
        top = sae.encode(x)
        x_hat = sae.decode(top.values, top.indices, x)
        x64 = x.double()
        self.n_tokens += x.shape[0]
        self.sse += float((x_hat.double() - x64).pow(2).sum())
        self.sum_x += x64.sum(dim=0)
        self.sum_sq += float(x64.pow(2).sum())
        active = top.values > 0
        self.l0_sum += float(active.sum())
        self.fired[top.indices[active]] = True

    def result(self) -> dict[str, float | int]:
        n = self.n_tokens
        if n == 0:
            raise ValueError("no tokens to evaluate the SAE on")
        total_variance = self.sum_sq - float(self.sum_x.pow(2).sum()) / n
        return {
            "fve": 1.0 - self.sse / total_variance if total_variance > 0 else math.nan,
            "mse": self.sse / (n * self.d_model),
            "l0": self.l0_sum / n,
            "dead_fraction": 1.0 - float(self.fired.float().mean()),
            "n_tokens": n,
        }


def sae_edit(sae: TopKSAE) -> Callable[[torch.Tensor], torch.Tensor]:
    """An ESM layer edit that replaces every position of ``h`` [B, T, d] by its reconstruction.

    Runs in float32 with autocast off, so the SAE is the one evaluated, not its bf16 rounding.
    """

    def edit(h: torch.Tensor) -> torch.Tensor:
        flat = h.reshape(-1, h.shape[-1]).float()
        with torch.autocast(device_type=h.device.type, enabled=False):
            top = sae.encode(flat)
            x_hat = sae.decode(top.values, top.indices, flat)
        return x_hat.reshape(h.shape).to(h.dtype)

    return edit


def zero_edit(h: torch.Tensor) -> torch.Tensor:
    """Zero ablation of the layer's output."""
    return torch.zeros_like(h)


def loss_recovered(ce_clean: float, ce_sae: float, ce_zero: float) -> float:
    """(ce_zero - ce_sae) / (ce_zero - ce_clean): 1 = as good as clean, 0 = as bad as zeroing."""
    gap = ce_zero - ce_clean
    return (ce_zero - ce_sae) / gap if gap != 0 else math.nan


@torch.no_grad()
def evaluate_sae(
    sae: TopKSAE,
    esm_checkpoint: str | os.PathLike[str],
    records: Sequence[tuple[str, str]],
    layer: int,
    max_tokens_per_batch: int = 4096,
    device: str | torch.device = "auto",
    mask_fraction: float = 0.15,
    seed: int = 0,
) -> dict[str, float | int]:
    """FVE, MSE, L0, dead fraction and masked-LM loss recovered on held-out ``records``."""
    logger = get_logger()
    if not records:
        raise ValueError("no held-out records to evaluate the SAE on")
    device = resolve_device(device)
    model, alphabet = esm_lib.load_model(esm_checkpoint, device)
    sae = sae.to(device).eval()
    stats = ReconstructionStats(sae.cfg.d_model, sae.cfg.width, device)
    progress = Progress("evaluate SAE", len(records), "sequences", logger)
    pending: list[torch.Tensor] = []
    pending_tokens = 0
    for _, h in esm_lib.layer_representations(
        model, alphabet, records, layer, max_tokens_per_batch, device
    ):
        pending.append(h)
        pending_tokens += h.shape[0]
        if pending_tokens >= max_tokens_per_batch:
            stats.add(sae, torch.cat(pending).to(device))
            progress.update(len(pending))
            pending, pending_tokens = [], 0
    if pending:
        stats.add(sae, torch.cat(pending).to(device))
        progress.update(len(pending))
    result = stats.result()
    progress.finish(fve=result["fve"])

    ce = {}
    for name, edit in (("clean", None), ("sae", sae_edit(sae)), ("zero", zero_edit)):
        ce[name], n_scored = esm_lib.masked_lm_cross_entropy(
            model,
            alphabet,
            records,
            layer,
            edit,
            mask_fraction=mask_fraction,
            seed=seed,
            max_tokens_per_batch=max_tokens_per_batch,
            device=device,
        )
        logger.info(
            "masked-LM cross-entropy, %s: %.4f nats over %d masked residues",
            name,
            ce[name],
            n_scored,
        )
    result |= {
        "ce_clean": ce["clean"],
        "ce_sae": ce["sae"],
        "ce_zero": ce["zero"],
        "loss_recovered": loss_recovered(ce["clean"], ce["sae"], ce["zero"]),
    }
    return {key: result[key] for key in EVAL_KEYS}
