"""The cost plan's shared types and unit formulas: model shapes, GPUs, the stated assumptions,
one stage's compute and the plan ``protsae plan`` prints."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protsae.config import SaeSpec, hf_model, is_checkpoint_path, model_name

#: Rules whose job count is only known after the ``latent_families`` checkpoint: the plan gives
#: an upper bound, and a dry run from scratch does not list them.
CHECKPOINT_BOUNDED = frozenset({"steering_blastdb", "steering_homologs", "steer_latent"})


#: fair-esm's ESM-2 models: (transformer layers, embedding width, attention heads).
ESM2_SHAPES = {
    "esm2_t6_8M_UR50D": (6, 320, 20),
    "esm2_t12_35M_UR50D": (12, 480, 20),
    "esm2_t30_150M_UR50D": (30, 640, 20),
    "esm2_t33_650M_UR50D": (33, 1280, 20),
    "esm2_t36_3B_UR50D": (36, 2560, 40),
    "esm2_t48_15B_UR50D": (48, 5120, 40),
}


ESM2_VOCAB = 33


@dataclass(frozen=True)
class Gpu:
    """Peak dense throughput (FLOP/s) of one accelerator, from its vendor's data sheet."""

    name: str
    bf16: float
    fp32: float


GPUS = {
    "h100": Gpu("NVIDIA H100 SXM", 989e12, 67e12),
    "h200": Gpu("NVIDIA H200", 989e12, 67e12),
    "a100": Gpu("NVIDIA A100 SXM", 312e12, 19.5e12),
    "l40s": Gpu("NVIDIA L40S", 362e12, 91.6e12),
    "v100": Gpu("NVIDIA V100 SXM2", 125e12, 15.7e12),
    # No GPU: every stage runs in float32 on the CPU. Not a data-sheet peak: at the default 40%
    # utilisation it prices a 2-core laptop at 50 GFLOP/s, about what protsae's ESM-2 extraction
    # sustained on the 2-core development machine (benchmarks/bench_extraction.py, 6 x 320 model).
    "cpu": Gpu("2-core CPU, float32 (no GPU)", 125e9, 125e9),
}


@dataclass
class Assumptions:
    """The numbers the plan cannot read from the config; every one is printed with the plan."""

    gpu: str = "a100"
    utilization: float = 0.4  # fraction of peak FLOP/s a job sustains
    mean_length: float | None = None  # residues per sampled sequence (None: measure or 300)
    eval_sequences: int | None = None  # Swiss-Prot cluster representatives (None: measure or 150k)
    python_mb: float = 700.0  # a job's baseline RSS: python, torch, pyarrow imported
    concepts: int = 300  # residue concepts with concepts.min_proteins train proteins
    notes: list[str] = field(default_factory=list)


DEFAULT_MEAN_LENGTH = 300.0  # UniRef50 below 1022 residues: ~300M residues per 1M sequences


DEFAULT_EVAL_SEQUENCES = 150_000


ACTIVATION_ROW_OVERHEAD = 6  # bytes per stored residue besides the vector: pos + id run (lz4)


@dataclass(frozen=True)
class ModelShape:
    """An ESM-2 model's shape: what the FLOP and memory estimates need."""

    name: str
    layers: int
    d_model: int

    @property
    def params(self) -> int:
        """Parameters: 12 d^2 per layer (attention 4 d^2, 4x feed-forward 8 d^2) plus embeddings."""
        return self.layers * 12 * self.d_model**2 + 2 * ESM2_VOCAB * self.d_model

    def flops_per_token(self, layers: int, length: float) -> float:
        """Forward FLOPs per token through ``layers`` layers for sequences of ``length`` tokens."""
        return layers * (24 * self.d_model**2 + 4 * length * self.d_model)


def model_shape(esm: dict[str, Any]) -> ModelShape:
    """The ESM-2 shape of the config's model (random init, a fair-esm name, or a checkpoint file)."""
    name = model_name(esm)
    built_here = esm.get("random_init") or esm.get("pretrain")
    if built_here:
        return ModelShape(name, int(built_here["layers"]), int(built_here["embed_dim"]))
    stem = Path(esm["model"]).stem
    if stem in ESM2_SHAPES:  # fair-esm names, and hub ids like hf:facebook/esm2_t6_8M_UR50D
        layers, dim, _ = ESM2_SHAPES[stem]
        return ModelShape(name, layers, dim)
    hub_or_folder = hf_model(esm["model"])
    if hub_or_folder is not None:
        from protsae.huggingface import HfModelError, inspect

        try:
            shape = inspect(hub_or_folder, "resources/downloads")
        except HfModelError as err:
            raise ValueError(str(err)) from None
        return ModelShape(name, shape.layers, shape.embed_dim)
    if is_checkpoint_path(esm["model"]) and Path(esm["model"]).is_file():
        import torch

        cfg = torch.load(esm["model"], map_location="cpu", weights_only=False)["cfg"]["model"]
        return ModelShape(name, int(cfg.encoder_layers), int(cfg.encoder_embed_dim))
    raise ValueError(f"config key esm.model: cannot tell the shape of {esm['model']!r}")


