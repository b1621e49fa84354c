"""``protsae plan``'s readable table (``--json`` prints :meth:`protsae.costs.types.Plan.to_dict`)."""

from __future__ import annotations

from protsae.costs.types import CHECKPOINT_BOUNDED, Plan


def human_bytes(n: float) -> str:
    """1.2 GB style, decimal units (what disk quotas and `df -H` print)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(
            str(c).rjust(w) if i else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    return [line(header), line(["-" * w for w in widths]), *map(line, rows)]


def format_plan(plan: Plan, config_name: str = "") -> str:
    """The plan as aligned text tables."""
    m = plan.model
    a = plan.assumptions
    bounded = CHECKPOINT_BOUNDED & set(plan.jobs)
    out = [
        f"plan for {config_name or 'config'}: model {m.name} ({m.layers} layers, d_model "
        f"{m.d_model}, {m.params / 1e6:.1f}M parameters)",
        "",
        "jobs per rule",
        *_table(
            ["rule", "jobs"],
            [[r, f"<= {n}" if r in CHECKPOINT_BOUNDED else str(n)] for r, n in plan.jobs.items()]
            + [["total", f"{'<= ' if bounded else ''}{sum(plan.jobs.values())}"]],
        ),
        *(
            [
                "(<= : fans out over the family-specific latents latent_families finds, at most "
                "steering.max_latents per SAE)"
            ]
            if bounded
            else []
        ),
        "",
        "tokens",
        *_table(
            ["quantity", "value"],
            [[k, f"{v:,.0f}" if v >= 100 else f"{v:.3g}"] for k, v in plan.tokens.items()],
        ),
        "",
        f"compute on {a['gpu']} at {a['utilization']:.0%} of peak "
        f"({a['peak_bf16_tflops']:g} TFLOP/s bf16, {a['peak_fp32_tflops']:g} fp32)",
        *_table(
            ["stage", "jobs", "FLOPs", "precision", "GPU-hours", "CPU-hours"],
            [
                [
                    s.rule,
                    str(s.jobs),
                    f"{s.flops:.3g}",
                    s.precision,
                    f"{s.gpu_hours:.3g}",
                    f"{s.cpu_hours:.3g}" if s.cpu_hours else "-",
                ]
                for s in plan.stages
            ]
            + [
                [
                    "total",
                    "",
                    f"{sum(s.flops for s in plan.stages):.3g}",
                    "",
                    f"{sum(s.gpu_hours for s in plan.stages):.3g}",
                    f"{sum(s.cpu_hours for s in plan.stages):.3g}",
                ]
            ],
        ),
    ]
    out += _extraction_and_storage(plan)
    if a["notes"]:
        out += ["", "assumptions:", *[f"  - {n}" for n in a["notes"]]]
    return "\n".join(out) + "\n"


def _extraction_and_storage(plan: Plan) -> list[str]:
    alt = plan.extraction_alternative
    return [
        "",
        "extraction: per-layer early exit, one pass for all layers, as configured (layer_passes)",
        *_table(
            ["scheme", "layer passes/sequence", "FLOPs", "GPU-hours"],
            [
                [label, f"{alt[f'layer_passes_per_sequence_{key}']:g}"]
                + [f"{alt[f'{prefix}_flops']:.3g}", f"{alt[f'{prefix}_gpu_hours']:.3g}"]
                for label, key, prefix in (
                    ("per-layer early exit (every layer)", "early_exit", "per_layer_early_exit"),
                    ("one multi-layer pass (all layers)", "multi_layer", "multi_layer_pass"),
                    ("configured (layer_passes)", "configured", "configured"),
                )
            ],
        ),
        "",
        "disk under results/",
        *_table(
            ["intermediate", "bytes"],
            [[k, human_bytes(v)] for k, v in plan.disk.items()]
            + [["total", human_bytes(plan.disk_total)]],
        ),
        *[f"  {k}: {human_bytes(v)}" for k, v in plan.disk_extra.items()],
        "",
        "peak host memory per job (estimate) vs the mem_mb a run requests (rule or profile)",
        *_table(
            ["rule", "estimate MB", "mem_mb", "fits"],
            [
                [
                    r["rule"],
                    str(r["estimated_mb"]),
                    str(r["profile_mem_mb"] or "-"),
                    {True: "yes", False: "NO", None: "-"}[r["fits"]],
                ]
                for r in plan.memory
            ],
        ),
    ]
