"""Masked-LM pre-training of a small ESM-2: ESM's masking, learning a planted pattern, the
fair-esm checkpoint layout, and an interrupted run resuming to the same model."""

from __future__ import annotations

import logging
import random

import esm
import pytest
import torch

from protsae import pretrain
from protsae.esm import load_model, masked_lm_cross_entropy
from protsae.pretrain import (
    PretrainSettings,
    epoch_batches,
    esm_masking,
    pretrain_esm,
    unigram_cross_entropy,
)

ALPHABET = esm.data.Alphabet.from_architecture("ESM-1b")
TINY = PretrainSettings(layers=2, embed_dim=32, heads=4, steps=6, batch_tokens=1024, lr=3e-3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def _repeats(n: int, seed: int, unit: str = "WCHGPYKE") -> list[tuple[str, str]]:
    """Tandem repeats of one 8-residue unit at a random phase: every residue is determined by
    its neighbours, while the unigram model (8 equally common letters) pays ln 8 per residue."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        phase, length = rng.randrange(len(unit)), rng.randint(40, 80)
        text = (unit * (length // len(unit) + 2))[phase : phase + length]
        records.append((f"rep{seed}_{i}", text))
    return records


def test_masking_follows_esm_proportions_and_spares_special_tokens():
    records = [(f"s{i}", "ACDEFGHIKLMNPQRSTVWY" * 10) for i in range(64)]
    _, _, tokens = ALPHABET.get_batch_converter()(records)
    corrupted, chosen = esm_masking(tokens, ALPHABET, torch.Generator().manual_seed(0))
    residues = ~torch.isin(tokens, torch.tensor([ALPHABET.cls_idx, ALPHABET.eos_idx]))
    assert not (chosen & ~residues).any()
    assert (corrupted[~chosen] == tokens[~chosen]).all()
    assert abs(chosen.sum() / residues.sum() - 0.15) < 0.01
    n = chosen.sum()
    masked = (corrupted[chosen] == ALPHABET.mask_idx).sum() / n
    kept = (corrupted[chosen] == tokens[chosen]).sum() / n
    assert abs(masked - 0.8) < 0.02
    # 10% kept on purpose plus the random draws that hit the same residue (1 in 20)
    assert abs(kept - (0.1 + 0.1 / 20)) < 0.02
    replaced = corrupted[chosen & (corrupted != ALPHABET.mask_idx) & (corrupted != tokens)]
    standard = {ALPHABET.get_idx(a) for a in "ACDEFGHIKLMNPQRSTVWY"}
    assert set(replaced.tolist()) <= standard


def test_at_least_one_residue_is_masked():
    _, _, tokens = ALPHABET.get_batch_converter()([("a", "MK")])
    for seed in range(20):
        _, chosen = esm_masking(tokens, ALPHABET, torch.Generator().manual_seed(seed))
        assert chosen.sum() >= 1


def test_epoch_batches_cover_every_sequence_once_within_budget():
    lengths = [random.Random(i).randint(10, 300) for i in range(200)]
    batches = epoch_batches(lengths, 2048, seed=3, epoch=1)
    assert sorted(i for b in batches for i in b) == list(range(200))
    assert all(max(lengths[i] + 2 for i in b) * len(b) <= 2048 for b in batches)
    assert batches == epoch_batches(lengths, 2048, seed=3, epoch=1)
    assert batches != epoch_batches(lengths, 2048, seed=3, epoch=2)


def test_trained_model_learns_a_planted_pattern_and_loads_like_published_weights(tmp_path):
    train, held_out = _repeats(200, seed=0), _repeats(20, seed=1)
    out = tmp_path / "pretrained-t2-d32-s0.pt"
    settings = PretrainSettings(2, 32, 4, steps=150, batch_tokens=2048, lr=5e-3, seed=0)
    pretrain_esm(train, out, settings, device="cpu")
    assert (tmp_path / "pretrained-t2-d32-s0-contact-regression.pt").is_file()
    model, alphabet = load_model(out)  # the loader every stage uses for fair-esm weights
    assert (model.num_layers, model.embed_dim, model.attention_heads) == (2, 32, 4)
    ce, n = masked_lm_cross_entropy(model, alphabet, held_out, 2, None)
    baseline = unigram_cross_entropy(train, held_out)
    assert n > 100
    assert baseline == pytest.approx(torch.log(torch.tensor(8.0)).item(), abs=0.05)
    assert ce < 0.5 * baseline


def test_interrupted_training_resumes_to_the_same_model(tmp_path, monkeypatch):
    records = _repeats(40, seed=2)
    pretrain_esm(records, tmp_path / "whole.pt", TINY, device="cpu")

    real_step, calls = pretrain._train_step, []

    def failing_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt("killed")
        return real_step(*args, **kwargs)

    checkpoints = tmp_path / "checkpoint"
    monkeypatch.setattr(pretrain, "_train_step", failing_step)
    with pytest.raises(KeyboardInterrupt):
        pretrain_esm(
            records, tmp_path / "resumed.pt", TINY, checkpoint_dir=checkpoints, checkpoint_every=2
        )
    assert not (tmp_path / "resumed.pt").exists()
    assert (checkpoints / pretrain.CHECKPOINT_NAME).is_file()
    monkeypatch.setattr(pretrain, "_train_step", real_step)
    pretrain_esm(
        records, tmp_path / "resumed.pt", TINY, checkpoint_dir=checkpoints, checkpoint_every=2
    )
    assert not checkpoints.exists()  # removed once the model is saved
    whole, _ = load_model(tmp_path / "whole.pt")
    resumed, _ = load_model(tmp_path / "resumed.pt")
    for (name, a), (_, b) in zip(
        whole.state_dict().items(), resumed.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_checkpoint_of_other_settings_is_ignored(tmp_path, caplog):
    records = _repeats(40, seed=2)
    checkpoints = tmp_path / "checkpoint"
    checkpoints.mkdir()
    torch.save(
        {"version": 1, "fingerprint": "other", "step": 3}, checkpoints / "pretrain-checkpoint.pt"
    )
    logger = logging.getLogger("tests.pretrain")  # propagates, unlike protsae's own logger
    with caplog.at_level(logging.WARNING, logger="tests.pretrain"):
        pretrain_esm(records, tmp_path / "m.pt", TINY, checkpoint_dir=checkpoints, logger=logger)
    assert "other settings or data" in caplog.text
    assert load_model(tmp_path / "m.pt")[0].num_layers == 2


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="no sequences"):
        pretrain_esm([], "x.pt", TINY)
    with pytest.raises(ValueError, match="steps"):
        pretrain_esm(_repeats(2, 0), "x.pt", PretrainSettings(2, 32, 4, steps=0))
