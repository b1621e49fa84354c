"""train_sae end to end on planted dictionaries: recovers the atoms, writes its outputs, and
resumes after SIGKILL to the same weights as an uninterrupted run."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from safetensors.torch import load_file

import protsae
from protsae.activations import ShardWriter
from protsae.io import LockHeld
from protsae.sae import load_sae, train_sae
from protsae.sae import train as train_module
from protsae.sae.config import TrainConfig, default_lr, lr_at
from protsae.sae.model import SAEConfig, TopKSAE
from protsae.sae.train import LOG_SCHEMA, TrainRun, geometric_median

ROOT = Path(__file__).resolve().parents[2]

torch.set_num_threads(1)


def _planted_shards(
    directory: Path, d: int, n_atoms: int, active: int, n_tokens: int, seed: int = 0
) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Tokens = non-negative combinations of ``active`` random unit atoms + small noise."""
    rng = np.random.default_rng(seed)
    atoms = rng.standard_normal((n_atoms, d))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)

    def sample(n: int) -> np.ndarray:
        chosen = np.argsort(rng.random((n, n_atoms)), axis=1)[:, :active]
        coefficients = rng.uniform(0.5, 2.0, (n, active))
        x = np.einsum("nk,nkd->nd", coefficients, atoms[chosen])
        return (x + 0.01 * rng.standard_normal((n, d))).astype(np.float32)

    x = sample(n_tokens)
    paths = []
    for s in range(2):
        path = directory / f"shard-{s}.parquet"
        part = x[s::2]
        with ShardWriter(path, d, "float32", model="planted", layer=2, row_group_rows=2048) as w:
            for start in range(0, len(part), 100):
                chunk = part[start : start + 100]
                w.add(f"seq{s}_{start}", np.arange(len(chunk)), chunk)
        paths.append(path)
    return paths, atoms, sample(4096)


