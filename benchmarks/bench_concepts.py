"""Speed and memory of the residue-concept counts (protsae.latents.concepts) vs a dense numpy
reference, in one process, on CPU.

Synthetic top-k codes (random latents, distinct within a residue; exponential values) for
proteins of 300 residues, each carrying 3 annotation instances (1-30 residues) of random
concepts. The sparse path counts every (latent, concept, threshold) from the codes
(ConceptCollector -> ConceptCounts -> the concepts table). The dense reference scatters a slice
of residues into a [residues, width] matrix and counts with boolean masks and matrix products;
both give the same counts on that slice (checked here). The ratio is the dense reference's time
per residue over the sparse path's, the sparse path timed on all residues.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_concepts.py            # 1M x 16384 x 200
    PYTHONPATH=src .venv/bin/python benchmarks/bench_concepts.py --quick    # 100k x 4096 x 50
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from protsae.latents.concepts import (
    DEFAULT_CONCEPT_THRESHOLDS,
    ConceptCollector,
    ConceptCounts,
    ConceptInstances,
)

LENGTH, PER_PROTEIN = 300, 3


def make_codes(n_proteins: int, width: int, k: int, n_concepts: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    residues = n_proteins * LENGTH
    offsets = rng.choice(width, k, replace=False)
    indices = ((rng.integers(0, width, (residues, 1)) + offsets) % width).astype(np.int32)
    values = rng.exponential(1.0, (residues, k)).astype(np.float32)
    values[rng.random((residues, k)) < 0.1] = 0  # some slots inactive, as after ReLU
    by_protein = {}
    for p in range(n_proteins):
        start = rng.integers(0, LENGTH - 30, PER_PROTEIN)
        span = rng.integers(1, 31, PER_PROTEIN)
        concept = rng.integers(0, n_concepts, PER_PROTEIN)
        by_protein[f"P{p}"] = np.stack([concept, start, start + span], 1).astype(np.int64)
    split = ["train" if p % 2 == 0 else "test" for p in range(n_proteins)]
    n_instances = np.zeros((2, n_concepts), np.int64)
    for p, inst in enumerate(by_protein.values()):
        np.add.at(n_instances[p % 2], inst[:, 0], 1)
    instances = ConceptInstances(
        [f"C{i}" for i in range(n_concepts)], by_protein, n_instances, n_instances.copy()
    )
    return values, indices, split, instances


def sparse(values, indices, split, instances, train_max, n_proteins):
    counts = ConceptCounts(train_max, len(instances.concepts), DEFAULT_CONCEPT_THRESHOLDS)
    collector = ConceptCollector(counts, instances)
    for p in range(n_proteins):
        rows = slice(p * LENGTH, (p + 1) * LENGTH)
        collector.add(f"P{p}", split[p], values[rows], indices[rows])
    collector.flush()
    return counts


def dense(values, indices, split, instances, train_max, n_proteins, n_concepts):
    """Counts above each threshold (ConceptCounts' per-level counts summed from the top), from
    dense activations of the proteins."""
    width, levels = len(train_max), len(DEFAULT_CONCEPT_THRESHOLDS)
    active = np.zeros((2, width, levels), np.int64)
    labelled = np.zeros((2, width, n_concepts, levels), np.int64)
    found = np.zeros((2, width, n_concepts, levels), np.int64)
    thresholds = train_max[None, :] * np.asarray(DEFAULT_CONCEPT_THRESHOLDS, np.float32)[:, None]
    for p in range(n_proteins):
        s = 0 if split[p] == "train" else 1
        rows = slice(p * LENGTH, (p + 1) * LENGTH)
        a = np.zeros((LENGTH, width), np.float32)
        np.put_along_axis(a, indices[rows].astype(np.int64), values[rows], 1)
        label = np.zeros((LENGTH, n_concepts), np.float32)
        inst = instances.by_protein[f"P{p}"]
        for c, lo, hi in inst:
            label[lo:hi, c] = 1
        for j in range(levels):
            above = (a > thresholds[j]).astype(np.float32)
            active[s, :, j] += above.sum(0).astype(np.int64)
            labelled[s, :, :, j] += np.rint(above.T @ label).astype(np.int64)
            for c, lo, hi in inst:
                found[s, :, c, j] += above[lo:hi].max(0).astype(np.int64)
    return active, labelled, found


def at_least(per_level: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.flip(np.cumsum(np.flip(per_level.reshape(shape), -1), -1), -1)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residues", type=int, default=1_000_000)
    parser.add_argument("--width", type=int, default=16384)
    parser.add_argument("--concepts", type=int, default=200)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--slice-residues", type=int, default=3000)
    parser.add_argument("--quick", action="store_true", help="100k residues x 4096 x 50 concepts")
    args = parser.parse_args()
    if args.quick:
        args.residues, args.width, args.concepts = 100_000, 4096, 50
    n_proteins = args.residues // LENGTH
    values, indices, split, instances = make_codes(n_proteins, args.width, args.k, args.concepts)
    train_max = np.full(args.width, 4.0, np.float32)
    n_slice = max(2, args.slice_residues // LENGTH)

    # The same counts on the slice, both ways.
    sl = slice(0, n_slice * LENGTH)
    counts_slice = sparse(values[sl], indices[sl], split, instances, train_max, n_slice)
    (d_active, d_labelled, d_found), t_dense = timed(
        lambda: dense(values[sl], indices[sl], split, instances, train_max, n_slice, args.concepts)
    )
    w, c, t = args.width, args.concepts, len(DEFAULT_CONCEPT_THRESHOLDS)
    assert np.array_equal(at_least(counts_slice.active, (2, w, t)), d_active)
    assert np.array_equal(at_least(counts_slice.labelled, (2, w, c, t)), d_labelled)
    assert np.array_equal(at_least(counts_slice.found, (2, w, c, t)), d_found)

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    counts, t_sparse = timed(
        lambda: sparse(values, indices, split, instances, train_max, n_proteins)
    )
    table, t_table = timed(lambda: counts.table(instances.concepts, instances.n_instances))
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    residues = n_proteins * LENGTH
    dense_per_residue = t_dense / (n_slice * LENGTH)
    sparse_per_residue = (t_sparse + t_table) / residues
    count_mb = (counts.labelled.nbytes + counts.found.nbytes + counts.active.nbytes) / 1e6
    print(
        f"concept counts: {residues} residues x {w} latents x {c} concepts x {t} thresholds, "
        f"k {args.k}, CPU"
    )
    print(f"  sparse: counts {t_sparse:7.1f} s + table {t_table:5.1f} s "
          f"({residues / (t_sparse + t_table):9.0f} residues/s), {table.num_rows} rows")  # fmt: skip
    print(f"  dense reference on {n_slice * LENGTH} residues: {t_dense:6.1f} s "
          f"({1 / dense_per_residue:9.0f} residues/s); same counts on that slice")  # fmt: skip
    print(
        f"  ratio (dense / sparse time per residue): {dense_per_residue / sparse_per_residue:6.1f}x"
    )
    print(f"  count arrays {count_mb:.0f} MB (width x concepts x thresholds x splits x 2, int32); "
          f"peak RSS {rss_after:.0f} MB (codes and slice reference: {rss_before:.0f} MB)")  # fmt: skip


if __name__ == "__main__":
    main()
