"""The bf16 paths a GPU takes, run on CPU (torch autocasts to bfloat16 there too) against float32.

Tolerances (bfloat16 keeps 8 significant bits, about 0.4% per rounding):
- extraction: every residue vector within 2% relative L2 error of float32, cosine >= 0.9995
  (measured on this 4x64 model: 0.4% and 0.99999);
- SAE training: held-out fraction of variance explained within 0.01 of float32 training on the
  same planted dictionary (measured: equal to 4 decimals), and both recover the planted atoms.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import esm
import numpy as np
import pytest
import torch

from protsae import esm as pesm
from protsae.sae.config import TrainConfig
from protsae.sae.train import TrainRun, train_sae

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_sae_train import _planted_shards  # noqa: E402

AMINO = "ACDEFGHIKLMNPQRSTVWY"
EXTRACTION_REL_L2 = 0.02
EXTRACTION_COSINE = 0.9995
TRAINING_FVE = 0.01


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def test_bf16_extraction_matches_float32() -> None:
    model = pesm.build_random_init(4, 64, 4, seed=3)
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    rng = random.Random(0)
    records = [(f"s{i}", "".join(rng.choices(AMINO, k=rng.randint(20, 200)))) for i in range(12)]
    layers = [2, 4]
    full = dict(
        pesm.multi_layer_representations(
            model, alphabet, records, layers, pesm.ForwardOptions(2048, "cpu")
        )
    )
    half = dict(
        pesm.multi_layer_representations(
            model, alphabet, records, layers, pesm.ForwardOptions(2048, "cpu", bf16=True)
        )
    )
    worst_rel, worst_cos, any_difference = 0.0, 1.0, False
    for seq_id, _ in records:
        for layer in layers:
            a, b = full[seq_id][layer], half[seq_id][layer]
            assert b.dtype == torch.float32 and a.shape == b.shape
            any_difference |= not torch.equal(a, b)
            rel = (a - b).norm(dim=1) / a.norm(dim=1)
            cos = torch.nn.functional.cosine_similarity(a, b, dim=1)
            worst_rel, worst_cos = (
                max(worst_rel, float(rel.max())),
                min(worst_cos, float(cos.min())),
            )
    assert any_difference, "bf16=True ran in float32: autocast did not engage"
    assert worst_rel < EXTRACTION_REL_L2, worst_rel
    assert worst_cos >= EXTRACTION_COSINE, worst_cos


def _fve(sae, x: np.ndarray) -> float:
    xt = torch.from_numpy(x)
    with torch.no_grad():
        x_hat = sae(xt).x_hat
    return float(1 - ((xt - x_hat) ** 2).sum() / ((xt - xt.mean(0)) ** 2).sum())


def _recovered(sae, atoms: np.ndarray) -> float:
    """Fraction of planted atoms some decoder row matches with cosine > 0.9."""
    dec = sae.W_dec.detach().numpy()
    dec = dec / np.linalg.norm(dec, axis=1, keepdims=True)
    return float(((atoms @ dec.T).max(axis=1) > 0.9).mean())


def test_bf16_sae_training_matches_float32(tmp_path: Path) -> None:
    paths, atoms, held_out = _planted_shards(tmp_path, d=64, n_atoms=128, active=3, n_tokens=20_000)
    results = {}
    for bf16 in (False, True):
        config = TrainConfig(
            width=256,
            k=3,
            total_tokens=80_000,
            epochs=5,
            lr=8e-3,
            batch_tokens=512,
            dead_tokens=20_000,
            shuffle_buffer_tokens=4096,
            bf16=bf16,
        )
        out = tmp_path / f"sae-bf16-{bf16}"
        result = train_sae(paths, out, config, execution=TrainRun(device="cpu", bf16_on_cpu=True))
        assert result.sae.cfg.training["bf16"] is bf16  # the autocast path ran (or did not)
        results[bf16] = (_fve(result.sae, held_out), _recovered(result.sae, atoms))
    (fve32, found32), (fve16, found16) = results[False], results[True]
    assert fve32 > 0.8 and fve16 > 0.8
    assert abs(fve16 - fve32) < TRAINING_FVE, (fve32, fve16)
    assert found16 > 0.8 and found32 > 0.8, (found32, found16)
