"""Outputs an earlier grid left behind: ``protsae clean [--dry-run]``.

A config that drops an SAE, a layer, a probe task or a steered latent leaves that output's
files in ``results`` beside the new ones, where a reader (or a glob) takes them for current.
A *stale output* is a file under the config's ``results`` folder that some rule of the
workflow makes (its path matches a rule's output, log or benchmark pattern) but that no job
of the current DAG makes. Files no rule makes (``report.html``, SAE checkpoints, lock files,
anything the user put there) are never touched.

The workflow's own DAG is the truth of what a config produces, checkpoints (the steered
latents) included, so it is built by Snakemake itself; this is the one module that imports
Snakemake, and only inside :func:`workflow_products`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Products:
    """What the current DAG makes, and a test for "some rule makes this path"."""

    files: frozenset[str]
    """Outputs, logs and benchmarks of every job of the DAG (paths relative to the workdir)."""
    folders: frozenset[str]
    """Directory outputs among them: every file inside one is theirs."""
    made_by_a_rule: Callable[[str], bool]
    pending_checkpoints: tuple[str, ...] = ()
    """Outputs of checkpoint jobs that must still run: what depends on them (the steered
    latents) is not known yet, so nothing can be called stale."""


class DagNotFinal(RuntimeError):
    """Checkpoints must run before the config's outputs are known; the message names them."""


def stale_outputs(results: str | os.PathLike[str], products: Products) -> list[Path]:
    """Files under ``results`` that a rule makes but the current DAG does not, sorted.

    Raises :class:`DagNotFinal` while a checkpoint of the DAG must still run: until then the
    files it decides (e.g. which latents are steered) cannot be told from stale ones.
    """
    if products.pending_checkpoints:
        listed = ", ".join(products.pending_checkpoints)
        raise DagNotFinal(
            f"the outputs of this config are not known yet: checkpoint jobs must run first "
            f"({listed}); run the workflow, then clean"
        )
    root = Path(results)
    stale = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.normpath(os.path.join(folder, name))
            if path in products.files or _inside(path, products.folders):
                continue
            if products.made_by_a_rule(path):
                stale.append(Path(path))
    return sorted(stale)


def _inside(path: str, folders: Iterable[str]) -> bool:
    return any(path.startswith(folder.rstrip("/") + "/") for folder in folders)


def remove_stale(paths: Iterable[Path], results: str | os.PathLike[str]) -> list[Path]:
    """Remove ``paths`` and the folders under ``results`` they leave empty; returns the folders."""
    root = Path(results).resolve()
    emptied = []
    parents = set()
    for path in paths:
        path.unlink(missing_ok=True)
        parents.add(path.parent)
    for folder in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        while folder.resolve() != root and folder.resolve().is_relative_to(root):
            try:
                folder.rmdir()
            except OSError:  # not empty (or gone): stop climbing
                break
            emptied.append(folder)
            folder = folder.parent
    return emptied


def workflow_products(
    snakefile: str | os.PathLike[str], configfile: str | os.PathLike[str]
) -> Products:
    """Build the workflow's DAG for ``configfile`` as Snakemake does (in the current folder)
    and collect what its jobs make."""
    from snakemake.api import SnakemakeApi
    from snakemake.dag import DAG
    from snakemake.settings.types import (
        ConfigSettings,
        OutputSettings,
        Quietness,
        ResourceSettings,
        StorageSettings,
    )

    captured: list[DAG] = []
    list_untracked = DAG.list_untracked
    # The DAG API builds the DAG for its listing commands; take the DAG instead of the listing.
    DAG.list_untracked = lambda dag: captured.append(dag)  # type: ignore[method-assign]
    try:
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            workflow = api.workflow(
                resource_settings=ResourceSettings(cores=1),
                config_settings=ConfigSettings(configfiles=[Path(configfile)]),
                storage_settings=StorageSettings(),
                snakefile=Path(snakefile),
            )
            workflow.dag().list_untracked()
    finally:
        DAG.list_untracked = list_untracked  # type: ignore[method-assign]
    (dag,) = captured
    files, folders = set(), set()
    pending = sorted(
        os.path.relpath(str(job.output[0]))
        for job in dag.jobs
        if job.rule.is_checkpoint and dag.needrun(job)
    )
    for job in dag.jobs:
        for product in job.products():
            path = os.path.normpath(os.path.relpath(str(product)))
            files.add(path)
            if product.is_directory:
                folders.add(path)
    rules = list(dag.workflow.rules)

    def made_by_a_rule(path: str) -> bool:
        return any(rule.is_producer(path) for rule in rules)

    return Products(frozenset(files), frozenset(folders), made_by_a_rule, tuple(pending))
