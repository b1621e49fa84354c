"""What a training run is told: :class:`TrainConfig` (mirrors the config's ``sae.training``) and
the learning-rate schedule it implies (docs/method.md, "Schedule")."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from protsae.config import schema_defaults

#: The config's ``sae.training`` defaults, read from the schema: the one place they are written.
_DEFAULTS = schema_defaults("sae", "training")


def default_lr(width: int) -> float:
    """2e-4 at width 16384, scaled by 1/sqrt(width / 16384) (Gao et al. 2024)."""
    return 2e-4 / math.sqrt(width / 16384)


def lr_at(
    step: int, total_steps: int, base_lr: float, warmup_steps: int, decay_fraction: float
) -> float:
    """Learning rate of (0-based) ``step``: linear warm-up, constant, linear decay to zero."""
    factor = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    decay_steps = decay_fraction * total_steps
    if decay_steps > 0:
        factor = min(factor, (total_steps - step) / decay_steps)
    return base_lr * factor


@dataclass(frozen=True)
class TrainConfig:
    """How to train one SAE: the config's ``sae.training`` plus the SAE's own ``width`` and ``k``.

    The defaults of the ``sae.training`` keys come from the config schema; the other fields are
    not config keys and have their defaults here.

    Every field changes the trained weights except ``checkpoint_every``; those that do make up
    the checkpoint fingerprint, so a checkpoint is resumed only by a run with the same values.
    """

    width: int
    """Number of latents (dictionary size)."""
    k: int
    """Latents kept per token by the top-k activation."""
    total_tokens: int | None = _DEFAULTS["total_tokens"]
    """Training budget in tokens; steps = ceil(total_tokens / batch_tokens). None = ``epochs``
    passes over the cached training tokens (steps = their count x epochs // batch_tokens)."""
    epochs: float = _DEFAULTS["epochs"]
    """Most passes over the cached training tokens (method.md: one pass means one pass); a
    ``total_tokens`` budget above ``epochs`` x the cached tokens is refused."""
    lr: float | None = _DEFAULTS["lr"]
    """Peak Adam learning rate; None = 2e-4 / sqrt(width / 16384)."""
    batch_tokens: int = _DEFAULTS["batch_tokens"]
    """Tokens (residue vectors) per optimisation step."""
    auxk: int | None = _DEFAULTS["auxk"]
    """Dead latents revived per token by the AuxK loss; None = d_model / 2."""
    dead_tokens: int = _DEFAULTS["dead_tokens"]
    """A latent that has not fired for this many tokens counts as dead (feeds AuxK)."""
    shuffle_buffer_tokens: int = _DEFAULTS["shuffle_buffer_tokens"]
    """Tokens held in the shuffle buffer that mixes row groups and shards."""
    warmup_steps: int | None = None
    """Linear warm-up steps; None = 5% of the steps, at most 1000."""
    decay_fraction: float = 0.2
    """Fraction of the steps, at the end, over which the learning rate decays linearly to zero."""
    normalize: str = "none"
    """Input normalisation stored with the SAE (``none`` or ``token_standardize``)."""
    seed: int = _DEFAULTS["seed"]
    """Seeds the initialisation and every shuffle of the stream."""
    checkpoint_every: int = _DEFAULTS["checkpoint_every"]
    """Steps between checkpoints (when the run has a checkpoint directory)."""
    log_every: int | None = None
    """Steps per ``train_log`` row; None = about 200 rows per run."""
    median_sample_tokens: int = 1 << 15
    """Tokens whose geometric median initialises ``b_dec``."""
    bf16: bool = _DEFAULTS["bf16"]
    """bfloat16 autocast for the forward pass on CUDA (ignored on CPU)."""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build from config-like values (a rule's params, ``sae.training`` plus width and k).

        Each value is coerced to its field's type (None stays None where the field allows it);
        keys that are not fields are ignored.
        """
        kwargs = {}
        for spec in fields(cls):
            if spec.name not in values:
                continue
            value = values[spec.name]
            kind = str(spec.type)
            if value is None and "None" in kind:
                kwargs[spec.name] = None
            else:
                convert = {"int": int, "float": float, "bool": bool, "str": str}[
                    kind.split(" |")[0]
                ]
                kwargs[spec.name] = convert(value)
        return cls(**kwargs)


@dataclass(frozen=True)
class Schedule:
    """The resolved step counts and learning rate of a run."""

    total_steps: int
    base_lr: float
    warmup_steps: int
    log_every: int
    epochs: float
    """Passes over the training tokens the steps make (above 1: tokens are seen again)."""

    @classmethod
    def of(cls, config: TrainConfig, tokens_per_epoch: int) -> Schedule:
        """The schedule of ``config`` on shards holding ``tokens_per_epoch`` training tokens."""
        if tokens_per_epoch < 1:
            raise ValueError(f"no training tokens (tokens_per_epoch={tokens_per_epoch})")
        if config.epochs <= 0:
            raise ValueError(f"sae.training.epochs must be > 0, got {config.epochs}")
        allowed = int(tokens_per_epoch * config.epochs)
        if config.total_tokens is None:  # epochs passes, every batch full
            total_steps = max(1, allowed // config.batch_tokens)
        else:
            total_steps = max(1, math.ceil(config.total_tokens / config.batch_tokens))
            if total_steps * config.batch_tokens > max(allowed, config.batch_tokens):
                needed = total_steps * config.batch_tokens / tokens_per_epoch
                raise ValueError(
                    f"sae.training.total_tokens {config.total_tokens:,} (in batches of "
                    f"{config.batch_tokens}) is {needed:.2f} passes over the {tokens_per_epoch:,} "
                    f"cached training tokens, more than sae.training.epochs = {config.epochs:g}; "
                    f"extract more tokens, lower total_tokens, or set epochs >= {math.ceil(needed)}"
                )
        return cls(
            epochs=total_steps * config.batch_tokens / tokens_per_epoch,
            total_steps=total_steps,
            base_lr=config.lr if config.lr is not None else default_lr(config.width),
            warmup_steps=(
                min(1000, total_steps // 20) if config.warmup_steps is None else config.warmup_steps
            ),
            log_every=(
                max(1, math.ceil(total_steps / 200))
                if config.log_every is None
                else config.log_every
            ),
        )

    def lr(self, step: int, decay_fraction: float) -> float:
        return lr_at(step, self.total_steps, self.base_lr, self.warmup_steps, decay_fraction)


def log_budget(
    config: TrainConfig, schedule: Schedule, tokens_per_epoch: int, logger: logging.Logger
) -> None:
    """Say how many passes over the data the budget makes; warn when tokens will repeat."""
    budget = (
        f"{config.epochs:g} pass(es)"
        if config.total_tokens is None
        else f"{config.total_tokens:,} tokens"
    )
    message = "training budget %s: %d steps x %d tokens = %.2f epoch(s) over %s cached tokens"
    args = (
        budget,
        schedule.total_steps,
        config.batch_tokens,
        schedule.epochs,
        f"{tokens_per_epoch:,}",
    )
    if schedule.epochs > 1:
        logger.warning(message + "; tokens are seen more than once", *args)
    else:
        logger.info(message, *args)
