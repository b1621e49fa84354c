"""The lock of tested versions (constraints.txt), the conda envs and pyproject.toml agree."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
ENVS = sorted((ROOT / "envs").glob("*.yaml"))


def read_lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def env_pins(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """``(conda pins, pip pins)`` of a conda env file."""
    conda, pip = {}, {}
    for entry in yaml.safe_load(path.read_text())["dependencies"]:
        if isinstance(entry, dict):
            for line in entry["pip"]:
                name, _, version = line.partition("==")
                pip[canonicalize_name(name)] = version
        else:
            name, _, version = entry.partition("=")
            conda[name] = version
    return conda, pip


def test_every_requirement_of_the_project_is_locked_at_a_version_it_allows():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = [project["dependencies"], *project.get("optional-dependencies", {}).values()]
    lock = read_lock()
    for text in (r for group in groups for r in group):
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{requirement.name} is not in constraints.txt: run `make lock`"
        assert requirement.specifier.contains(lock[name], prereleases=True), (text, lock[name])


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_conda_env_pins_are_the_locked_versions(path: Path):
    lock = read_lock()
    conda, pip = env_pins(path)
    assert pip, f"{path.name} pins no Python packages"
    for name, version in pip.items():
        assert lock.get(name) == version, (
            f"{path.name}: {name}=={version}, lock has {lock.get(name)}"
        )
    header = (ROOT / "constraints.txt").read_text().splitlines()[2]
    assert f"python {conda['python']};" in header, (conda["python"], header)
    assert all(version for version in conda.values()), f"{path.name}: unpinned conda package"


def test_installed_versions_are_the_locked_ones():
    """What the tests run with is what the lock says (tools/setup.sh installs with it)."""
    from importlib.metadata import version

    from packaging.version import Version

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = read_lock()
    for text in project["dependencies"]:
        name = Requirement(text).name
        installed = Version(version(name)).public
        assert lock[canonicalize_name(name)] == installed, (name, installed)


BLOCKER = """
import importlib.abc, importlib.metadata, sys
allowed = set(sys.argv[1].split(","))
owners = importlib.metadata.packages_distributions()

class OnlyTheEnv(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        dists = {d.lower() for d in owners.get(name.split(".")[0], [])}
        if dists and not dists & allowed:
            raise ImportError(f"{name} belongs to {sorted(dists)}, not in the env")

sys.meta_path.insert(0, OnlyTheEnv())
import pyarrow as pa
import pyarrow.parquet as pq
from protsae.io import write_parquet
from protsae.sequences import cluster_sequences, split_clusters

write_parquet(pa.table({"accession": ["a", "b"]}), sys.argv[2])
assert pq.read_table(sys.argv[2], columns=["accession"]).num_rows == 2
assert split_clusters(["a", "b"], 0.5, 0) in ({"a"}, {"b"})
"""


def test_mmseqs2_env_holds_what_the_clustering_script_imports(tmp_path: Path):
    script = (ROOT / "workflow" / "scripts" / "cluster_swissprot.py").read_text()
    imports = {
        line.split()[1] for line in script.splitlines() if line.startswith(("from ", "import "))
    }
    assert imports <= {"sys", "pathlib", "pyarrow.parquet", "protsae.io", "protsae.sequences"}, (
        "the clustering script imports something new: update this test and tools/lock.py"
    )
    _, pip = env_pins(ROOT / "envs" / "mmseqs2.yaml")
    assert "torch" not in pip and "fair-esm" not in pip
    allowed = ",".join([*pip, "protsae"])
    run = subprocess.run(
        [sys.executable, "-c", BLOCKER, allowed, str(tmp_path / "t.parquet")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
