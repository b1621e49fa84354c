"""Evaluating an SAE on held-out sequences: reconstruction quality and ESM loss recovered.

Everything is computed in the SAE's activation convention (``sae.cfg.activation_convention``,
:mod:`protsae.conventions`) at the positions it was trained on (residues; plus BOS/EOS for
``interprot``). Loss recovered scores masked residues with layer L replaced only at unmasked
trained positions; the ``*_unmasked`` keys are InterProt's variant (nothing masked). Which
positions are replaced and why, and the last-layer case, are docs/method.md's "Loss recovered"
decision. :data:`EVAL_METRICS` documents every ``eval.json`` key (docs/design.md lists them).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch

from protsae import esm as esm_lib
from protsae.conventions import trains_on_bos_eos
from protsae.progress import Progress, get_logger
from protsae.sae.model import SAEConfig, TopKSAE

#: Every key of ``eval.json`` with what it means.
EVAL_METRICS: dict[str, str] = {
    "fve": "fraction of variance explained at the SAE's trained positions of held-out sequences",
    "mse": "mean squared reconstruction error per dimension at those positions",
    "l0": "mean number of active latents per position",
    "dead_fraction_eval": "fraction of latents never active on the evaluation positions",
    "dead_fraction_train": (
        "fraction of latents with no activation in the last sae.training.dead_tokens training "
        "tokens (training counters; null for imported SAEs and runs shorter than dead_tokens)"
    ),
    "ce_clean": "masked-LM cross-entropy (nats) over the masked residues, clean",
    "ce_sae": "the same with layer L replaced by the reconstruction at unmasked trained positions",
    "ce_zero": "the same with layer L zeroed at those positions",
    "loss_recovered": (
        "(ce_zero - ce_sae) / (ce_zero - ce_clean): 1 as good as clean, 0 as zeroing; null when "
        "ce_zero = ce_clean (the last layer: no spliced position feeds a masked one)"
    ),
    "delta_ce": "ce_sae - ce_clean",
    "mask_draws": (
        "independent seeded mask draws the masked keys (ce_clean, ce_sae, ce_zero, "
        "loss_recovered, delta_ce) are the mean of"
    ),
    "ce_clean_std": "standard deviation of ce_clean over the mask draws (ddof 1; null for 1 draw)",
    "ce_sae_std": "the same for ce_sae",
    "ce_zero_std": "the same for ce_zero",
    "loss_recovered_std": "the same for loss recovered (per-draw values; null where undefined)",
    "delta_ce_std": "the same for delta_ce",
    "ce_clean_unmasked": "InterProt's variant: cross-entropy over every residue, nothing masked",
    "ce_sae_unmasked": "the same with the reconstruction at every trained position",
    "ce_zero_unmasked": "the same with layer L zeroed at every trained position",
    "loss_recovered_unmasked": "loss recovered from the three unmasked cross-entropies",
    "delta_ce_unmasked": "ce_sae_unmasked - ce_clean_unmasked (InterProt's ΔCE)",
    "n_tokens": "positions the reconstruction statistics are over",
    "n_masked": "masked residues scored by ce_clean, ce_sae, ce_zero, summed over the mask draws",
    "activation_convention": "the ESM-2 activation convention the SAE was evaluated in",
}
EVAL_KEYS = tuple(EVAL_METRICS)
#: The masked-LM keys averaged over mask draws; each has a ``<key>_std`` beside it.
MASKED_KEYS = ("ce_clean", "ce_sae", "ce_zero", "loss_recovered", "delta_ce")


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
            "dead_fraction_eval": 1.0 - float(self.fired.float().mean()),
            "n_tokens": n,
        }


def sae_edit(sae: TopKSAE) -> Callable[[torch.Tensor], torch.Tensor]:
    """An ESM layer edit that replaces every position of ``h`` [B, T, d] by its reconstruction
    (``masked_lm_cross_entropy``'s ``edit_positions`` restricts it to trained positions).

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


def dead_fraction_train(cfg: SAEConfig) -> float | None:
    """The training run's dead fraction as ``sae.json`` records it; None when it has none."""
    value = cfg.training.get("dead_fraction_train")
    return None if value is None else float(value)


def _reconstruction(
    sae: TopKSAE,
    model: torch.nn.Module,
    alphabet: Any,
    records: Sequence[tuple[str, str]],
    layer: int,
    max_tokens_per_batch: int,
    device: torch.device,
) -> dict[str, Any]:
    """Reconstruction statistics over the SAE's trained positions, batched by token budget."""
    convention = sae.cfg.activation_convention
    stats = ReconstructionStats(sae.cfg.d_model, sae.cfg.width, device)
    progress = Progress("evaluate SAE", len(records), "sequences", get_logger())
    pending: list[torch.Tensor] = []
    pending_tokens = 0
    for _, h in esm_lib.layer_representations(
        model,
        alphabet,
        records,
        layer,
        esm_lib.ForwardOptions(max_tokens_per_batch, device),
        convention=convention,
        bos_eos=trains_on_bos_eos(convention),
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
    return result


def _loss_recovered(
    sae: TopKSAE,
    model: torch.nn.Module,
    alphabet: Any,
    records: Sequence[tuple[str, str]],
    layer: int,
    mask_fraction: float,
    seed: int,
    max_tokens_per_batch: int,
    device: torch.device,
) -> dict[str, float]:
    """Clean, SAE and zero cross-entropies with edits at unmasked trained positions only."""
    convention = sae.cfg.activation_convention
    positions = esm_lib.sae_positions(alphabet, convention)
    ce: dict[str, float] = {}
    n_scored = 0
    for name, edit in (("clean", None), ("sae", sae_edit(sae)), ("zero", zero_edit)):
        ce[name], n_scored = esm_lib.masked_lm_cross_entropy(
            model,
            alphabet,
            records,
            layer,
            None if edit is None else esm_lib.LayerEdit(edit, positions),
            esm_lib.Masking(mask_fraction, seed),
            esm_lib.ForwardOptions(max_tokens_per_batch, device),
            convention=convention,
        )
        get_logger().info(
            "%s cross-entropy, %s: %.4f nats over %d residues",
            f"masked-LM ({mask_fraction:.0%} masked)" if mask_fraction else "unmasked",
            name,
            ce[name],
            n_scored,
        )
    return {
        "ce_clean": ce["clean"],
        "ce_sae": ce["sae"],
        "ce_zero": ce["zero"],
        "loss_recovered": loss_recovered(ce["clean"], ce["sae"], ce["zero"]),
        "delta_ce": ce["sae"] - ce["clean"],
        "n_scored": n_scored,
    }


@torch.no_grad()
def evaluate_sae(
    sae: TopKSAE,
    esm_checkpoint: str | os.PathLike[str],
    records: Sequence[tuple[str, str]],
    layer: int,
    forward: esm_lib.ForwardOptions | None = None,
    mask_fraction: float = 0.15,
    seed: int = 0,
    mask_draws: int = 5,
) -> dict[str, Any]:
    """Every :data:`EVAL_METRICS` key on held-out ``records``, in the SAE's convention, with
    ESM-2 run as ``forward`` says (its tokens per batch and device; default: 4096, "auto").

    The masked keys are means over ``mask_draws`` mask draws (seeds ``seed``, ``seed + 1``, ...),
    each with its standard deviation: one draw of a few hundred masked residues moves loss
    recovered by more than the differences between SAEs (method.md, turn 3).
    """
    if not records:
        raise ValueError("no held-out records to evaluate the SAE on")
    if mask_draws < 1:
        raise ValueError(f"mask_draws must be >= 1, got {mask_draws}")
    if not 0 < mask_fraction <= 1:
        raise ValueError(f"mask_fraction must be in (0, 1], got {mask_fraction}")
    forward = forward or esm_lib.ForwardOptions()
    device = esm_lib.resolve_device(forward.device or "auto")
    max_tokens_per_batch = forward.max_tokens_per_batch
    model, alphabet = esm_lib.load_model(esm_checkpoint, device)
    if layer == model.num_layers:
        get_logger().warning(
            "layer %d is the model's last: the masked loss recovered is undefined there (no "
            "spliced position feeds a masked one); see loss_recovered_unmasked",
            layer,
        )
    sae = sae.to(device).eval()
    args = (sae, model, alphabet, records, layer)
    result: dict[str, Any] = _reconstruction(*args, max_tokens_per_batch, device)
    draws = [
        _loss_recovered(*args, mask_fraction, seed + draw, max_tokens_per_batch, device)
        for draw in range(mask_draws)
    ]
    unmasked = _loss_recovered(*args, 0.0, seed, max_tokens_per_batch, device)
    result |= mean_and_std(draws, MASKED_KEYS)
    result |= {f"{key}_unmasked": value for key, value in unmasked.items() if key != "n_scored"}
    result |= {
        "dead_fraction_train": dead_fraction_train(sae.cfg),
        "mask_draws": mask_draws,
        "n_masked": sum(int(draw["n_scored"]) for draw in draws),
        "activation_convention": sae.cfg.activation_convention,
    }
    return {key: _finite_or_none(result[key]) for key in EVAL_KEYS}


def mean_and_std(draws: Sequence[dict[str, float]], keys: Sequence[str]) -> dict[str, float]:
    """``key`` (mean over draws) and ``key_std`` (sample standard deviation, NaN for one draw)
    of each of ``keys``; a draw where a value is undefined (NaN) makes both NaN."""
    out: dict[str, float] = {}
    for key in keys:
        values = [float(draw[key]) for draw in draws]
        if any(math.isnan(v) for v in values):
            out[key], out[f"{key}_std"] = math.nan, math.nan
            continue
        mean = math.fsum(values) / len(values)
        var = (
            math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)
            if len(values) > 1
            else math.nan
        )
        out[key], out[f"{key}_std"] = mean, math.sqrt(var) if not math.isnan(var) else math.nan
    return out


def _finite_or_none(value: Any) -> Any:
    """NaN (an undefined ratio) becomes None, so ``eval.json`` is strict JSON (null)."""
    return None if isinstance(value, float) and math.isnan(value) else value
