"""Masked-language-model pre-training of a small ESM-2 on the pipeline's own sequences.

The demo cannot download ESM-2, and a randomly initialised one has nothing to interpret.
This trains fair-esm's own ``ESM2`` class the way ESM-2 was trained (BERT-style masking: 15%
of residues chosen; of those 80% become ``<mask>``, 10% a random amino acid, 10% stay), and
writes the result in fair-esm's checkpoint layout, so every later stage loads it through
``protsae.esm.load_model`` exactly like the published weights.

Decisions:
- batches are whole sequences grouped by a padded-token budget; the order is a function of
  (seed, epoch) and the masks of (seed, step), so a resumed run repeats the same steps and
  a checkpoint needs no RNG state;
- AdamW (betas 0.9/0.98, weight decay 0.01, ESM-2's), linear warm-up over 5% of the steps,
  then linear decay to 10% of the peak; gradients clipped to norm 1;
- the training checkpoint is written atomically every ``checkpoint_every`` steps and removed
  once the model is saved; a checkpoint from other settings or data is ignored with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import esm
import pyarrow as pa
import torch
import torch.nn.functional as F
from esm.model.esm2 import ESM2

from protsae.esm import build_random_init, resolve_device, token_batches
from protsae.esm.checkpoint import save_esm2_checkpoint
from protsae.esm.tokens import ResidueBatchConverter
from protsae.ids import is_holdout
from protsae.io import atomic_path
from protsae.progress import Progress, get_logger

MASK_PROB = 0.15
#: Of the chosen positions: this share becomes <mask>, the same share a random residue.
MASK_TOKEN_SHARE = 0.8
RANDOM_TOKEN_SHARE = 0.1
CHECKPOINT_NAME = "pretrain-checkpoint.pt"
CHECKPOINT_VERSION = 1
_STANDARD_RESIDUES = "ACDEFGHIKLMNPQRSTVWY"

Record = tuple[str, str]


@dataclass(frozen=True)
class PretrainSettings:
    """The size of the model and its training (config key ``esm.pretrain``)."""

    layers: int
    embed_dim: int
    heads: int
    steps: int
    batch_tokens: int = 8192
    lr: float = 1e-3
    seed: int = 0


def esm_masking(
    tokens: torch.Tensor, alphabet: esm.data.Alphabet, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """ESM's masked-LM corruption of a token batch: (corrupted tokens, positions to predict).

    Only residues are chosen (never BOS, EOS or padding); each with probability 0.15, at least
    one per batch. Chosen residues become ``<mask>`` (80%), a random standard amino acid (10%)
    or stay as they are (10%); the loss is taken at every chosen position.
    """
    special = torch.tensor(
        [alphabet.padding_idx, alphabet.cls_idx, alphabet.eos_idx], device=tokens.device
    )
    residue = ~torch.isin(tokens, special)
    draw = torch.rand(tokens.shape, generator=generator)
    chosen = residue & (draw < MASK_PROB)
    if not chosen.any():
        first = residue.flatten().nonzero()[0]
        chosen.view(-1)[first] = True
    action = torch.rand(tokens.shape, generator=generator)
    corrupted = tokens.clone()
    corrupted[chosen & (action < MASK_TOKEN_SHARE)] = alphabet.mask_idx
    swap = chosen & (action >= MASK_TOKEN_SHARE) & (action < MASK_TOKEN_SHARE + RANDOM_TOKEN_SHARE)
    standard = torch.tensor([alphabet.get_idx(a) for a in _STANDARD_RESIDUES])
    picks = torch.randint(len(standard), tokens.shape, generator=generator)
    corrupted[swap] = standard[picks][swap].to(tokens.device)
    return corrupted, chosen


def epoch_batches(
    lengths: Sequence[int], batch_tokens: int, seed: int, epoch: int
) -> list[list[int]]:
    """One epoch's batches (indices into ``lengths``), in an order set by (seed, epoch).

    Sequences are shuffled, grouped in windows of similar length (little padding), cut into
    batches by ``token_batches`` and the batches shuffled again.
    """
    rng = random.Random(f"{seed}:{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = 256
    batches = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        for batch in token_batches([lengths[i] for i in chunk], batch_tokens):
            batches.append([chunk[i] for i in batch])
    rng.shuffle(batches)
    return batches


def lr_factor(step: int, steps: int) -> float:
    """Warm-up over 5% of the steps, then linear decay to 10% of the peak at the last step."""
    warmup = max(1, math.ceil(0.05 * steps))
    if step < warmup:
        return (step + 1) / warmup
    return 1.0 - 0.9 * (step - warmup) / max(1, steps - warmup)


def records_digest(records: Sequence[Record]) -> str:
    """SHA-256 of the (id, sequence) records, in order: what a model was trained on."""
    digest = hashlib.sha256()
    for seq_id, sequence in records:
        digest.update(f"{seq_id}\t{sequence}\n".encode())
    return digest.hexdigest()


def _load_checkpoint(path: Path, fingerprint: dict, logger: logging.Logger) -> dict | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a torn or foreign file: starting over is the safe answer
        logger.warning("%s: unreadable checkpoint (%s); training from scratch", path, err)
        return None
    if state.get("version") != CHECKPOINT_VERSION or state.get("fingerprint") != json.dumps(
        fingerprint, sort_keys=True
    ):
        logger.warning("%s: checkpoint of other settings or data; training from scratch", path)
        return None
    return state


class _BatchSchedule:
    """Step -> batch of record indices, epoch after epoch, the same on every (re)start."""

    def __init__(self, lengths: Sequence[int], settings: PretrainSettings) -> None:
        self.lengths, self.settings = lengths, settings
        self.epoch, self.first_step, self.batches = 0, 0, self._epoch(0)

    def _epoch(self, epoch: int) -> list[list[int]]:
        return epoch_batches(self.lengths, self.settings.batch_tokens, self.settings.seed, epoch)

    def __getitem__(self, step: int) -> list[int]:
        if step < self.first_step:
            self.epoch, self.first_step, self.batches = 0, 0, self._epoch(0)
        while step >= self.first_step + len(self.batches):
            self.first_step += len(self.batches)
            self.epoch += 1
            self.batches = self._epoch(self.epoch)
        return self.batches[step - self.first_step]


def training_records(table: pa.Table, holdout_fraction: float) -> list[Record]:
    """The (id, sequence) rows of a sequence table that are not held out of training.

    The same hash of the id that keeps a sequence out of the SAE's shards keeps it out of
    the model's training, so SAE evaluation scores sequences neither has seen.
    """
    ids, sequences = table.column("id").to_pylist(), table.column("sequence").to_pylist()
    return [
        (seq_id, sequence)
        for seq_id, sequence in zip(ids, sequences, strict=True)
        if not is_holdout(seq_id, holdout_fraction)
    ]


def unigram_cross_entropy(train: Sequence[Record], scored: Sequence[Record]) -> float:
    """Cross-entropy (nats) of ``scored``'s residues under ``train``'s residue frequencies:
    the loss of a model that ignores context, the bar a masked LM must beat."""
    counts: dict[str, int] = {}
    for _, sequence in train:
        for residue in sequence:
            counts[residue] = counts.get(residue, 0) + 1
    total = sum(counts.values())
    n, loss = 0, 0.0
    for _, sequence in scored:
        for residue in sequence:
            # add-one smoothing over the residues seen anywhere, so an unseen one costs a finite loss
            loss -= math.log((counts.get(residue, 0) + 1) / (total + len(counts) + 1))
            n += 1
    if n == 0:
        raise ValueError("no residues to score")
    return loss / n


def _train_step(model: ESM2, alphabet, records, batch, generator, device) -> torch.Tensor:
    converter = ResidueBatchConverter(alphabet)
    _, _, tokens = converter([records[i] for i in batch])
    corrupted, chosen = esm_masking(tokens, alphabet, generator)
    logits = model(corrupted.to(device))["logits"]
    chosen = chosen.to(device)
    return F.cross_entropy(logits[chosen], tokens.to(device)[chosen])


def pretrain_esm(
    records: Sequence[Record],
    out_path: str | os.PathLike[str],
    settings: PretrainSettings,
    *,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 100,
    device: str | torch.device = "auto",
    logger: logging.Logger | None = None,
) -> float:
    """Train a fresh ESM-2 of ``settings``' size on ``records``; save it; return the last loss.

    Resumes from ``checkpoint_dir`` when it holds a checkpoint of the same settings and data.
    """
    logger = logger or get_logger()
    if not records:
        raise ValueError("no sequences to pre-train ESM-2 on")
    if settings.steps < 1:
        raise ValueError(f"pretrain steps must be positive, got {settings.steps}")
    device = resolve_device(device)
    model = build_random_init(settings.layers, settings.embed_dim, settings.heads, settings.seed)
    model.to(device).train()
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, betas=(0.9, 0.98), weight_decay=0.01
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, settings.steps)
    )
    fingerprint = {"settings": asdict(settings), "data": records_digest(records)}
    checkpoint = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir else None
    start = 0
    state = _load_checkpoint(checkpoint, fingerprint, logger) if checkpoint else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start = int(state["step"])
        logger.info("resuming ESM-2 pre-training from step %d of %d", start, settings.steps)
    lengths = [len(sequence) for _, sequence in records]
    schedule = _BatchSchedule(lengths, settings)
    progress = Progress("pretrain ESM-2", settings.steps - start, "steps", logger)
    recent: list[float] = []
    seen_tokens = 0
    started = time.perf_counter()
    for step in range(start, settings.steps):
        generator = torch.Generator().manual_seed(settings.seed * 1_000_003 + step)
        batch = schedule[step]
        loss = _train_step(model, alphabet, records, batch, generator, device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        recent = (recent + [loss.item()])[-50:]
        seen_tokens += sum(lengths[i] for i in batch)
        progress.update(1, loss=sum(recent) / len(recent), epoch=schedule.epoch, tokens=seen_tokens)
        if checkpoint and (step + 1) % checkpoint_every == 0 and step + 1 < settings.steps:
            with atomic_path(checkpoint) as tmp:
                torch.save(
                    {
                        "version": CHECKPOINT_VERSION,
                        "fingerprint": json.dumps(fingerprint, sort_keys=True),
                        "step": step + 1,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                    },
                    tmp,
                )
    final_loss = sum(recent) / len(recent) if recent else math.nan
    elapsed = time.perf_counter() - started
    progress.finish(loss=final_loss, tokens=seen_tokens, tokens_per_s=seen_tokens / elapsed)
    save_esm2_checkpoint(model.eval(), out_path)
    if checkpoint and checkpoint.exists():
        checkpoint.unlink()
        if not any(checkpoint.parent.iterdir()):
            checkpoint.parent.rmdir()
    return final_loss
