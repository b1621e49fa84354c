#!/usr/bin/env bash
# Idempotent set-up: .venv with the tested Python stack (constraints.txt), and the Debian tools
# when run as root: mmseqs2, clustalo, ncbi-blast+ for the pipeline, slurm-wlm and munge for
# the SLURM integration test (SETUP_SLURM=no leaves those two out), chromium for the feature
# browser's tests and npm for its 3D viewer (SETUP_BROWSER=no leaves them out); then 3Dmol.js at
# the version locked in tools/viewer/package-lock.json (npm ci), which the browser copies.
# Fast when everything is already there (a stamp file records what was installed).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
# torch is installed first, at the locked version: an unpinned torch would pull a multi-GB
# CUDA build. Override with e.g. TORCH_SPEC="torch==2.13.0 --index-url <a CPU or CUDA index>".
TORCH_SPEC=${TORCH_SPEC:-$(grep -m1 '^torch==' constraints.txt)}
STAMP=.venv/.setup-stamp
WANT="$(cat pyproject.toml constraints.txt) $TORCH_SPEC"

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $PYTHON"
    "$PYTHON" -m venv .venv
fi
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "setup: installing Python dependencies into .venv (versions from constraints.txt)"
    .venv/bin/python -m pip install --quiet --upgrade pip
    # shellcheck disable=SC2086  # TORCH_SPEC may carry pip options
    .venv/bin/python -m pip install --quiet -c constraints.txt $TORCH_SPEC
    .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[workflow,dev,hf]"
    printf '%s' "$WANT" > "$STAMP"
else
    echo "setup: Python dependencies up to date"
fi

# Debian tools, as command:package. Installed with apt-get when root; named otherwise.
install_debian() {
    local label=$1 flags=$2
    shift 2
    local missing=() tool package
    for tool in "$@"; do
        package="${tool##*:}"
        if ! PATH="$PATH:/usr/sbin:/sbin" command -v "${tool%%:*}" >/dev/null 2>&1 \
            && [[ " ${missing[*]} " != *" $package "* ]]; then
            missing+=("$package")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "setup: $label present"
    elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # shellcheck disable=SC2086  # flags may be empty
        apt-get install -y -qq $flags "${missing[@]}" >/dev/null
    else
        echo "setup: missing $label (Debian packages): ${missing[*]}; install them as root" >&2
    fi
}

install_debian "mmseqs2, clustalo, ncbi-blast+" "" mmseqs:mmseqs2 clustalo:clustalo blastp:ncbi-blast+
command -v mmseqs >/dev/null 2>&1 ||
    echo "setup: or use the conda envs in envs/ (snakemake --sdm conda creates them per rule)" >&2
if [ "${SETUP_SLURM:-yes}" != no ]; then
    # For tests/integration/test_slurm_demo.py, which skips without them.
    install_debian "slurm-wlm, munge (SLURM integration test)" --no-install-recommends \
        slurmctld:slurm-wlm slurmd:slurm-wlm sbatch:slurm-wlm munged:munge
fi
if [ "${SETUP_BROWSER:-yes}" != no ]; then
    # For the feature browser's tests in headless Chromium, which skip without it.
    install_debian "chromium (feature browser tests)" "" chromium:chromium
    # The browser's molecular viewer (3Dmol.js from the npm registry, version and integrity
    # from the lock file); needed when structures.source is not none, and by its tests.
    install_debian "npm (the browser's 3D viewer)" --no-install-recommends npm:npm node:nodejs
    VIEWER=tools/viewer
    VIEWER_STAMP=$VIEWER/node_modules/.protsae-stamp
    if command -v npm >/dev/null 2>&1; then
        if [ ! -f "$VIEWER_STAMP" ] || ! cmp -s "$VIEWER_STAMP" "$VIEWER/package-lock.json"; then
            echo "setup: installing 3Dmol.js (npm ci in $VIEWER)"
            if npm ci --prefix "$VIEWER" --ignore-scripts --no-audit --no-fund --loglevel=error; then
                cp "$VIEWER/package-lock.json" "$VIEWER_STAMP"
            else
                # The demo (structures.source none) needs no viewer: say so and go on.
                echo "setup: npm ci failed: the browser's 3D viewer is not installed" \
                    "(structures.source none still works; the viewer's tests skip)" >&2
            fi
        else
            echo "setup: 3Dmol.js up to date"
        fi
    else
        echo "setup: npm missing: the browser's 3D viewer is not installed (structures.source none still works)" >&2
    fi
fi
