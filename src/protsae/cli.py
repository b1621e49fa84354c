"""The ``protsae`` command: ``protsae encode`` (your proteins through a trained SAE),
``protsae plan`` (what a config will cost before it runs), ``protsae findings`` (what a
finished run found, from its tables) and ``protsae clean`` (outputs an earlier grid left in
``results``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _encode_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "encode",
        help="per-residue SAE latents of the proteins in a FASTA file",
        description="Run the proteins of FASTA through ESM-2 and a trained or imported SAE; "
        "write OUT.parquet (id, position, latent, value), OUT.tsv (strongest latents per "
        "sequence, annotated) and with --html one page per sequence under OUT/.",
    )
    p.add_argument("fasta", help="FASTA file (plain or gzipped)")
    p.add_argument(
        "--sae", required=True, help="SAE folder, e.g. results/sae/{model}/L{layer}/k{k}-w{width}"
    )
    p.add_argument("-o", "--out", required=True, help="output prefix: OUT.parquet, OUT.tsv, OUT/")
    p.add_argument(
        "--results", help="results folder with latents/ and browser/ (default: the SAE's own)"
    )
    p.add_argument(
        "--model",
        help="ESM-2 checkpoint path, fair-esm name, hf:<hub id> (converted by the workflow) or "
        "a save_pretrained folder (default: the one sae.json records); refused when its layers "
        "or sha256 differ from the SAE's",
    )
    p.add_argument(
        "--force-model",
        action="store_true",
        help="encode with --model even when it is not the ESM-2 the SAE was trained on (warns)",
    )
    p.add_argument("--html", action="store_true", help="write one static page per sequence")
    p.add_argument(
        "--html-latent", type=int, help="latent colouring every page (default: strongest)"
    )
    p.add_argument("--skip-long", action="store_true", help="skip sequences > 1022 (default: crop)")
    p.add_argument("--top", type=int, default=10, help="latents per sequence in OUT.tsv")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1")
    p.add_argument("--max-tokens-per-batch", type=int, default=4096)


def _run_encode(args: argparse.Namespace) -> int:
    from protsae.encoding.run import encode
    from protsae.encoding.types import EncodeOptions

    options = EncodeOptions(
        results=args.results,
        model=args.model,
        force_model=args.force_model,
        html=args.html,
        html_latent=args.html_latent,
        skip_long=args.skip_long,
        top=args.top,
        device=args.device,
        max_tokens_per_batch=args.max_tokens_per_batch,
    )
    result = encode(args.fasta, args.sae, args.out, options)
    print(
        f"{result.n_sequences} sequences, {result.n_rows} active (residue, latent) pairs: "
        f"{result.parquet}, {result.tsv}" + (f", {result.html_dir}/" if result.html_dir else "")
    )
    return 0


def _plan_parser(sub: argparse._SubParsersAction) -> None:
    from protsae.costs.types import GPUS

    p = sub.add_parser(
        "plan",
        help="jobs, tokens, FLOPs, GPU-hours, disk and memory of a config, before it runs",
        description="Validate CONFIG like the workflow does and estimate what running it costs. "
        "Assumptions (GPU, utilization, lengths) are printed and can be overridden.",
    )
    p.add_argument(
        "config", nargs="?", default="config/demo.yaml", help="config YAML (default: %(default)s)"
    )
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument(
        "--gpu", default="a100", choices=sorted(GPUS), help="GPU whose peak throughput is assumed"
    )
    p.add_argument(
        "--utilization", type=float, default=0.4, help="fraction of peak sustained (default 0.4)"
    )
    p.add_argument(
        "--mean-length",
        type=float,
        help="mean residues per sampled sequence (default: measured or 300)",
    )
    p.add_argument(
        "--eval-sequences",
        type=int,
        help="Swiss-Prot cluster representatives (default: counted or 150000)",
    )
    p.add_argument(
        "--profile", help="SLURM profile config.yaml with mem_mb (default: profiles/slurm)"
    )
    p.add_argument("--schema", help="config schema (default: the one the workflow uses)")


def _run_plan(args: argparse.Namespace) -> int:
    import json

    from protsae.config import ConfigError, load_config, schema_path
    from protsae.costs.plan import build_plan
    from protsae.costs.report import format_plan
    from protsae.costs.types import Assumptions

    try:
        config = load_config(args.config, args.schema or schema_path())
    except ConfigError as err:
        print(err, file=sys.stderr)  # the file, then the same lines the workflow stops with
        return 1
    except OSError as err:
        raise FileNotFoundError(f"{args.config}: cannot read the config ({err.strerror})") from None
    assume = Assumptions(
        gpu=args.gpu,
        utilization=args.utilization,
        mean_length=args.mean_length,
        eval_sequences=args.eval_sequences,
    )
    plan = build_plan(config, assume, args.profile)
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2, default=str))
    else:
        print(format_plan(plan, args.config), end="")
    return 0


def _clean_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "clean",
        help="remove outputs of an earlier grid that the config no longer makes",
        description="List (--dry-run) or remove the files under the config's results folder "
        "that a rule of the workflow makes but the config's current DAG does not: SAEs, "
        "layers, probe tasks or steered latents an earlier config had. Files no rule makes "
        "(report.html, checkpoints, your own) are never touched. Run from the checkout.",
    )
    p.add_argument(
        "config", nargs="?", default="config/demo.yaml", help="config YAML (default: %(default)s)"
    )
    p.add_argument("--dry-run", "-n", action="store_true", help="list, remove nothing")
    p.add_argument("--snakefile", default="Snakefile", help="default: %(default)s")


def _run_clean(args: argparse.Namespace) -> int:
    from protsae.clean import DagNotFinal, remove_stale, stale_outputs, workflow_products
    from protsae.config import ConfigError, load_config, schema_path

    try:
        results = load_config(args.config, schema_path())["results"]
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 1
    if not Path(args.snakefile).is_file():
        raise FileNotFoundError(f"{args.snakefile}: no Snakefile here; run from the checkout")
    try:
        stale = stale_outputs(results, workflow_products(args.snakefile, args.config))
    except DagNotFinal as err:
        print(f"protsae clean: {err}", file=sys.stderr)
        return 1
    if not stale:
        print(f"{results}: nothing to clean; every output there is made by {args.config}")
        return 0
    verb = "would remove" if args.dry_run else "removing"
    print(f"{results}: {verb} {len(stale)} files that {args.config} no longer makes:")
    for path in stale:
        print(f"  {path}")
    if args.dry_run:
        print("(dry run: nothing removed; run without --dry-run to remove them)")
    else:
        emptied = remove_stale(stale, results)
        print(f"removed {len(stale)} files and {len(emptied)} emptied folders")


def _findings_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "findings",
        help="what a finished run found, computed from its tables",
        description="Print the findings of a finished run (loss recovered, family-specific "
        "latents, probe differences with intervals, steering trends with n) from RESULTS/tables "
        "and RESULTS/steering.",
    )
    p.add_argument(
        "results", nargs="?", default="results/demo", help="results folder (default: %(default)s)"
    )


def _run_findings(args: argparse.Namespace) -> int:
    from protsae.findings import findings

    print("Findings (computed from the tables; the README quotes only these):")
    for line in findings(args.results):
        print(f"  {line}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="protsae", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _encode_parser(sub)
    _plan_parser(sub)
    _findings_parser(sub)
    _clean_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``protsae`` console script; returns the exit status."""
    from protsae.sequences import InputError

    args = build_parser().parse_args(argv)
    runners = {
        "encode": _run_encode,
        "plan": _run_plan,
        "findings": _run_findings,
        "clean": _run_clean,
    }
    try:
        return runners[args.command](args)
    except (InputError, FileNotFoundError, ValueError) as err:
        print(f"protsae {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
