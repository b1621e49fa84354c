"""Training a TopK SAE on activation shards: seeded, checkpointed, resumable.

The training rules (loss, AuxK, learning rate and its schedule, ``b_dec`` initialisation,
checkpoints) are in docs/method.md, "TopK SAE" and "Decisions the code makes"; the knobs are
the fields of :class:`~protsae.sae.config.TrainConfig`.

Nothing after initialisation draws random numbers: the stream's shuffles derive from
(seed, epoch, position), so a checkpoint needs no RNG state to resume exactly. The checkpoint
is deleted once the final outputs are written: the outputs are the durable result, and a
stale checkpoint must never be resumed by a later, different run.
"""

from __future__ import annotations

import contextlib
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
from protsae.io import exclusive_lock, remove_stale_parts, write_parquet
from protsae.progress import Progress, get_logger
from protsae.sae.checkpoint import (
    CHECKPOINT_NAME,
    RunState,
    fingerprint_of,
    load_checkpoint,
    remove_checkpoint,
    save_checkpoint,
)
from protsae.sae.config import Schedule, TrainConfig, log_budget
from protsae.sae.data import ActivationStream, Prefetcher
from protsae.sae.formats import save_sae
from protsae.sae.model import SAEConfig, SAEOutput, TopKSAE
from protsae.sae.step import keep_freed_memory, make_optimizer, train_step

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


def _settings(config: TrainConfig, schedule: Schedule, bf16: bool) -> dict[str, Any]:
    """The values that shape the weights, as recorded in ``sae.json`` and the fingerprint."""
    return {
        "width": config.width,
        "k": config.k,
        "lr": schedule.base_lr,
        "batch_tokens": config.batch_tokens,
        "total_tokens": config.total_tokens,
        "max_epochs": config.epochs,
        "auxk": config.auxk,
        "dead_tokens": config.dead_tokens,
        "shuffle_buffer_tokens": config.shuffle_buffer_tokens,
        "warmup_steps": schedule.warmup_steps,
        "decay_fraction": config.decay_fraction,
        "normalize": config.normalize,
        "seed": config.seed,
        "log_every": schedule.log_every,
        "median_sample_tokens": config.median_sample_tokens,
        "bf16": bf16,
    }


def _empty_interval() -> dict[str, Any]:
    return {key: 0.0 for key in _INTERVAL_KEYS} | {"count": 0}


def _open_stream(
    shard_paths: Sequence[str | os.PathLike[str]],
    config: TrainConfig,
    d_model: int | None,
    device: torch.device,
    logger: logging.Logger,
) -> ActivationStream:
    # On a GPU, batches travel in the shards' dtype and are converted there.
    stream = ActivationStream(
        shard_paths,
        config.batch_tokens,
        config.shuffle_buffer_tokens,
        config.seed,
        logger,
        float32=device.type != "cuda",
    )
    if d_model is not None and d_model != stream.d_model:
        raise ValueError(
            f"d_model={d_model} requested, but the shards ({stream.paths[0]}, ...) hold "
            f"{stream.d_model}-d activations"
        )
    return stream


def _restore_or_init(
    run: RunState,
    stream: ActivationStream,
    checkpoint_path: Path | None,
    fingerprint: dict[str, Any],
    config: TrainConfig,
    total_steps: int,
    logger: logging.Logger,
) -> None:
    """Resume ``run`` from a matching checkpoint, or start it: ``b_dec`` from the data."""
    state = load_checkpoint(checkpoint_path, fingerprint, logger) if checkpoint_path else None
    if state is None:
        device = run.tokens_since_fired.device
        _init_decoder_bias(run.sae, stream, config.median_sample_tokens, device)
        return
    run.load_state_dict(state, stream)
    logger.info(
        "resuming from %s at step %d/%d (%s tokens done)",
        checkpoint_path,
        run.step,
        total_steps,
        f"{run.step * config.batch_tokens:,}",
    )


def _account(run: RunState, out: SAEOutput, tokens: int) -> None:
    """Fold one step's output into the dead-latent counters and the open log interval."""
    with torch.no_grad():
        active = out.values > 0
        fired = torch.zeros_like(run.tokens_since_fired, dtype=torch.bool)
        fired[out.indices[active]] = True
        run.tokens_since_fired += tokens
        run.tokens_since_fired[fired] = 0
        run.interval["mse"] += out.mse
        run.interval["fve"] += 1.0 - out.fvu
        run.interval["l0"] += active.sum(dim=1).float().mean()
        run.interval["auxk_loss"] += out.auxk_loss
        run.interval["count"] += 1