@dataclass
class SequenceSample:
    """The sampled training sequences: count, residues, and their split into shards/hold-out."""

    n: int
    residues: float
    residues_sq: float  # sum of squared lengths (+2 for BOS/EOS), for attention FLOPs
    holdout_n: int
    holdout_residues: float
    stored_tokens: float  # residues kept in the activation shards of one layer
    measured: bool


def sae_file_bytes(shape: ModelShape, spec: SaeSpec) -> int:
    """``sae.safetensors``: W_enc, W_dec, b_enc, b_dec in float32, plus a small header."""
    return 4 * (2 * shape.d_model * spec.width + spec.width + shape.d_model) + 1024


def distinct_latents(spec: SaeSpec, length: float) -> float:
    """Expected distinct latents active in a sequence of ``length`` residues.

    Latents repeat along a sequence, so ``length`` residues with ``k`` latents each act like
    about sqrt(length) independent draws of ``k`` (calibrated on the demo's SAEs, where it is
    within 25% of the measured count); a sequence can never show more than ``width``.
    """
    return spec.width * (1 - (1 - spec.k / spec.width) ** math.sqrt(max(length, 1.0)))


def seq_stats_rows(spec: SaeSpec, n_eval: int, mean_length: float) -> float:
    """(latent, sequence) pairs with any activation on the evaluation set."""
    return n_eval * distinct_latents(spec, mean_length)


def activation_bytes(tokens: float, shape: ModelShape, dtype: str) -> float:
    """Bytes of one layer's activation shards: the vectors plus the id/pos columns."""
    itemsize = 2 if dtype == "float16" else 4
    return tokens * (shape.d_model * itemsize + ACTIVATION_ROW_OVERHEAD)


def ceil_div(a: float, b: float) -> int:
    return int(math.ceil(a / b))


def training_tokens(config: dict[str, Any], sample: SequenceSample) -> float:
    """Tokens each SAE trains on: ``sae.training.total_tokens``, or null = ``epochs`` passes
    over the layer's cached training tokens."""
    total = config["sae"]["training"]["total_tokens"]
    epochs = float(config["sae"]["training"].get("epochs", 1))
    return float(total) if total is not None else epochs * sample.stored_tokens


@dataclass
class Stage:
    """One stage's compute: jobs, FLOPs and GPU-hours at the assumed throughput."""

    rule: str
    jobs: int
    flops: float
    precision: str  # which peak applies: bf16 (ESM under autocast) or fp32
    gpu_hours: float = 0.0
    cpu_hours: float = 0.0  # CPU-only work of the stage (BLAST, Clustal Omega), rough


@dataclass
class Plan:
    """Everything ``protsae plan`` prints; :meth:`to_dict` is its ``--json``."""

    model: ModelShape
    jobs: dict[str, int]
    tokens: dict[str, float]
    stages: list[Stage]
    extraction_alternative: dict[str, float]
    disk: dict[str, float]
    disk_extra: dict[str, float]
    memory: list[dict[str, Any]]
    assumptions: dict[str, Any]

    @property
    def disk_total(self) -> float:
        return sum(self.disk.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": {
                "name": self.model.name,
                "layers": self.model.layers,
                "d_model": self.model.d_model,
                "params": self.model.params,
            },
            "jobs": self.jobs,
            "total_jobs": sum(self.jobs.values()),
            "tokens": self.tokens,
            "stages": [vars(s) for s in self.stages],
            "gpu_hours_total": sum(s.gpu_hours for s in self.stages),
            "cpu_hours_total": sum(s.cpu_hours for s in self.stages),
            "jobs_upper_bound": sorted(CHECKPOINT_BOUNDED & set(self.jobs)),
            "extraction_alternative": self.extraction_alternative,
            "disk_bytes": self.disk,
            "disk_bytes_total": self.disk_total,
            "disk_bytes_other": self.disk_extra,
            "memory": self.memory,
            "assumptions": self.assumptions,
        }
