#!/usr/bin/env bash
# Idempotent set-up: .venv with the Python stack, and the Debian tools when run as root.
# Fast when everything is already there (a stamp file records the installed pyproject).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
# torch is installed first and pinned: an unpinned torch would pull a multi-GB CUDA build.
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
STAMP=.venv/.setup-stamp
WANT="$(cat pyproject.toml) $TORCH_SPEC"

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $PYTHON"
    "$PYTHON" -m venv .venv
fi
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "setup: installing Python dependencies into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet "$TORCH_SPEC"
    # The constraint keeps that torch when a dependency (sae-lens, via transformer-lens) asks for torch.
    .venv/bin/python -m pip install --quiet -e ".[workflow,dev]" -c <(printf '%s\n' "$TORCH_SPEC")
    printf '%s' "$WANT" > "$STAMP"
else
    echo "setup: Python dependencies up to date"
fi

missing=()
for tool in mmseqs:mmseqs2 clustalo:clustalo blastp:ncbi-blast+; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "setup: missing tools (Debian packages): ${missing[*]}" >&2
        echo "setup: install them with apt-get as root, or use the conda envs in envs/" >&2
        echo "setup: (snakemake --sdm conda creates them per rule)" >&2
    fi
else
    echo "setup: mmseqs2, clustalo, ncbi-blast+ present"
fi
