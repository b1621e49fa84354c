"""The ``protsae`` command: ``protsae encode`` (your proteins through a trained SAE) and
``protsae plan`` (what a config will cost before it runs)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


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
    p.add_argument("--model", help="ESM-2 checkpoint path or fair-esm name (default: sae.json's)")
    p.add_argument("--html", action="store_true", help="write one static page per sequence")
    p.add_argument(
        "--html-latent", type=int, help="latent colouring every page (default: strongest)"
    )
    p.add_argument("--skip-long", action="store_true", help="skip sequences > 1022 (default: crop)")
    p.add_argument("--top", type=int, default=10, help="latents per sequence in OUT.tsv")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1")
    p.add_argument("--max-tokens-per-batch", type=int, default=4096)


def _run_encode(args: argparse.Namespace) -> int:
    from protsae.encoding import encode

    result = encode(
        args.fasta,
        args.sae,
        args.out,
        results=args.results,
        model=args.model,
        html=args.html,
        html_latent=args.html_latent,
        skip_long=args.skip_long,
        top=args.top,
        device=args.device,
        max_tokens_per_batch=args.max_tokens_per_batch,
    )
    print(
        f"{result.n_sequences} sequences, {result.n_rows} active (residue, latent) pairs: "
        f"{result.parquet}, {result.tsv}" + (f", {result.html_dir}/" if result.html_dir else "")
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="protsae", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _encode_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``protsae`` console script; returns the exit status."""
    from protsae.sequences import InputError

    args = build_parser().parse_args(argv)
    runners = {"encode": _run_encode}
    try:
        return runners[args.command](args)
    except (InputError, FileNotFoundError, ValueError) as err:
        print(f"protsae {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
