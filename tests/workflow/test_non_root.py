"""A second, non-root user runs `make demo` from a checkout the user owns, and a third one can
read the results once the owner shares the folder.

Needs root (to create the user) and `useradd` / `runuser`; skipped otherwise. The user
`protsae-demo` and its home (its pip cache makes the next run's set-up fast) are kept;
`userdel -r protsae-demo` removes them. `make demo` sets itself up as on a fresh machine: it
creates the user's own `.venv` from PyPI (minutes the first time), then runs the demo's DAG
with a seeded random-init ESM-2 and capped SAE budgets (`shrink_demo`, as the other
whole-workflow tests) so the run stays within the slow tier.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from workflow_runs import REPO, SKIP, WORKFLOW_ITEMS, random_esm, shrink_demo, write_config  # noqa: E402

pytestmark = [pytest.mark.workflow, pytest.mark.slow, pytest.mark.heavy]  # a whole run

USER = "protsae-demo"
# What `make demo` needs beyond the workflow: the Makefile, set-up and packaging.
CHECKOUT_ITEMS = (
    *WORKFLOW_ITEMS,
    "Makefile",
    "tools",
    "pyproject.toml",
    "constraints.txt",
    "README.md",
)


def _as(user: str, *command: str, cwd: Path, timeout: float = 3600) -> subprocess.CompletedProcess:
    """Run ``command`` as ``user`` with a login-like environment (no PYTHONPATH, own HOME)."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": os.path.expanduser(f"~{user}"),
        "LANG": "C.UTF-8",
    }
    # The site's network settings (proxy, its certificate bundle, a package index) reach every
    # user of the machine in a real login; root's own dotfiles (~/.npmrc, ~/.config/pip) do not.
    env.update({name: value for name, value in os.environ.items() if _site_setting(name)})
    return subprocess.run(
        ["runuser", "-u", user, "--", *command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


SITE_SETTINGS = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")


def _site_setting(name: str) -> bool:
    lower = name.lower()
    return (
        name in SITE_SETTINGS
        or name.startswith(("PIP_", "npm_config_", "NPM_CONFIG_"))
        or lower in ("http_proxy", "https_proxy", "no_proxy")
    )


@pytest.fixture
def checkout() -> Iterator[Path]:
    """A copy of the repository in a folder the non-root user owns (outside root's temp dirs,
    which the user cannot enter), removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("creating a user needs root")
    if not (shutil.which("useradd") and shutil.which("runuser")):
        pytest.skip("useradd and runuser are needed to run as another user")
    if subprocess.run(["id", USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", USER], check=True)
    made = subprocess.run(
        ["runuser", "-u", USER, "--", "mktemp", "-d", "/tmp/protsae-checkout.XXXXXX"],
        capture_output=True,
        text=True,
        check=True,
    )
    folder = Path(made.stdout.strip())
    try:
        for name in CHECKOUT_ITEMS:
            source = REPO / name
            if source.is_symlink():
                os.symlink(os.readlink(source), folder / name)
            elif source.is_dir():
                shutil.copytree(source, folder / name, symlinks=True, ignore=SKIP)
            else:
                shutil.copy2(source, folder / name)
        write_config(folder, "demo", lambda config: shrink_demo(random_esm(config)))
        subprocess.run(["chown", "-R", "--no-dereference", f"{USER}:", str(folder)], check=True)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_non_root_user_runs_make_demo_and_another_reads_the_results(checkout: Path) -> None:
    done = _as(USER, "make", "demo", cwd=checkout)
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    results = checkout / "results" / "demo"
    assert (results / "report.html").is_file()
    assert (results / "browser" / "index.html").is_file()
    assert f"Feature browser: file://{checkout}/results/demo/browser/index.html" in done.stdout
    # Everything the run wrote belongs to the user: nothing needed root, nothing was root's.
    uid = int(subprocess.run(["id", "-u", USER], capture_output=True, text=True).stdout)
    foreign = [
        str(path)
        for folder in ("results", "resources/downloads", ".snakemake", ".venv")
        for path in (checkout / folder).rglob("*")
        if path.lstat().st_uid != uid
    ]
    assert foreign == []
    # The owner shares the checkout (o+rx on its folder); a third user reads every result.
    checkout.chmod(0o755)
    unreadable = _as(
        "nobody", "find", "results", "-type", "f", "!", "-readable", cwd=checkout, timeout=120
    )
    assert unreadable.returncode == 0, unreadable.stderr
    assert unreadable.stdout == ""
