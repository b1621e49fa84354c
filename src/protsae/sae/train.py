"""Training a TopK SAE on activation shards: seeded, checkpointed, resumable.

Decisions (method.md leaves them open):
- loss = FVU (squared error / the batch's total variance) + 1/32 * AuxK loss. FVU is the MSE
  rescaled by a per-batch constant, so it minimises the same error, but it puts the
  reconstruction and AuxK terms on the same scale whatever the activations' magnitude
  (as in Gao et al. 2024's normalized MSE).
- learning rate: ``lr`` (default 2e-4 / sqrt(width / 16384)); linear warm-up over
  ``warmup_steps`` (default 5% of the steps, at most 1000), constant, then linear decay to
  zero over the last ``decay_fraction`` (20%) of the steps.
- steps = ceil(total_tokens / batch_tokens), every batch full.
- ``b_dec`` starts at the geometric median of the first ``median_sample_tokens`` tokens.
- nothing after initialisation draws random numbers: the stream's shuffles derive from
  (seed, epoch, position), so a checkpoint needs no RNG state to resume exactly.
- the checkpoint file is deleted once the final outputs are written: the outputs are the
  durable result, and a stale checkpoint must never be resumed by a later, different run (a
  checkpoint whose settings differ from the current run's is ignored with a warning anyway).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from protsae.device import resolve_device
from protsae.io import atomic_path, write_parquet
from protsae.progress import Progress, get_logger
from protsae.sae.data import ActivationStream, Prefetcher
from protsae.sae.formats import save_sae
from protsae.sae.model import AUXK_COEFFICIENT, SAEConfig, SAEOutput, TopKSAE

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_VERSION = 1
LOG_SCHEMA = pa.schema(
    [
        pa.field("step", pa.int64()),
        pa.field("tokens", pa.int64()),
        pa.field("mse", pa.float64()),
        pa.field("fve", pa.float64()),
        pa.field("l0", pa.float64()),
        pa.field("dead_fraction", pa.float64()),
        pa.field("auxk_loss", pa.float64()),
        pa.field("lr", pa.float64()),
    ]
)
_INTERVAL_KEYS = ("mse", "fve", "l0", "auxk_loss")


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


def geometric_median(points: torch.Tensor, iterations: int = 20, eps: float = 1e-8) -> torch.Tensor:
    """Weiszfeld's algorithm: the point minimising the summed Euclidean distance to ``points``.

    A robust centre for ``b_dec``: unlike the mean it is not dragged by the few tokens with
    huge norms that transformer activations have.
    """
    points = points.double()
    median = points.mean(dim=0)
    for _ in range(iterations):
        weights = 1.0 / (points - median).norm(dim=1).clamp_min(eps)
        median = (weights[:, None] * points).sum(dim=0) / weights.sum()
    return median.float()


def make_optimizer(sae: TopKSAE, lr: float) -> torch.optim.Adam:
    """Adam; the fused kernel where this torch has one for the device (about 3x faster on CPU)."""
    try:
        return torch.optim.Adam(sae.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(sae.parameters(), lr=lr)


@dataclass(frozen=True)
class TrainOutputs:
    """Where a finished training run writes its three files."""

    safetensors: Path
    json: Path
    log_table: Path

    @classmethod
    def in_dir(cls, directory: str | os.PathLike[str]) -> TrainOutputs:
        d = Path(directory)
        return cls(d / "sae.safetensors", d / "sae.json", d / "train_log.parquet")


@dataclass
class TrainResult:
    """A finished run: the model, its log, and where it started (non-zero after a resume)."""

    sae: TopKSAE
    log: pa.Table
    steps: int
    tokens: int
    resumed_from_step: int
    resumed_from_tokens: int


def _fingerprint(stream: ActivationStream, settings: dict[str, Any]) -> dict[str, Any]:
    """What must match for a checkpoint to belong to this run."""
    rows = [0] * len(stream.paths)
    for unit in stream.row_groups:
        rows[unit.shard] += unit.rows
    shards = [[path.name, n] for path, n in zip(stream.paths, rows, strict=True)]
    return {"shards": shards, **settings}


def _load_checkpoint(
    path: Path, fingerprint: dict[str, Any], logger: logging.Logger
) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a torn or foreign file: training from scratch is the safe answer
        logger.warning("%s: unreadable checkpoint (%s); training from scratch", path, err)
        return None
    if state.get("version") != CHECKPOINT_VERSION or state.get("fingerprint") != fingerprint:
        logger.warning(
            "%s: checkpoint belongs to a run with other settings or data; training from scratch",
            path,
        )
        return None
    return state


def _append_log_row(
    rows: list[dict[str, Any]],
    interval: dict[str, Any],
    step: int,
    tokens: int,
    dead_fraction: float,
    lr: float,
) -> None:
    count = interval["count"]
    rows.append(
        {
            "step": step,
            "tokens": tokens,
            **{key: float(interval[key]) / count for key in _INTERVAL_KEYS},
            "dead_fraction": dead_fraction,
            "lr": lr,
        }
    )


def train_sae(
    shard_paths: Sequence[str | os.PathLike[str]],
    outputs: TrainOutputs | str | os.PathLike[str] | None,
    *,
    width: int,
    k: int,
    total_tokens: int,
    d_model: int | None = None,
    lr: float | None = None,
    batch_tokens: int = 4096,
    auxk: int | None = None,
    dead_tokens: int = 10_000_000,
    shuffle_buffer_tokens: int = 1 << 18,
    warmup_steps: int | None = None,
    decay_fraction: float = 0.2,
    normalize: str = "none",
    seed: int = 0,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 1000,
    log_every: int | None = None,
    median_sample_tokens: int = 1 << 15,
    model_name: str | None = None,
    layer: int | None = None,
    device: str | torch.device = "auto",
    bf16: bool = False,
    logger: logging.Logger | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train a TopK SAE on the tokens of ``shard_paths``; write ``outputs`` (a
    :class:`TrainOutputs` or a directory; None writes nothing).

    With ``checkpoint_dir``, the full training state is saved atomically every
    ``checkpoint_every`` steps and a restarted call resumes from it, ending with the same
    weights an uninterrupted run would have. ``log_every`` (default: ~200 rows per run) sets
    the steps per ``train_log`` row. ``on_step(step, tokens)`` is called after each step
    (progress monitors, tests). ``model_name``/``layer`` default to the shards' metadata.
    ``bf16`` runs the forward pass under bfloat16 autocast on CUDA (ignored on CPU).
    """
    logger = logger or get_logger()
    device = resolve_device(device)
    autocast_dtype = torch.bfloat16 if bf16 and device.type == "cuda" else None
    # On a GPU, batches travel in the shards' dtype and are converted there.
    stream = ActivationStream(
        shard_paths,
        batch_tokens,
        shuffle_buffer_tokens,
        seed,
        logger,
        float32=device.type != "cuda",
    )
    if d_model is not None and d_model != stream.d_model:
        raise ValueError(
            f"d_model={d_model} requested, but the shards ({stream.paths[0]}, ...) hold "
            f"{stream.d_model}-d activations"
        )
    total_steps = max(1, math.ceil(total_tokens / batch_tokens))
    base_lr = lr if lr is not None else default_lr(width)
    if warmup_steps is None:
        warmup_steps = min(1000, total_steps // 20)
    if log_every is None:
        log_every = max(1, math.ceil(total_steps / 200))
    settings = {
        "width": width,
        "k": k,
        "lr": base_lr,
        "batch_tokens": batch_tokens,
        "total_tokens": total_tokens,
        "auxk": auxk,
        "dead_tokens": dead_tokens,
        "shuffle_buffer_tokens": shuffle_buffer_tokens,
        "warmup_steps": warmup_steps,
        "decay_fraction": decay_fraction,
        "normalize": normalize,
        "seed": seed,
        "log_every": log_every,
        "median_sample_tokens": median_sample_tokens,
        "bf16": autocast_dtype is not None,
    }
    cfg = SAEConfig(
        d_model=stream.d_model,
        width=width,
        k=k,
        normalize=normalize,
        auxk=auxk,
        dead_tokens=dead_tokens,
        model=stream.model if model_name is None else model_name,
        layer=stream.layer if layer is None else layer,
    )
    sae = TopKSAE(cfg, seed=seed).to(device)
    optimizer = make_optimizer(sae, base_lr)
    tokens_since_fired = torch.zeros(width, dtype=torch.long, device=device)
    log_rows: list[dict[str, Any]] = []
    interval: dict[str, Any] = {key: 0.0 for key in _INTERVAL_KEYS} | {"count": 0}
    step = 0

    fingerprint = _fingerprint(stream, settings)
    checkpoint_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir else None
    state = _load_checkpoint(checkpoint_path, fingerprint, logger) if checkpoint_path else None
    if state is not None:
        sae.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        stream.load_state_dict(state["stream"])
        tokens_since_fired.copy_(state["tokens_since_fired"])
        log_rows = list(state["log_rows"])
        interval = dict(state["interval"])
        step = int(state["step"])
        logger.info(
            "resuming from %s at step %d/%d (%s tokens done)",
            checkpoint_path,
            step,
            total_steps,
            f"{step * batch_tokens:,}",
        )
    else:
        _init_decoder_bias(sae, stream, median_sample_tokens, device)
    resumed_from_step = step

    logger.info(
        "training TopK SAE d_model=%d width=%d k=%d on %d shard(s) of %s tokens: %d steps of %d "
        "tokens, lr %.3g, device %s",
        cfg.d_model,
        width,
        k,
        len(stream.paths),
        f"{stream.tokens_per_epoch:,}",
        total_steps,
        batch_tokens,
        base_lr,
        device,
    )
    progress = Progress(
        "train SAE", (total_steps - step) * batch_tokens, "tokens", logger, interval=30.0
    )
    latest = {"fve": float("nan"), "dead": 0.0}
    sae.train()
    with Prefetcher(stream) as batches:
        while step < total_steps:
            current_lr = lr_at(step, total_steps, base_lr, warmup_steps, decay_fraction)
            x = torch.from_numpy(next(batches)).to(device, non_blocking=True).float()
            dead = tokens_since_fired >= dead_tokens
            out = train_step(
                sae, optimizer, x, dead if bool(dead.any()) else None, current_lr, autocast_dtype
            )

            with torch.no_grad():
                active = out.values > 0
                fired = torch.zeros(width, dtype=torch.bool, device=device)
                fired[out.indices[active]] = True
                tokens_since_fired += x.shape[0]
                tokens_since_fired[fired] = 0
                interval["mse"] += out.mse
                interval["fve"] += 1.0 - out.fvu
                interval["l0"] += active.sum(dim=1).float().mean()
                interval["auxk_loss"] += out.auxk_loss
                interval["count"] += 1
            step += 1
            if step % log_every == 0 or step == total_steps:
                dead_fraction = float((tokens_since_fired >= dead_tokens).float().mean())
                _append_log_row(
                    log_rows, interval, step, step * batch_tokens, dead_fraction, current_lr
                )
                interval = {key: 0.0 for key in _INTERVAL_KEYS} | {"count": 0}
                latest = {"fve": log_rows[-1]["fve"], "dead": dead_fraction}
            progress.update(x.shape[0], fve=latest["fve"], dead_fraction=latest["dead"])
            if checkpoint_path and step % checkpoint_every == 0 and step < total_steps:
                _save_checkpoint(
                    checkpoint_path,
                    {
                        "version": CHECKPOINT_VERSION,
                        "fingerprint": fingerprint,
                        "step": step,
                        "model": sae.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "stream": batches.state_dict(),
                        "tokens_since_fired": tokens_since_fired.cpu(),
                        "log_rows": log_rows,
                        "interval": {key: float(value) for key, value in interval.items()},
                    },
                )
            if on_step is not None:
                on_step(step, step * batch_tokens)
    progress.finish(fve=latest["fve"], dead_fraction=latest["dead"])
    sae.eval()

    log = pa.Table.from_pylist(log_rows, schema=LOG_SCHEMA)
    sae.cfg.training = {
        **settings,
        "steps": total_steps,
        "tokens_trained": total_steps * batch_tokens,
        "epochs": (total_steps * batch_tokens) / stream.tokens_per_epoch,
        "shards": [p.name for p in stream.paths],
        "final_fve": log_rows[-1]["fve"],
        "final_dead_fraction": log_rows[-1]["dead_fraction"],
    }
    if outputs is not None:
        if not isinstance(outputs, TrainOutputs):
            outputs = TrainOutputs.in_dir(outputs)
        save_sae(sae, outputs.safetensors, outputs.json)
        write_parquet(log, outputs.log_table)
    if checkpoint_path and checkpoint_path.exists():
        checkpoint_path.unlink()
        if not any(checkpoint_path.parent.iterdir()):
            checkpoint_path.parent.rmdir()
    return TrainResult(
        sae=sae,
        log=log,
        steps=total_steps,
        tokens=total_steps * batch_tokens,
        resumed_from_step=resumed_from_step,
        resumed_from_tokens=resumed_from_step * batch_tokens,
    )


def train_step(
    sae: TopKSAE,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    dead_mask: torch.Tensor | None,
    lr: float,
    autocast_dtype: torch.dtype | None = None,
) -> SAEOutput:
    """One optimisation step on batch ``x``, keeping the decoder rows unit-norm.

    ``autocast_dtype`` (e.g. ``torch.bfloat16`` on a GPU) runs the forward pass under
    autocast: the encoder matmul and top-k in that dtype, decoder and losses in float32.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    with torch.autocast(x.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        out = sae(x, dead_mask=dead_mask)
    loss = out.fvu + AUXK_COEFFICIENT * out.auxk_loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    sae.remove_gradient_parallel_to_decoder()
    optimizer.step()
    sae.set_decoder_norm_to_unit()
    return SAEOutput(*(tensor.detach() for tensor in out))


def _init_decoder_bias(
    sae: TopKSAE, stream: ActivationStream, sample_tokens: int, device: torch.device
) -> None:
    """b_dec := geometric median of the stream's first tokens; the stream is rewound after."""
    position = stream.state_dict()
    batches = [next(stream) for _ in range(max(1, math.ceil(sample_tokens / stream.batch_tokens)))]
    stream.load_state_dict(position)
    sample = torch.from_numpy(np.concatenate(batches)[:sample_tokens]).to(device).float()
    if sae.cfg.normalize == "token_standardize":
        sample = sae.standardize(sample)[0]
    with torch.no_grad():
        sae.b_dec.copy_(geometric_median(sample))


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
