#!/usr/bin/env bash
# Virtual environments for `make bench-peers`, apart from the project's .venv: .venv-peers holds
# protsae with the SAE peers (benchmarks/peers/requirements-sae.txt), .venv-faesm protsae with
# faesm and the older transformers it needs (requirements-faesm.txt). torch is the project's
# locked CPU build in both, so every comparison runs on the same torch. Idempotent (stamp files).
# A peer that fails to install leaves .install-failed in its environment with pip's last lines;
# the benchmarks report it instead of skipping it.
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
TORCH_SPEC=${TORCH_SPEC:-$(grep -m1 '^torch==' constraints.txt)}

# make_env DIR REQUIREMENTS: protsae (editable) + the pinned peers, constraints.txt for the rest
# except the packages REQUIREMENTS pins itself.
make_env() {
    local dir=$1 requirements=$2
    local stamp=$dir/.setup-stamp failed=$dir/.install-failed
    local want
    want="$(cat pyproject.toml constraints.txt "$requirements") $TORCH_SPEC"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        echo "setup-peers: $dir up to date"
        return 0
    fi
    echo "setup-peers: installing $requirements into $dir"
    rm -f "$failed"
    [ -x "$dir/bin/python" ] || "$PYTHON" -m venv "$dir" || return 1
    local pinned constraints
    pinned=$(grep -v '^#' "$requirements" | sed -n 's/^\([A-Za-z0-9_.-]*\)==.*/\1/p' | tr 'A-Z_' 'a-z-')
    constraints=$dir/constraints-filtered.txt
    grep -v '^#' constraints.txt | while IFS= read -r line; do
        name=$(printf '%s' "${line%%==*}" | tr 'A-Z_' 'a-z-')
        grep -qx -- "$name" <<<"$pinned" || printf '%s\n' "$line"
    done >"$constraints"
    local log=$dir/install.log
    # shellcheck disable=SC2086  # TORCH_SPEC may carry pip options
    if "$dir/bin/python" -m pip install --quiet -c "$constraints" $TORCH_SPEC >"$log" 2>&1 &&
        "$dir/bin/python" -m pip install --quiet -c "$constraints" -e . -r "$requirements" \
            >>"$log" 2>&1; then
        # nnsight (pulled in by dictionary-learning) declares torchvision, and PyPI's build of
        # it does not load beside the CPU torch (operator torchvision::nms does not exist),
        # which breaks transformers' imports. Nothing benchmarked uses it: remove it then.
        if "$dir/bin/python" -m pip show -q torchvision >/dev/null 2>&1 &&
            ! "$dir/bin/python" -c "import torchvision" >/dev/null 2>&1; then
            "$dir/bin/python" -m pip uninstall -q -y torchvision >>"$log" 2>&1
        fi
        printf '%s' "$want" >"$stamp"
    else
        tail -n 15 "$log" >"$failed"
        echo "setup-peers: could not install $requirements into $dir (see $failed)" >&2
    fi
}

make_env .venv-peers benchmarks/peers/requirements-sae.txt
make_env .venv-faesm benchmarks/peers/requirements-faesm.txt
exit 0
