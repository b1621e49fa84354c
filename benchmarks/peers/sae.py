"""TopK SAE training on CPU: protsae against EleutherAI's sparsify and dictionary-learning.

Run by ``make bench-peers`` in .venv-peers (tools/setup_peers.sh), where protsae and the pinned
peers (benchmarks/peers/requirements-sae.txt) share one torch. Every implementation starts
from protsae's initial weights (tied encoder, unit-norm decoder, b_dec at the geometric median
of the first batch), copied into the peer's layout, and trains at the same constant rate on
the same planted batches; each round runs one step of each, in rotating order. Each peer step
is what its own trainer does per batch:

- sparsify (eai-sparsify): ``SparseCoder`` forward (its fused encoder, fvu loss), backward,
  ``remove_gradient_parallel_to_decoder_directions``, ``torch.optim.Adam`` as its trainer
  builds it, and the decoder renormalised at the start of each step.
- dictionary-learning: ``TopKTrainer.update`` (dense latents, l2 loss, AuxK, parallel-gradient
  removal, gradient clipping at norm 1, Adam, renormalisation), with warm-up 0.

Prints per-round time ratios peer/protsae (min, median, max), each final held-out MSE (they
must agree: they optimise the same objective from the same start) and the load average.
A peer that did not install or import is reported, not skipped.

    .venv-peers/bin/python benchmarks/peers/sae.py [--quick]   # --quick: 2 rounds, not 8
"""

from __future__ import annotations

import sys
import traceback
from importlib import metadata
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import Interleaved, load_line, planted_batches, tier_parser  # noqa: E402

from protsae.sae.model import SAEConfig, TopKSAE  # noqa: E402
from protsae.sae.step import keep_freed_memory, make_optimizer, train_step  # noqa: E402
from protsae.sae.train import geometric_median  # noqa: E402

SHAPES = ((320, 16384, 64), (1280, 10240, 64))
MSE_AGREEMENT = 0.02  # relative; the peers' losses and clipping differ in detail, not in aim


def install_problem(environment: str) -> str | None:
    """What tools/setup_peers.sh recorded when a peer failed to install, if it did."""
    failed = Path(sys.prefix) / ".install-failed"
    if Path(sys.prefix).name == environment and failed.is_file():
        return failed.read_text().strip()
    return None


class Protsae:
    name = "protsae"

    def __init__(self, init: TopKSAE, lr: float) -> None:
        self.model = TopKSAE(init.cfg)
        self.model.load_state_dict(init.state_dict())
        self.optimizer = make_optimizer(self.model, lr)
        self.lr = lr

    def step(self, x: torch.Tensor) -> None:
        train_step(self.model, self.optimizer, x, None, self.lr)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).x_hat


class Sparsify:
    name = "sparsify"

    def __init__(self, init: TopKSAE, lr: float) -> None:
        from sparsify import SparseCoder, SparseCoderConfig

        d, width, k = init.cfg.d_model, init.cfg.width, init.cfg.k
        self.model = SparseCoder(d, SparseCoderConfig(num_latents=width, k=k))
        with torch.no_grad():
            self.model.encoder.weight.copy_(init.W_enc.t())
            self.model.encoder.bias.copy_(init.b_enc)
            self.model.W_dec.copy_(init.W_dec)
            self.model.b_dec.copy_(init.b_dec)
        self.optimizer = torch.optim.Adam([{"params": self.model.parameters(), "lr": lr}])

    def step(self, x: torch.Tensor) -> None:
        self.model.set_decoder_norm_to_unit_norm()
        out = self.model(x)
        out.fvu.backward()
        self.model.remove_gradient_parallel_to_decoder_directions()
        self.optimizer.step()
        self.optimizer.zero_grad()

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).sae_out


