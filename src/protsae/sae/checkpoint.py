"""A training run's checkpoint: what it holds, when it belongs to the run, how it is written.

A checkpoint is the full state of a run (:class:`RunState`) plus a fingerprint of the run's
settings and shards; a checkpoint whose fingerprint differs from the current run's is ignored
with a warning, so a stale one is never resumed. It is written atomically and removed when
the run has written its outputs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from protsae.io import atomic_path
from protsae.sae.data import ActivationStream
from protsae.sae.model import TopKSAE

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_VERSION = 1


@dataclass
class RunState:
    """The mutable state of a training run: exactly what a checkpoint saves."""

    sae: TopKSAE
    optimizer: torch.optim.Optimizer
    tokens_since_fired: torch.Tensor
    log_rows: list[dict[str, Any]]
    interval: dict[str, Any]
    step: int = 0

    def state_dict(self, fingerprint: dict[str, Any], stream_state: Any) -> dict[str, Any]:
        """What a checkpoint holds: this state, the stream's position and the fingerprint."""
        return {
            "version": CHECKPOINT_VERSION,
            "fingerprint": fingerprint,
            "step": self.step,
            "model": self.sae.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "stream": stream_state,
            "tokens_since_fired": self.tokens_since_fired.cpu(),
            "log_rows": self.log_rows,
            "interval": {key: float(value) for key, value in self.interval.items()},
        }

    def load_state_dict(self, state: dict[str, Any], stream: ActivationStream) -> None:
        """Resume from a checkpoint's ``state``, rewinding ``stream`` to its position."""
        self.sae.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        stream.load_state_dict(state["stream"])
        self.tokens_since_fired.copy_(state["tokens_since_fired"])
        self.log_rows = list(state["log_rows"])
        self.interval = dict(state["interval"])
        self.step = int(state["step"])


def fingerprint_of(stream: ActivationStream, settings: dict[str, Any]) -> dict[str, Any]:
    """What must match for a checkpoint to belong to this run."""
    rows = [0] * len(stream.paths)
    for unit in stream.row_groups:
        rows[unit.shard] += unit.rows
    shards = [[path.name, n] for path, n in zip(stream.paths, rows, strict=True)]
    return {"shards": shards, **settings}


def load_checkpoint(
    path: Path, fingerprint: dict[str, Any], logger: logging.Logger
) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it is readable and belongs to this run, else None."""
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


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (a crash mid-write leaves the old one)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def remove_checkpoint(path: Path | None) -> None:
    """A finished run leaves no checkpoint (nor an empty checkpoint directory) behind."""
    if path and path.exists():
        path.unlink()
        if not any(path.parent.iterdir()):
            path.parent.rmdir()