def _train_loop(
    run: RunState,
    stream: ActivationStream,
    config: TrainConfig,
    schedule: Schedule,
    checkpoint: Callable[[Any], None] | None,
    autocast_dtype: torch.dtype | None,
    on_step: Callable[[int, int], None] | None,
    progress: Progress,
) -> None:
    """Run the steps from ``run.step`` to the end, logging and checkpointing on the way."""
    device = run.tokens_since_fired.device
    latest = {"fve": float("nan"), "dead": 0.0}
    run.sae.train()
    with Prefetcher(stream) as batches:
        while run.step < schedule.total_steps:
            current_lr = schedule.lr(run.step, config.decay_fraction)
            x = torch.from_numpy(next(batches)).to(device, non_blocking=True).float()
            dead = run.tokens_since_fired >= config.dead_tokens
            dead_mask = dead if bool(dead.any()) else None
            out = train_step(run.sae, run.optimizer, x, dead_mask, current_lr, autocast_dtype)
            _account(run, out, x.shape[0])
            run.step += 1
            step, tokens = run.step, run.step * config.batch_tokens
            if step % schedule.log_every == 0 or step == schedule.total_steps:
                dead_fraction = float((run.tokens_since_fired >= config.dead_tokens).float().mean())
                _append_log_row(run.log_rows, run.interval, step, tokens, dead_fraction, current_lr)
                run.interval = _empty_interval()
                latest = {"fve": run.log_rows[-1]["fve"], "dead": dead_fraction}
            progress.update(x.shape[0], fve=latest["fve"], dead_fraction=latest["dead"])
            if checkpoint and step % config.checkpoint_every == 0 and step < schedule.total_steps:
                checkpoint(batches.state_dict())
            if on_step is not None:
                on_step(step, tokens)
    progress.finish(fve=latest["fve"], dead_fraction=latest["dead"])
    run.sae.eval()


def _new_run(
    config: TrainConfig,
    stream: ActivationStream,
    schedule: Schedule,
    model_name: str | None,
    layer: int | None,
    device: torch.device,
) -> RunState:
    """A fresh SAE (seeded) with its optimiser; model and layer default to the shards'."""
    cfg = SAEConfig(
        d_model=stream.d_model,
        width=config.width,
        k=config.k,
        normalize=config.normalize,
        auxk=config.auxk,
        dead_tokens=config.dead_tokens,
        model=stream.model if model_name is None else model_name,
        layer=stream.layer if layer is None else layer,
    )
    sae = TopKSAE(cfg, seed=config.seed).to(device)
    return RunState(
        sae=sae,
        optimizer=make_optimizer(sae, schedule.base_lr),
        tokens_since_fired=torch.zeros(config.width, dtype=torch.long, device=device),
        log_rows=[],
        interval=_empty_interval(),
    )


def _finish(
    run: RunState,
    outputs: TrainOutputs | str | os.PathLike[str] | None,
    settings: dict[str, Any],
    schedule: Schedule,
    stream: ActivationStream,
) -> pa.Table:
    """Record the training summary in the SAE's config and write the outputs; the log table."""
    tokens = schedule.total_steps * settings["batch_tokens"]
    log = pa.Table.from_pylist(run.log_rows, schema=LOG_SCHEMA)
    dead_tokens = settings["dead_tokens"]
    dead = run.tokens_since_fired >= dead_tokens
    run.sae.cfg.training = {
        **settings,
        "steps": schedule.total_steps,
        "tokens_trained": tokens,
        "tokens_per_epoch": stream.tokens_per_epoch,
        "epochs": schedule.epochs,
        "shards": [p.name for p in stream.paths],
        "final_fve": run.log_rows[-1]["fve"],
        "dead_fraction_train": float(dead.float().mean()) if tokens >= dead_tokens else None,
        "dead_latents_train": int(dead.sum()) if tokens >= dead_tokens else None,
    }
    if outputs is not None:
        if not isinstance(outputs, TrainOutputs):
            outputs = TrainOutputs.in_dir(outputs)
        save_sae(run.sae, outputs.safetensors, outputs.json)
        write_parquet(log, outputs.log_table)
    return log


