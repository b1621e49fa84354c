"""Fixtures for tests that need system services: a private single-node SLURM cluster."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from slurm_cluster import SlurmCluster, new_cluster_root, skip_reason


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A running cluster of the SLURM programs that set-up installed (tools/setup.sh).

    Skips, saying so, only where those programs are missing. Teardown cancels
    leftover jobs and ends exactly the daemons this fixture started, also after failures.
    """
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    root = new_cluster_root()
    cluster = SlurmCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
