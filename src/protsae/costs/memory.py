"""Peak memory per job for ``protsae plan``: estimates against the ``mem_mb`` a run requests.

``mem_mb`` comes from the rules (``workflow/rules/*.smk``, where the GPU rules state it) unless
the SLURM profile's ``set-resources`` overrides it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protsae.config import PASS_PREFIX, extraction_jobs, pass_rule_name
from protsae.costs.jobs import sae_grid

if TYPE_CHECKING:
    from protsae.costs.types import Assumptions, ModelShape, SequenceSample

_REPO = Path(__file__).resolve().parents[3]  # a checkout's root (absent from a wheel install)


def rule_mem_mb(rules_dir: str | os.PathLike[str] | None = None) -> dict[str, int]:
    """``mem_mb`` each rule declares in ``workflow/rules/*.smk`` (where GPU rules state it)."""
    import re

    folder = Path(rules_dir) if rules_dir else _REPO / "workflow" / "rules"
    out: dict[str, int] = {}
    for path in sorted(folder.glob("*.smk")) if folder.is_dir() else []:
        blocks = re.split(r"^(?:rule|checkpoint)\s+(\w+):", path.read_text(), flags=re.M)
        for name, body in zip(blocks[1::2], blocks[2::2], strict=True):
            match = re.search(r"\bmem_mb\s*=\s*(\d+)", body)
            if match:
                out[name] = int(match.group(1))
    return out


def profile_mem_mb(
    profile: str | os.PathLike[str] | None = None, rules_dir: str | os.PathLike[str] | None = None
) -> dict[str, int]:
    """``mem_mb`` per rule as a SLURM run gets it: the rule's own, unless the profile's
    ``set-resources`` overrides it; ``default`` (the profile's default-resources) for the rest."""
    import yaml

    out = rule_mem_mb(rules_dir)
    path = Path(profile) if profile else _REPO / "profiles" / "slurm" / "config.yaml"
    if not path.is_file():
        return out
    data = yaml.safe_load(path.read_text()) or {}
    default = (data.get("default-resources") or {}).get("mem_mb")
    if default is not None:
        out["default"] = int(default)
    for rule, res in (data.get("set-resources") or {}).items():
        if isinstance(res, dict) and "mem_mb" in res:
            out[rule] = int(res["mem_mb"])
    return out


def job_memory(
    config: dict,
    shape: ModelShape,
    sample: SequenceSample,
    assume: Assumptions,
    profile: dict[str, int],
    esm_jobs: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Estimated peak host RSS (MB) of the heaviest job of each ESM/SAE rule vs the profile;
    ``esm_jobs``: further rules that load the model, with the MB they hold besides it."""
    mb = 1e6
    trained, imported = sae_grid(config)
    widest = max((s.width for s in trained + imported), default=0)
    d, batch = shape.d_model, config["esm"]["max_tokens_per_batch"]
    model = shape.params * 4 * 2 / mb  # the checkpoint's tensors and the model's
    forward = batch * d * 4 * 8 / mb  # hidden states, attention and 4x feed-forward buffers
    sae = 4 * (2 * d * widest) / mb
    sample_mb = sample.n * (sample.residues / max(1, sample.n) + 80) / mb
    training = config["sae"]["training"]
    base = assume.python_mb
    rows = {
        "extract_activations": base + model + forward + sample_mb + 2 * 64,
        "train_sae": base
        + training["shuffle_buffer_tokens"] * d * 4 / mb
        + 2 * 64
        + 4 * sae
        + training["batch_tokens"] * widest * 4 * 3 / mb,
        "evaluate_sae": base + model + forward + sae + sample_mb,
        "latent_stats": base + model + forward + sae + (1 << 20) * 16 / mb + (1 << 18) * 80 / mb,
        # two int32 count arrays of splits x width x concepts x thresholds, plus their F1 chunks
        "latent_concepts": base
        + model
        + forward
        + sae
        + 2 * 2 * widest * assume.concepts * len(config["concepts"]["thresholds"]) * 4 / mb,
    }
    groups, lone = extraction_jobs(config, {s.layer for s in trained})
    single = rows.pop("extract_activations")
    extraction = {"extract_activations": single} if lone or not groups else {}
    for group in groups:  # each kept layer's residue stream per batch, and its shard's writer
        extraction[pass_rule_name(group)] = single + len(group) * (forward / 8 + 128)
    rows = extraction | rows
    for rule, held in (esm_jobs or {}).items():
        rows[rule] = base + model + forward + held
    out = []
    for rule, need in rows.items():
        # a pass rule is made in a loop (activations.smk) and states extract_activations' mem_mb
        fallback = "extract_activations" if rule.startswith(PASS_PREFIX) else "default"
        limit = profile.get(rule, profile.get(fallback, profile.get("default")))
        out.append(
            {
                "rule": rule,
                "estimated_mb": round(need),
                "profile_mem_mb": limit,
                "fits": None if not limit else need <= limit,
            }
        )
    return out