def _log_start(
    config: TrainConfig,
    stream: Any,
    schedule: Schedule,
    device: torch.device,
    logger: logging.Logger,
) -> None:
    """Log what the run will do: the model, the data, the steps and the token budget."""
    logger.info(
        "training TopK SAE d_model=%d width=%d k=%d on %d shard(s) of %s tokens: %d steps of %d "
        "tokens, lr %.3g, device %s",
        stream.d_model,
        config.width,
        config.k,
        len(stream.paths),
        f"{stream.tokens_per_epoch:,}",
        schedule.total_steps,
        config.batch_tokens,
        schedule.base_lr,
        device,
    )
    log_budget(config, schedule, stream.tokens_per_epoch, logger)


@dataclass(frozen=True)
class TrainRun:
    """How a training run executes: on ``device`` ("auto": CUDA when there is one), saving its
    state under ``checkpoint_dir`` (None: no checkpoints), calling ``on_step(step, tokens)``
    after each step; ``bf16_on_cpu`` runs the bf16 autocast path on a CPU (tests)."""

    device: str | torch.device = "auto"
    checkpoint_dir: str | os.PathLike[str] | None = None
    on_step: Callable[[int, int], None] | None = None
    bf16_on_cpu: bool = False


def train_sae(
    shard_paths: Sequence[str | os.PathLike[str]],
    outputs: TrainOutputs | str | os.PathLike[str] | None,
    config: TrainConfig,
    *,
    execution: TrainRun | None = None,
    d_model: int | None = None,
    model_name: str | None = None,
    layer: int | None = None,
    logger: logging.Logger | None = None,
) -> TrainResult:
    """Train a TopK SAE as ``config`` says on the tokens of ``shard_paths``; write ``outputs``
    (a :class:`TrainOutputs` or a directory; None writes nothing).

    ``execution`` (default :class:`TrainRun`) says where and how: with its ``checkpoint_dir``,
    the full training state is saved atomically every ``config.checkpoint_every`` steps and a
    restarted call resumes from it, ending with the same weights an uninterrupted run would
    have; its ``on_step(step, tokens)`` is called after each step (progress monitors, tests).
    ``model_name``/``layer`` default to the shards' metadata; ``d_model``, when given, must
    match the shards. A second trainer on the same ``checkpoint_dir`` fails at once
    (:class:`protsae.io.LockHeld`, naming the first). ``config.bf16`` autocasts on CUDA only;
    ``execution.bf16_on_cpu`` runs that same path on a CPU (slow there: the tests use it to
    exercise the GPU path where there is no GPU).
    """
    logger = logger or get_logger()
    execution = execution or TrainRun()
    checkpoint_dir, on_step = execution.checkpoint_dir, execution.on_step
    device = resolve_device(execution.device)
    if device.type == "cpu":
        keep_freed_memory()
    use_bf16 = config.bf16 and (device.type == "cuda" or execution.bf16_on_cpu)
    autocast_dtype = torch.bfloat16 if use_bf16 else None
    stream = _open_stream(shard_paths, config, d_model, device, logger)
    schedule = Schedule.of(config, stream.tokens_per_epoch)
    settings = _settings(config, schedule, bf16=autocast_dtype is not None)
    run = _new_run(config, stream, schedule, model_name, layer, device)
    fingerprint = fingerprint_of(stream, settings)
    checkpoint_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir else None
    # One trainer per checkpoint folder: a second one would resume from a file being written.
    with exclusive_lock(checkpoint_dir) if checkpoint_dir else contextlib.nullcontext():
        if checkpoint_path:
            remove_stale_parts(checkpoint_path)
        _restore_or_init(
            run, stream, checkpoint_path, fingerprint, config, schedule.total_steps, logger
        )
        resumed_from_step = run.step
        _log_start(config, stream, schedule, device, logger)
        remaining = (schedule.total_steps - run.step) * config.batch_tokens
        progress = Progress("train SAE", remaining, "tokens", logger, interval=30.0)

        def checkpoint(stream_state: Any) -> None:
            save_checkpoint(checkpoint_path, run.state_dict(fingerprint, stream_state))

        _train_loop(
            run,
            stream,
            config,
            schedule,
            checkpoint if checkpoint_path else None,
            autocast_dtype,
            on_step,
            progress,
        )
        log = _finish(run, outputs, settings, schedule, stream)
        remove_checkpoint(checkpoint_path)
        return TrainResult(
            sae=run.sae,
            log=log,
            steps=schedule.total_steps,
            tokens=schedule.total_steps * config.batch_tokens,
            resumed_from_step=resumed_from_step,
            resumed_from_tokens=resumed_from_step * config.batch_tokens,
        )


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