class DictionaryLearning:
    name = "dictionary-learning"

    def __init__(self, init: TopKSAE, lr: float, steps: int) -> None:
        from dictionary_learning.trainers.top_k import TopKTrainer

        d, width, k = init.cfg.d_model, init.cfg.width, init.cfg.k
        self.trainer = TopKTrainer(
            steps=steps + 2, activation_dim=d, dict_size=width, k=k, layer=0,
            lm_name="bench", lr=lr, warmup_steps=0, device="cpu",
        )  # fmt: skip
        ae = self.trainer.ae
        with torch.no_grad():
            ae.encoder.weight.copy_(init.W_enc.t())
            ae.encoder.bias.copy_(init.b_enc)
            ae.decoder.weight.copy_(init.W_dec.t())
            ae.b_dec.copy_(init.b_dec)
        self.position = 1  # update(0, x) would replace b_dec by its own median of x

    def step(self, x: torch.Tensor) -> None:
        self.trainer.update(self.position, x)
        self.position += 1

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.trainer.ae(x)


def compare(d: int, width: int, k: int, batch: int, rounds: int) -> list[str]:
    """One shape: interleaved steps of every peer that loads; returns the failure lines."""
    batches, held_out = planted_batches(rounds + 1, batch, d, 4 * width, k // 2, seed=0)
    init = TopKSAE(SAEConfig(d_model=d, width=width, k=k), seed=0)
    with torch.no_grad():
        init.b_dec.copy_(geometric_median(batches[0]))
    lr = 2e-4 / (width / 16384) ** 0.5 * 4  # a few steps: a larger rate so MSE moves visibly
    contenders = {"protsae": Protsae(init, lr)}
    failures = []
    for build in (
        lambda: Sparsify(init, lr),
        lambda: DictionaryLearning(init, lr, rounds + 1),
    ):
        try:
            peer = build()
        except Exception as err:  # a peer that does not import or build is reported
            failures.append(f"{err.__class__.__name__}: {err}")
            traceback.print_exc(limit=2)
            continue
        contenders[peer.name] = peer

    def stepper(contender):
        position = iter(range(len(batches)))
        return lambda: contender.step(batches[next(position)])

    timing = Interleaved({name: stepper(c) for name, c in contenders.items()})
    timing.run(rounds=rounds, warmup=1)
    with torch.no_grad():
        mse_init = float((init(held_out).x_hat - held_out).pow(2).mean())
    mses = {name: float((c.reconstruct(held_out) - held_out).pow(2).mean()) for name, c in contenders.items()}  # fmt: skip
    print(
        f"\nd={d} width={width} k={k}: {batch}-token steps, {rounds} rounds after 1 warm-up; "
        f"{timing.load()}"
    )
    for name in contenders:
        line = f"  {name:20s} step {timing.times(name)}  held-out MSE {mses[name]:.6f}"
        if name != "protsae":
            agreement = abs(mses[name] - mses["protsae"]) / mses["protsae"]
            verdict = "agree" if agreement <= MSE_AGREEMENT else "DISAGREE"
            line += (
                f" ({agreement:.1e} from protsae's: {verdict});  {name}/protsae time "
                f"{timing.ratio_line(name, 'protsae')}"
            )
        print(line)
    print(f"  (held-out MSE at the common start: {mse_init:.6f})")
    return failures


def main() -> None:
    parser = tier_parser(__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, help="timed steps per shape (quick 2, full 8)")
    args = parser.parse_args()
    rounds = args.rounds or (2 if args.quick else 8)
    keep_freed_memory()  # what protsae's train_sae does on CPU; applies to the peers alike
    print(f"SAE training peers on CPU, {torch.get_num_threads()} threads; {load_line()}")
    problem = install_problem(".venv-peers")
    if problem:
        print(f"  the SAE peers did not install (tools/setup_peers.sh):\n{problem}")
    versions = []
    for package in ("eai-sparsify", "dictionary-learning", "torch"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} NOT INSTALLED")
    print("  " + ", ".join(versions))
    failures = []
    for d, width, k in SHAPES:
        failures += compare(d, width, k, 4096, rounds)
    for failure in dict.fromkeys(failures):
        print(f"  PEER NOT RUN: {failure}")


if __name__ == "__main__":
    main()
