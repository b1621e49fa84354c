"""Activation-pattern classes: planted tracks for every class and every rule boundary."""

from __future__ import annotations

import numpy as np
import pytest

from protsae.latents import (
    PATTERN_CLASSES,
    EvalRecord,
    PatternRules,
    PatternStats,
    classes_from_files,
    classify,
    stream_latent_stats,
)


def region(start: int, n: int) -> list[int]:
    return list(range(start, start + n))


def helix(n: int, start: int = 2, steps: tuple[int, ...] = (3, 4)) -> list[int]:
    """``n`` single active residues at distances cycling through ``steps`` (3/4: an alpha helix face)."""
    pos = [start]
    while len(pos) < n:
        pos.append(pos[-1] + steps[(len(pos) - 1) % len(steps)])
    return pos


def from_distances(counts: dict[int, int], start: int = 0) -> list[int]:
    pos = [start]
    for d, c in counts.items():
        for _ in range(c):
            pos.append(pos[-1] + d)
    return pos


def dense(length: int, fraction: float, seed: int) -> list[int]:
    """Each residue active with probability ``fraction``; the first residue always."""
    active = np.random.default_rng(seed).random(length) < fraction
    active[0] = True
    return np.flatnonzero(active).tolist()


def seqs(n: int, length: int, positions, split: str = "test", scale: float = 1.0):
    """``n`` sequences of ``length`` with the same active ``positions`` (a list, or one per sequence)."""
    out = []
    for i in range(n):
        pos = positions[i] if isinstance(positions[0], list) else positions
        out.append((length, list(pos), split, scale * (1 + 0.01 * i)))
    return out


# name -> (expected class, sequences as (length, active positions, split, activation))
PLANTED = {
    "dead": ("dead", []),
    "train_only": ("dead", seqs(8, 100, region(0, 100), split="train")),
    "four_sequences": ("not_enough_data", seqs(4, 100, [10, 50])),
    "five_sequences": ("point", seqs(5, 100, [10, 50])),
    "periodic": ("periodic", seqs(6, 100, helix(20))),
    "periodic_exactly_10_activations": ("point", seqs(6, 100, helix(10))),
    "periodic_fraction_exactly_half": (
        "point",
        seqs(6, 100, from_distances({3: 3, 4: 3, 6: 2, 7: 2, 8: 2})),
    ),
    "periodic_fraction_above_half": (
        "periodic",
        seqs(6, 100, from_distances({3: 4, 4: 3, 6: 2, 7: 2, 8: 1})),
    ),
    # Runs of 10 with gaps: distances are mostly 1, many activations, but regions too long.
    "periodic_regions_too_long": ("motif_short", seqs(6, 200, region(0, 10) + region(20, 10))),
    # Dense: 75% of residues active at random; gaps between active residues are mostly 1
    # or 2 (the old residue-distance rule called this periodic), region starts are not.
    "dense": ("motif_short", seqs(8, 200, [dense(200, 0.75, seed) for seed in range(8)])),
    # Regions of 2 residues starting every 7: periodic by the distance between region starts.
    "period_7": ("periodic", seqs(6, 100, [p for s in range(0, 99, 7) for p in (s, s + 1)])),
    "point": ("point", seqs(6, 100, [10, 40, 80])),
    "motif_short": ("motif_short", seqs(6, 100, region(30, 8) + [60])),
    "median_19": ("motif_short", seqs(5, 200, [region(0, n) for n in (5, 10, 19, 25, 30)])),
    "median_20": ("motif_medium", seqs(5, 200, [region(0, n) for n in (10, 15, 20, 25, 30)])),
    "median_49": ("motif_medium", seqs(5, 300, [region(0, n) for n in (40, 45, 49, 60, 70)])),
    "median_50": ("motif_long", seqs(5, 300, [region(0, n) for n in (40, 45, 50, 60, 70)])),
    "median_299": ("motif_long", seqs(5, 1000, region(0, 299))),
    "median_300": ("other", seqs(5, 1000, region(0, 300))),
    "coverage_79": ("motif_long", seqs(6, 100, region(0, 79))),
    "coverage_exactly_80": ("other", seqs(6, 100, region(0, 80))),
    "coverage_mean_exactly_80": (
        "other",
        seqs(6, 100, [region(0, 70), region(0, 90)] * 3),
    ),
    # In float64 this mean is 0.8000000000000002 (the one above: 0.7999999999999999).
    "coverage_mean_exactly_80_rounded_up": (
        "other",
        seqs(6, 100, [region(0, 60), region(0, 100)] * 3),
    ),
    "coverage_81": ("whole", seqs(6, 100, region(0, 81))),
    "whole": ("whole", seqs(6, 50, region(0, 50))),
    # 50 strong whole-sequence tracks outrank 10 weak points: only the top 50 count.
    "top_examples_only": (
        "whole",
        seqs(50, 60, region(0, 60), scale=10.0) + seqs(10, 60, [5], scale=0.5),
    ),
    "bottom_sequences_ignored": (
        "point",
        seqs(50, 60, [5], scale=10.0) + seqs(10, 60, region(0, 60), scale=0.5),
    ),
}
NAMES = list(PLANTED)


