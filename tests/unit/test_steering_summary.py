"""The steering summary on planted per-latent tables whose fractions are known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from protsae.steering.homologs import META_FAMILY, META_LATENT, META_MAX, META_SKIP
from protsae.steering.steer import LATENT_SCHEMA
from protsae.steering.summary import SUMMARY_SCHEMA, bin_index, check_bins, summarize

BINS = [0.0, 0.5, 1.0]
CONSERVATION = [0.1, 0.3, 0.5, 1.0]  # 0.5 falls in the upper bin, 1.0 in the last (closed) bin
ORIGINAL = "MKCD"


def latent_table(tmp: Path, latent: int, steered: dict[float, str], baseline: str = ORIGINAL):
    parts = []
    for multiplier, seq in steered.items():
        n = len(ORIGINAL)
        parts.append(
            {
                "latent": [latent] * n,
                "family": ["IPR_X"] * n,
                "id": ["P1"] * n,
                "multiplier": [multiplier] * n,
                "clamp_value": [multiplier * 2] * n,
                "pos": list(range(n)),
                "original": list(ORIGINAL),
                "baseline": list(baseline),
                "steered": list(seq),
                "consensus": list(ORIGINAL),
                "conservation": CONSERVATION,
                "entropy": [0.0] * n,
                "n_homologs": [3] * n,
            }
        )
    meta = {META_LATENT: str(latent).encode(), META_FAMILY: b"IPR_X", META_MAX: b"2.0"}
    table = pa.concat_tables([pa.table(p, schema=LATENT_SCHEMA) for p in parts])
    path = tmp / f"latent-{latent}.parquet"
    pq.write_table(table.replace_schema_metadata(meta), path)
    return path


def skipped_table(tmp: Path, latent: int) -> Path:
    meta = {META_LATENT: str(latent).encode(), META_FAMILY: b"IPR_Y", META_MAX: b"1.0"}
    meta[META_SKIP] = b"no steered sequence has enough homologs"
    path = tmp / f"latent-{latent}.parquet"
    pq.write_table(LATENT_SCHEMA.empty_table().replace_schema_metadata(meta), path)
    return path


def rows(table: pa.Table, **where) -> list[dict]:
    return [r for r in table.to_pylist() if all(r[k] == v for k, v in where.items())]


def test_bins():
    edges = check_bins(BINS)
    assert bin_index(np.asarray(CONSERVATION), edges).tolist() == [0, 0, 1, 1]
    assert bin_index(np.asarray([0.0, 0.999]), check_bins([0, 0.25, 1])).tolist() == [0, 1]
    for bad in ([0.0], [0.1, 1.0], [0.0, 0.6, 0.5, 1.0], [0.0, 0.9]):
        with pytest.raises(ValueError, match="increase from 0 to 1"):
            check_bins(bad)


def test_fractions_filter_and_average(tmp_path: Path):
    paths = [
        # 0.5: positions 0, 2, 3 unchanged (low bin 1/2, high bin 2/2); 1.0: only position 3
        latent_table(tmp_path, 4, {0.5: "MACD", 1.0: "AAAD"}),
        # 0.5: nothing unchanged -> fails the 20% filter
        latent_table(tmp_path, 2, {0.5: "AAAA", 1.0: "AAAA"}, baseline="MKCA"),
        skipped_table(tmp_path, 9),
        # 0.5: position 3 only -> 25% > 20%, kept
        latent_table(tmp_path, 6, {0.5: "AAAD", 1.0: "AAAA"}),
    ]
    table = summarize(paths, BINS, filter_multiplier=0.5, min_fraction_unchanged=0.2)
    assert table.schema == SUMMARY_SCHEMA
    assert set(table.column("n_latents_kept").to_pylist()) == {2}
    assert [r["latent"] for r in rows(table, scope="latent", bin_low=None, multiplier=0.5)] == [
        2,
        4,
        6,
    ]
    overall = {r["latent"]: r for r in rows(table, scope="latent", bin_low=None, multiplier=0.5)}
    assert overall[4]["fraction_unchanged"] == 0.75 and overall[4]["kept"]
    assert overall[2]["fraction_unchanged"] == 0.0 and not overall[2]["kept"]
    assert overall[2]["fraction_baseline_unchanged"] == 0.75
    assert overall[6]["fraction_unchanged"] == 0.25 and overall[6]["kept"]
    low, high = (
        rows(table, latent=4, multiplier=0.5, bin_low=0.0),
        rows(table, latent=4, multiplier=0.5, bin_low=0.5),
    )
    assert low[0]["fraction_unchanged"] == 0.5 and low[0]["n_positions"] == 2
    assert high[0]["fraction_unchanged"] == 1.0 and high[0]["bin_high"] == 1.0
    (skip,) = rows(table, latent=9)
    assert skip["skip_reason"].startswith("no steered sequence") and skip["kept"] is False
    assert skip["multiplier"] is None
    average = rows(table, scope="average")
    assert all(r["n_latents"] == 2 and r["latent"] is None for r in average)
    # the unclamped baseline is on the average rows (both kept latents: baseline = original)
    assert all(r["fraction_baseline_unchanged"] == 1.0 for r in average)
    by_key = {(r["multiplier"], r["bin_low"]): r["fraction_unchanged"] for r in average}
    assert by_key == {
        (0.5, None): (0.75 + 0.25) / 2,
        (0.5, 0.0): (0.5 + 0.0) / 2,
        (0.5, 0.5): (1.0 + 0.5) / 2,
        (1.0, None): (0.25 + 0.0) / 2,
        (1.0, 0.0): 0.0,
        (1.0, 0.5): (0.5 + 0.0) / 2,
    }


def long_table(tmp: Path, latent: int, conservation, unchanged, baseline_unchanged) -> Path:
    """One multiplier (0.5): positions with the given conservation; ``unchanged`` /
    ``baseline_unchanged`` say which keep their residue with and without the clamp."""
    n = len(conservation)
    original = ["A"] * n
    table = pa.table(
        {
            "latent": [latent] * n,
            "family": ["IPR_X"] * n,
            "id": ["P1"] * n,
            "multiplier": [0.5] * n,
            "clamp_value": [1.0] * n,
            "pos": list(range(n)),
            "original": original,
            "baseline": ["A" if b else "W" for b in baseline_unchanged],
            "steered": ["A" if u else "W" for u in unchanged],
            "consensus": original,
            "conservation": list(conservation),
            "entropy": [0.0] * n,
            "n_homologs": [3] * n,
        },
        schema=LATENT_SCHEMA,
    )
    meta = {META_LATENT: str(latent).encode(), META_FAMILY: b"IPR_X", META_MAX: b"2.0"}
    path = tmp / f"latent-{latent}.parquet"
    pq.write_table(table.replace_schema_metadata(meta), path)
    return path


def test_a_five_position_latent_weighs_its_five_positions(tmp_path: Path):
    """The L2-k8 dip of the issue: one latent with 5 positions in a bin must not pull the
    bin's average as much as one with 95 there."""
    few = long_table(tmp_path, 1, [0.7] * 5 + [0.1] * 45, [False] * 5 + [True] * 45, [True] * 50)
    many = long_table(tmp_path, 2, [0.7] * 95 + [0.1] * 5, [True] * 95 + [True] * 5, [True] * 100)
    table = summarize([few, many], BINS, filter_multiplier=0.5, min_fraction_unchanged=0.2)
    (high,) = rows(table, scope="average", bin_low=0.5)
    assert high["n_positions"] == 100 and high["n_latents"] == 2
    assert high["fraction_unchanged"] == pytest.approx(95 / 100)  # unweighted: (0 + 1) / 2
    assert high["fraction_baseline_unchanged"] == 1.0  # the unclamped forward, drawn
    assert (high["q25"], high["q75"]) == (0.25, 0.75)  # spread over latents: 0 and 1
    (low,) = rows(table, scope="average", bin_low=0.0)
    assert low["n_positions"] == 50 and low["fraction_unchanged"] == 1.0


def test_no_latents_give_an_empty_valid_summary(tmp_path: Path):
    table = summarize([], BINS, 0.5, 0.2)
    assert table.num_rows == 0 and table.schema == SUMMARY_SCHEMA
    only_skipped = summarize([skipped_table(tmp_path, 1)], BINS, 0.5, 0.2)
    assert only_skipped.column("n_latents_kept").to_pylist() == [0]
    assert rows(only_skipped, scope="average") == []


def test_the_filter_multiplier_must_have_been_steered(tmp_path: Path):
    path = latent_table(tmp_path, 1, {1.0: "MKCD"})
    with pytest.raises(ValueError, match="latent-1.parquet: no rows at the filter multiplier 0.5"):
        summarize([path], BINS, 0.5, 0.2)