def test_planted_dictionary_is_recovered(tmp_path: Path) -> None:
    paths, atoms, held_out = _planted_shards(
        tmp_path, d=128, n_atoms=512, active=4, n_tokens=50_000
    )
    out = tmp_path / "sae"
    checkpoints = tmp_path / "checkpoints"
    config = TrainConfig(
        width=768,
        k=4,
        total_tokens=200_000,
        epochs=5,  # 50,000 planted tokens
        lr=8e-3,
        batch_tokens=1024,
        dead_tokens=50_000,
        shuffle_buffer_tokens=8192,
        checkpoint_every=50,
    )
    result = train_sae(
        paths, out, config, execution=TrainRun(checkpoint_dir=checkpoints, device="cpu")
    )
    sae = load_sae(out / "sae.safetensors")
    W_dec = sae.W_dec.detach().numpy()
    best_cosine = (atoms @ W_dec.T).max(axis=1)
    assert best_cosine.mean() > 0.9, best_cosine.mean()

    x = torch.from_numpy(held_out)
    with torch.no_grad():
        x_hat = sae(x).x_hat
    fve = 1 - float((x_hat - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    assert fve > 0.9, fve

    # Outputs and invariants a user relies on.
    assert np.allclose(np.linalg.norm(W_dec, axis=1), 1.0, atol=1e-5)
    assert sae.cfg.model == "planted" and sae.cfg.layer == 2
    assert sae.cfg.training["tokens_trained"] == result.tokens == 196 * 1024
    log = pq.read_table(out / "train_log.parquet")
    assert log.schema.equals(LOG_SCHEMA)
    assert log.column("step").to_pylist()[-1] == result.steps == 196
    assert log.column("fve").to_pylist()[-1] > 0.9
    assert max(log.column("l0").to_pylist()) <= 4
    assert not checkpoints.exists()  # removed once the outputs are written


def _child_script(tmp_path: Path) -> Path:
    script = tmp_path / "child.py"
    script.write_text(
        "import json, sys, time, torch\n"
        "torch.set_num_threads(1)\n"
        "from protsae.sae.train import TrainConfig, TrainRun, train_sae\n"
        "args = json.loads(sys.argv[1])\n"
        "block_at, marker = args.pop('block_at'), args.pop('marker')\n"
        "def on_step(step, tokens):\n"
        "    if step == block_at:\n"
        "        open(marker, 'w').write(str(step))\n"
        "        time.sleep(600)\n"
        "shards, out = args.pop('shards'), args.pop('out')\n"
        "run = {key: args.pop(key) for key in ('checkpoint_dir', 'device')}\n"
        "config = TrainConfig(**args)\n"
        "result = train_sae(shards, out, config, execution=TrainRun(on_step=on_step, **run))\n"
        "print(json.dumps({'resumed_from_tokens': result.resumed_from_tokens,\n"
        "                  'resumed_from_step': result.resumed_from_step}))\n"
    )
    return script


def _run_child(script: Path, args: dict, wait: bool = True) -> subprocess.Popen | dict:
    env = {**os.environ, "PYTHONPATH": str(Path(protsae.__file__).parents[1])}
    proc = subprocess.Popen(
        [sys.executable, str(script), json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    if not wait:
        return proc
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    return json.loads(stdout.strip().splitlines()[-1])


def test_sigkill_then_rerun_resumes_to_identical_weights(tmp_path: Path) -> None:
    paths, _, _ = _planted_shards(tmp_path, d=32, n_atoms=128, active=3, n_tokens=6000)
    script = _child_script(tmp_path)
    common = {
        "shards": [str(p) for p in paths],
        "width": 1024,
        "k": 4,
        "total_tokens": 40 * 256,
        "epochs": 10,
        "lr": 3e-3,
        "batch_tokens": 256,
        "dead_tokens": 768,  # AuxK active, so the dead counters must survive the restart
        "shuffle_buffer_tokens": 1000,
        "checkpoint_every": 10,
        "log_every": 3,  # not a divisor of 10: a partial log interval is checkpointed too
        "device": "cpu",
        "marker": str(tmp_path / "blocked"),
    }
    killed = {**common, "out": str(tmp_path / "run"), "checkpoint_dir": str(tmp_path / "ckpt")}
    proc = _run_child(script, {**killed, "block_at": 25}, wait=False)
    deadline = time.monotonic() + 120
    while not (tmp_path / "blocked").exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "child never reached step 25"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert (tmp_path / "ckpt" / "checkpoint.pt").is_file()
    assert not (tmp_path / "run" / "sae.safetensors").exists()

    resumed = _run_child(script, {**killed, "block_at": -1})
    assert resumed["resumed_from_step"] == 20
    assert resumed["resumed_from_tokens"] == 20 * 256

    fresh = {**common, "out": str(tmp_path / "fresh"), "checkpoint_dir": str(tmp_path / "ckpt2")}
    assert _run_child(script, {**fresh, "block_at": -1})["resumed_from_tokens"] == 0

    a = load_file(tmp_path / "run" / "sae.safetensors")
    b = load_file(tmp_path / "fresh" / "sae.safetensors")
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=0)
    log_a = pq.read_table(tmp_path / "run" / "train_log.parquet").to_pylist()
    log_b = pq.read_table(tmp_path / "fresh" / "train_log.parquet").to_pylist()
    assert [r["step"] for r in log_a] == [r["step"] for r in log_b]
    for row_a, row_b in zip(log_a, log_b, strict=True):
        assert row_a == pytest.approx(row_b, rel=1e-5, abs=1e-7)
    # AuxK was active before the checkpoint at step 20, so its dead counters had to survive.
    assert any(r["dead_fraction"] > 0 and r["auxk_loss"] > 0 for r in log_b if r["step"] <= 20)


def test_checkpoint_of_other_settings_is_not_resumed(tmp_path: Path) -> None:
    paths, _, _ = _planted_shards(tmp_path, d=16, n_atoms=32, active=2, n_tokens=2000)
    settings = dict(
        width=64,
        total_tokens=30 * 128,
        epochs=2,
        batch_tokens=128,
        shuffle_buffer_tokens=500,
        checkpoint_every=10,
    )
    where = dict(execution=TrainRun(checkpoint_dir=tmp_path / "ckpt", device="cpu"))

    def crash(step: int, tokens: int) -> None:
        if step == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_sae(
            paths,
            tmp_path / "a",
            TrainConfig(k=4, **settings),
            execution=dataclasses.replace(where["execution"], on_step=crash),
        )
    checkpoint = tmp_path / "ckpt" / "checkpoint.pt"
    saved = checkpoint.read_bytes()
    assert train_sae(paths, None, TrainConfig(k=3, **settings), **where).resumed_from_step == 0
    assert not checkpoint.exists()  # a finished run leaves no checkpoint behind
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(saved)
    assert (
        train_sae(paths, tmp_path / "a", TrainConfig(k=4, **settings), **where).resumed_from_step
        == 20
    )


def test_wrong_d_model_is_an_error(tmp_path: Path) -> None:
    paths, _, _ = _planted_shards(tmp_path, d=16, n_atoms=32, active=2, n_tokens=500)
    with pytest.raises(ValueError, match="16-d"):
        config = TrainConfig(width=64, k=4, total_tokens=100)
        train_sae(paths, None, config, execution=TrainRun(device="cpu"), d_model=32)


def test_learning_rate_schedule() -> None:
    assert default_lr(16384) == pytest.approx(2e-4)
    assert default_lr(4096) == pytest.approx(4e-4)
    lrs = [lr_at(s, 100, 1.0, warmup_steps=10, decay_fraction=0.2) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(lr == pytest.approx(1.0) for lr in lrs[10:80])
    assert all(a > b for a, b in zip(lrs[80:], lrs[81:], strict=False))
    assert lrs[-1] == pytest.approx(1 / 20)


def test_geometric_median_resists_outliers() -> None:
    torch.manual_seed(0)
    centre = torch.tensor([1.0, -2.0, 3.0])
    points = centre + 0.1 * torch.randn(1000, 3)
    points[:50] += 1000.0  # 5% far outliers drag the mean by ~50
    median = geometric_median(points)
    assert (median - centre).norm() < 0.05
    assert (points.mean(0) - centre).norm() > 40
    assert math.isfinite(float(geometric_median(torch.ones(5, 3)).sum()))


def test_nan_in_a_shard_stops_training_naming_it(tmp_path: Path) -> None:
    paths, _, _ = _planted_shards(tmp_path, d=16, n_atoms=32, active=2, n_tokens=600)
    bad = tmp_path / "shard-bad.parquet"
    x = np.ones((50, 16), dtype=np.float32)
    x[9, 5] = np.nan
    with ShardWriter(bad, 16, "float32") as writer:
        writer.add("broken", np.arange(50), x)
    with pytest.raises(ValueError, match=r"shard-bad\.parquet: row group 0: .*broken.*position 9"):
        train_sae(
            [*paths, bad],
            tmp_path / "out",
            TrainConfig(
                width=64,
                k=4,
                total_tokens=2000,
                epochs=4,
                batch_tokens=100,
                shuffle_buffer_tokens=5000,
            ),
            execution=TrainRun(device="cpu"),
        )
    assert not (tmp_path / "out" / "sae.safetensors").exists()


def test_train_config_mirrors_the_config_schema_and_reads_rule_params() -> None:
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    training = schema["properties"]["sae"]["properties"]["training"]["properties"]
    names = {spec.name for spec in dataclasses.fields(TrainConfig)}
    assert set(training) <= names, set(training) - names
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for key, spec in training.items():
        if defaults[key] is not dataclasses.MISSING:  # required fields have no default here
            assert defaults[key] == spec["default"], key

    # Values as a rule's params carry them: loosely typed, with keys that are not training's.
    params = {"width": "64", "k": 4.0, "total_tokens": 1000, "lr": None, "auxk": "8"}
    params |= {"bf16": 0, "seed": "3", "model_name": "m", "checkpoint_dir": "x"}
    config = TrainConfig.from_mapping(params)
    assert config == TrainConfig(width=64, k=4, total_tokens=1000, auxk=8, seed=3)
    assert isinstance(config.width, int) and config.lr is None and config.bf16 is False


def test_one_pass_budget_and_the_epoch_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    paths, _, _ = _planted_shards(tmp_path, d=16, n_atoms=32, active=2, n_tokens=1000)
    common = dict(width=64, k=4, batch_tokens=128, shuffle_buffer_tokens=500, dead_tokens=600)
    logger = logging.getLogger("test_sae_train.budget")  # propagates to caplog's handler
    run = dict(execution=TrainRun(device="cpu"), logger=logger)
    with caplog.at_level(logging.INFO, logger=logger.name):
        one_pass = train_sae(paths, tmp_path / "a", TrainConfig(**common), **run)
    # total_tokens None: as many full batches as the 1000 cached tokens hold, none seen twice.
    assert one_pass.steps == 1000 // 128 and one_pass.tokens == 896
    training = json.loads((tmp_path / "a" / "sae.json").read_text())["training"]
    assert training["total_tokens"] is None and training["tokens_per_epoch"] == 1000
    assert training["epochs"] == pytest.approx(0.896)
    assert "0.90 epoch(s) over 1,000 cached tokens" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    assert training["max_epochs"] == 1

    # One pass means one pass: a budget beyond the data needs sae.training.epochs set ...
    with pytest.raises(ValueError, match=r"2\.56 passes .* 1,000 cached .* set epochs >= 3"):
        train_sae(paths, tmp_path / "c", TrainConfig(total_tokens=2500, **common), **run)
    assert not (tmp_path / "c" / "sae.json").exists()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=logger.name):
        config = TrainConfig(total_tokens=2500, epochs=3, **common)
        longer = train_sae(paths, tmp_path / "b", config, **run)
    assert longer.steps == 20  # ceil(2500 / 128) ... and the repeat is said
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("2.56 epoch(s)" in message for message in warnings), warnings
    training = json.loads((tmp_path / "b" / "sae.json").read_text())["training"]
    assert training["epochs"] == pytest.approx(2.56) and training["total_tokens"] == 2500
    assert training["max_epochs"] == 3
    # With no budget, epochs passes: 2 x 1000 tokens = 15 full batches of 128.
    two = train_sae(paths, tmp_path / "d", TrainConfig(epochs=2, **common), **run)
    assert two.steps == 2000 // 128


def _with_planted_dead_latents(dead: list[int]) -> type[TopKSAE]:
    """TopKSAE whose latents ``dead`` start with tiny encoder columns: their pre-activation is
    positive on some tokens but never among the top k, so no reconstruction gradient reaches
    them. Only AuxK (which trains dead latents on the residual) can bring them back."""

    class Planted(TopKSAE):
        def __init__(self, cfg: SAEConfig, seed: int | None = None) -> None:
            super().__init__(cfg, seed=seed)
            with torch.no_grad():
                self.W_enc[:, dead] *= 0.01

    return Planted


@pytest.mark.parametrize("seed", [0, 1])
def test_auxk_revives_planted_dead_latents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    paths, _, _ = _planted_shards(tmp_path, d=16, n_atoms=48, active=3, n_tokens=4000)
    planted = list(range(0, 64, 4))  # 16 of 64 latents
    monkeypatch.setattr(train_module, "TopKSAE", _with_planted_dead_latents(planted))
    common = dict(
        width=64,
        k=3,
        total_tokens=300 * 128,
        epochs=40,
        lr=5e-3,
        batch_tokens=128,
        dead_tokens=1024,
        shuffle_buffer_tokens=2000,
        seed=seed,
    )
    dead = {}
    for auxk in (0, None):  # 0: AuxK off; None: on, with k_aux = d_model / 2
        result = train_sae(
            paths, None, TrainConfig(auxk=auxk, **common), execution=TrainRun(device="cpu")
        )
        dead[auxk] = result.sae.cfg.training["dead_latents_train"]
        assert result.sae.cfg.training["dead_fraction_train"] == dead[auxk] / 64
    assert dead[0] >= len(planted)  # without AuxK the planted latents never come back
    assert dead[None] < dead[0]
    assert dead[None] < len(planted) // 2


def test_dead_fraction_train_is_null_for_runs_shorter_than_dead_tokens(tmp_path: Path) -> None:
    paths, _, _ = _planted_shards(tmp_path, d=16, n_atoms=32, active=2, n_tokens=1000)
    config = TrainConfig(width=64, k=4, total_tokens=512, batch_tokens=128, dead_tokens=600)
    training = train_sae(paths, None, config, execution=TrainRun(device="cpu")).sae.cfg.training
    assert training["dead_fraction_train"] is None and training["dead_latents_train"] is None


def test_second_trainer_on_one_checkpoint_folder_fails_naming_the_first(tmp_path: Path) -> None:
    """After `kill -9 snakemake` its trainer runs on; a rerun's trainer must not resume from
    the checkpoint that one is still writing."""
    paths, _, _ = _planted_shards(tmp_path, d=16, n_atoms=32, active=2, n_tokens=2000)
    settings = {
        "width": 64,
        "k": 2,
        "total_tokens": 40 * 128,
        "epochs": 3,
        "batch_tokens": 128,
        "shuffle_buffer_tokens": 500,
        "checkpoint_every": 5,
    }
    first = {
        **settings,
        "shards": [str(p) for p in paths],
        "out": str(tmp_path / "run"),
        "checkpoint_dir": str(tmp_path / "ckpt"),
        "device": "cpu",
        "marker": str(tmp_path / "blocked"),
        "block_at": 12,
    }
    proc = _run_child(_child_script(tmp_path), first, wait=False)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "blocked").exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "child never reached step 12"
            time.sleep(0.05)
        with pytest.raises(LockHeld, match=f"pid {proc.pid} on "):
            train_sae(
                paths,
                tmp_path / "second",
                TrainConfig(**settings),
                execution=TrainRun(checkpoint_dir=tmp_path / "ckpt", device="cpu"),
            )
        assert not (tmp_path / "second").exists()
    finally:
        proc.kill()
        proc.communicate()
    result = train_sae(
        paths,
        tmp_path / "second",
        TrainConfig(**settings),
        execution=TrainRun(checkpoint_dir=tmp_path / "ckpt"),
    )
    assert result.resumed_from_step == 10  # the first one's last checkpoint, now free
