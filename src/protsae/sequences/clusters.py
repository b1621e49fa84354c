"""MMseqs2 clustering of Swiss-Prot and the cluster-level train/test split.

Clustering shells out to ``mmseqs easy-cluster``; whole clusters go to train or test.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from protsae.progress import get_logger
from protsae.sequences.common import InputError
from protsae.tools import find_tool, run_tool

CLUSTERS_SCHEMA = pa.schema(
    [
        pa.field("accession", pa.string()),
        pa.field("cluster", pa.string()),
        pa.field("split", pa.string()),
    ]
)


def split_clusters(representatives: list[str], test_fraction: float, seed: int) -> set[str]:
    """The representatives whose clusters form the test split (seeded, exact count).

    With at least two clusters and 0 < test_fraction < 1 both splits get one or more.
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be within [0, 1], got {test_fraction}")
    reps = sorted(set(representatives))
    n_test = round(test_fraction * len(reps))
    if len(reps) >= 2 and 0.0 < test_fraction < 1.0:
        n_test = min(max(n_test, 1), len(reps) - 1)
    return set(random.Random(seed).sample(reps, n_test))


def _easy_cluster(
    chosen: list[tuple[str, str]],
    min_seq_id: float,
    coverage: float,
    sensitivity: float,
    threads: int,
    workdir: str | os.PathLike[str] | None,
    logger: logging.Logger,
) -> dict[str, str]:
    """Run ``mmseqs easy-cluster`` on ``(accession, sequence)`` pairs: member -> representative."""
    binary = find_tool("mmseqs")
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mmseqs-", dir=workdir) as tmp:
        tmpdir = Path(tmp)
        fasta = tmpdir / "input.fasta"
        fasta.write_text("".join(f">{a}\n{s}\n" for a, s in chosen))
        command = [
            binary,
            "easy-cluster",
            str(fasta),
            str(tmpdir / "out"),
            str(tmpdir / "tmp"),
            "--min-seq-id",
            str(min_seq_id),
            "-c",
            str(coverage),
            "-s",
            str(sensitivity),
            "--max-seqs",
            "1000000",
            "--cluster-mode",
            "1",
            "--threads",
            str(threads),
        ]
        logger.info("running %s", " ".join(command[1:2] + command[5:]))
        run_tool(command, "mmseqs easy-cluster")
        representative: dict[str, str] = {}
        tsv = tmpdir / "out_cluster.tsv"
        with open(tsv) as fh:
            for number, line in enumerate(fh, start=1):
                fields = line.split()
                if len(fields) != 2:
                    raise InputError(f"{tsv}: line {number}: expected 2 columns, found {line!r}")
                representative[fields[1]] = fields[0]
    return representative


@dataclass(frozen=True)
class Clustering:
    """MMseqs2's clustering settings: minimum sequence identity, coverage, sensitivity (-s)."""

    min_seq_id: float = 0.3
    coverage: float = 0.9
    sensitivity: float = 8.0


def cluster_sequences(
    table: pa.Table,
    clustering: Clustering | None = None,
    max_length: int = 1022,
    threads: int = 1,
    test_fraction: float = 0.1,
    seed: int = 0,
    workdir: str | os.PathLike[str] | None = None,
    logger: logging.Logger | None = None,
) -> pa.Table:
    """Cluster ``accession``/``sequence`` rows with MMseqs2 as ``clustering`` says (default
    :class:`Clustering`) and split clusters train/test.

    Entries longer than ``max_length`` are left out. Each row names its cluster's
    representative accession; a cluster's members share its split. MMseqs2's
    temporary files live in a directory under ``workdir`` (default: the system's), removed
    afterwards.
    """
    logger = logger or get_logger()
    clustering = clustering or Clustering()
    accessions = table.column("accession").to_pylist()
    sequences = table.column("sequence").to_pylist()
    repeated = [acc for acc, n in Counter(accessions).items() if n > 1]
    if repeated:
        raise InputError(f"accessions occur more than once: {repeated[:5]}")
    chosen = [(a, s) for a, s in zip(accessions, sequences, strict=True) if len(s) <= max_length]
    logger.info(
        "clustering %d of %d entries (%d longer than %d left out)",
        len(chosen),
        len(accessions),
        len(accessions) - len(chosen),
        max_length,
    )
    if not chosen:
        raise InputError(
            f"no Swiss-Prot entry of at most {max_length} residues among {len(accessions)}; "
            "the evaluation set would be empty"
        )
    representative = _easy_cluster(
        chosen,
        clustering.min_seq_id,
        clustering.coverage,
        clustering.sensitivity,
        threads,
        workdir,
        logger,
    )
    missing = [a for a, _ in chosen if a not in representative]
    if missing:
        raise RuntimeError(f"mmseqs output lacks {len(missing)} entries, e.g. {missing[:5]}")
    test = split_clusters(list(representative.values()), test_fraction, seed)
    members = [a for a, _ in chosen]
    clusters = [representative[a] for a in members]
    splits = ["test" if c in test else "train" for c in clusters]
    if not test:
        raise InputError(
            f"the evaluation set has no test representative: {len(members)} entries in "
            f"{len(set(clusters))} cluster(s) with test_fraction {test_fraction}; latent "
            "families are scored on test clusters, so give Swiss-Prot entries of 2+ clusters"
        )
    logger.info(
        "%d entries in %d clusters; %d test clusters (%d entries), seed %d",
        len(members),
        len(set(clusters)),
        len(test),
        splits.count("test"),
        seed,
    )
    return pa.table(
        {"accession": members, "cluster": clusters, "split": splits}, schema=CLUSTERS_SCHEMA
    )