def planted_files(tmp_path, planted=PLANTED, top_examples: int = 50):
    tracks = {}
    records = []
    for latent, name in enumerate(planted):
        for i, (length, positions, split, act) in enumerate(planted[name][1]):
            seq_id = f"{name}-{i:03d}"
            values = np.zeros((length, 2), np.float32)
            values[positions, 0] = act
            indices = np.zeros((length, 2), np.int32)
            indices[:, 0] = latent
            indices[:, 1] = len(planted)  # a filler latent, always inactive (value 0)
            tracks[seq_id] = (values, indices)
            records.append(EvalRecord(seq_id, "A" * length, split))

    def encode(recs):
        for seq_id, _ in recs:
            yield seq_id, *tracks[seq_id]

    seq_stats, top = tmp_path / "seq_stats.parquet", tmp_path / "top_examples.parquet"
    stream_latent_stats([records], encode, len(planted) + 1, top_examples, seq_stats, top)
    return seq_stats, top, len(planted) + 1


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    seq_stats, top, width = planted_files(tmp_path_factory.mktemp("classes"))
    table = classes_from_files(seq_stats, top, width).to_pylist()
    return {NAMES[row["latent"]]: row for row in table if row["latent"] < len(NAMES)}


@pytest.mark.parametrize("name", NAMES)
def test_planted_latent_gets_its_class(classes, name):
    assert classes[name]["pattern_class"] == PLANTED[name][0]


def test_every_class_is_planted():
    assert {expected for expected, _ in PLANTED.values()} == set(PATTERN_CLASSES)


def test_deciding_statistics_are_reported(classes):
    periodic = classes["periodic"]
    assert periodic["top_distances"] == [3, 4]
    assert periodic["periodic_fraction"] == 1.0
    assert periodic["density"] == 20
    assert periodic["median_top_region_length"] == 1
    assert classes["periodic_fraction_exactly_half"]["periodic_fraction"] == 0.5
    assert classes["period_7"]["top_distances"][0] == 7
    assert classes["period_7"]["density"] == 30
    dense = classes["dense"]
    assert dense["density"] > 140 and dense["mean_coverage"] > 0.7
    assert dense["periodic_fraction"] < 0.5
    assert classes["median_20"]["median_top_region_length"] == 20
    assert classes["coverage_exactly_80"]["mean_coverage"] == pytest.approx(0.8)
    top = classes["top_examples_only"]
    assert (top["n_sequences"], top["n_top"], top["mean_coverage"]) == (60, 50, 1.0)
    assert (classes["train_only"]["n_sequences"], classes["dead"]["n_sequences"]) == (0, 0)


def test_rules_are_parameters(tmp_path):
    seq_stats, top, width = planted_files(tmp_path)

    def run(rules):
        table = classes_from_files(seq_stats, top, width, rules).to_pylist()
        return {NAMES[r["latent"]]: r["pattern_class"] for r in table if r["latent"] < len(NAMES)}

    fewer = run(PatternRules(min_sequences=6))
    assert fewer["five_sequences"] == "not_enough_data"
    assert fewer["periodic"] == "periodic"  # 6 sequences
    moved = run(PatternRules(motif_bounds=(10, 30, 100), whole_coverage=0.9))
    assert moved["median_19"] == "motif_medium"  # 10 <= 19 < 30
    assert moved["median_50"] == "motif_long"  # 30 <= 50 < 100
    assert moved["coverage_81"] == "motif_long"  # 0.81 < 0.9 and 30 <= 81 < 100
    assert moved["median_299"] == "other"
    assert moved["whole"] == "whole"
    looser = run(PatternRules(periodic_fraction=0.4, periodic_min_activations=9))
    assert looser["periodic_fraction_exactly_half"] == "periodic"
    assert looser["periodic_exactly_10_activations"] == "periodic"


def test_classify_boundaries_directly():
    def stats(**kw):
        base = dict(
            n_sequences=10,
            n_top=10,
            median_top_region_length=1.0,
            mean_coverage=0.1,
            density=5.0,
            periodic_fraction=0.0,
            top_distances=(),
        )
        return PatternStats(**{**base, **kw})

    assert classify(stats(n_sequences=0)) == "dead"
    assert classify(stats(n_sequences=4)) == "not_enough_data"
    assert classify(stats(n_sequences=5)) == "point"
    assert classify(stats(median_top_region_length=1.5)) == "motif_short"
    assert (
        classify(stats(median_top_region_length=9.5, periodic_fraction=0.9, density=11))
        == "periodic"
    )
    assert (
        classify(stats(median_top_region_length=10, periodic_fraction=0.9, density=11))
        == "motif_short"
    )
    assert classify(stats(median_top_region_length=25, mean_coverage=0.95)) == "whole"
    assert classify(stats(median_top_region_length=1, mean_coverage=0.95)) == "point"
    assert classify(stats(median_top_region_length=400, mean_coverage=0.5)) == "other"


def test_mismatched_inputs_are_reported(tmp_path):
    seq_stats, top, width = planted_files(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    subset = {k: PLANTED[k] for k in NAMES[:5]}
    other_stats, _, _ = planted_files(other, subset)
    with pytest.raises(ValueError, match="disagree"):
        classes_from_files(other_stats, top, width)
