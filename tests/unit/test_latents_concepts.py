"""Residue concepts per latent: planted concept latents are found, decoys are not, a domain is
recalled once, the sparse counts equal a brute-force count, no features give an empty table."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from protsae.latents.collect import EvalRecord
from protsae.latents.concepts import (
    CONCEPTS_SCHEMA,
    ConceptCollector,
    ConceptCounts,
    concept_instances,
    concept_specific_latents,
    stream_concepts,
)
from protsae.sequences.features import SWISSPROT_FEATURES_SCHEMA

WIDTH, K = 12, 3
PLANTED, DECOY, BACKGROUND = 3, 5, 7


def _features(rows: list[tuple]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            dict(accession=a, type=t, start=s, end=e, start_uncertain=False,
                 end_uncertain=False, concept=c, qualifiers="{}")
            for a, t, s, e, c in rows
        ],
        schema=SWISSPROT_FEATURES_SCHEMA,
    )  # fmt: skip


def _planted_set(n_proteins: int = 40, length: int = 80, seed: int = 0):
    """Proteins with a 'MOTIF:m' at a random place. Latent PLANTED fires on the motif's
    residues; latent DECOY fires on as many residues with the motif's letters elsewhere;
    BACKGROUND fires at random everywhere."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    records, codes, features = [], {}, []
    for i in range(n_proteins):
        acc = f"P{i:03d}"
        seq = rng.choice(letters, length)
        start = int(rng.integers(5, length - 30))
        motif = slice(start, start + 8)
        decoy_start = start + 15  # the same letters, other positions
        seq[decoy_start : decoy_start + 8] = seq[motif]
        values = np.zeros((length, K), np.float32)
        indices = np.tile(np.array([0, 1, 2], np.int32), (length, 1))
        values[motif, 0], indices[motif, 0] = rng.uniform(1.0, 2.0, 8), PLANTED
        decoy = slice(decoy_start, decoy_start + 8)
        values[decoy, 1], indices[decoy, 1] = rng.uniform(1.0, 2.0, 8), DECOY
        noise = rng.random(length) < 0.3
        values[noise, 2], indices[noise, 2] = rng.uniform(0.1, 2.0, noise.sum()), BACKGROUND
        records.append(EvalRecord(acc, "".join(seq), "train" if i % 2 else "test"))
        codes[acc] = (values, indices)
        features.append((acc, "MOTIF", start + 1, start + 8, "MOTIF:m"))
    return records, codes, _features(features)


def _run(records, codes, features, min_proteins=5, fractions=(0.0, 0.15, 0.5, 0.6, 0.8)):
    rep_split = {r.id: r.split for r in records}
    instances = concept_instances(features, rep_split, min_proteins)
    train_max = np.zeros(WIDTH, np.float32)
    for r in records:
        if r.split == "train":
            values, indices = codes[r.id]
            np.maximum.at(train_max, indices.ravel(), values.ravel())

    def encode(batch):
        for seq_id, _ in reversed(batch):  # any order
            yield seq_id, *codes[seq_id]

    table = stream_concepts(
        [records[:15], records[15:]], encode, instances, train_max, fractions, batch_residues=200
    )
    return table, instances


def test_planted_concept_latent_is_found_and_the_decoy_is_not() -> None:
    records, codes, features = _planted_set()
    table, _ = _run(records, codes, features)
    assert table.schema.equals(CONCEPTS_SCHEMA)
    rows = {r["latent"]: r for r in table.to_pylist()}
    assert rows[PLANTED]["concept"] == "MOTIF:m"
    assert rows[PLANTED]["f1_test"] > 0.9 and rows[PLANTED]["f1_train"] > 0.9
    assert rows[PLANTED]["n_train"] == rows[PLANTED]["n_test"] == 20
    assert DECOY not in rows  # no labelled residue ever fires
    assert rows[BACKGROUND]["f1_test"] < 0.5
    assert concept_specific_latents(table) == 1


def test_domain_level_recall_counts_a_domain_once() -> None:
    # Two 10-residue domains per protein: latent 1 fires on every residue of the first domain
    # only, latent 2 on one residue of each. Per instance, latent 1 recalls half the domains
    # (not 10 of 11 residues' worth), latent 2 all of them.
    records, codes, rows = [], {}, []
    for i in range(20):
        acc = f"Q{i:03d}"
        values = np.zeros((60, 2), np.float32)
        indices = np.zeros((60, 2), np.int32)
        values[10:20, 0], indices[10:20, 0] = 1.0, 1
        values[[12, 42], 1], indices[[12, 42], 1] = 1.0, 2
        records.append(EvalRecord(acc, "A" * 60, "train" if i % 2 else "test"))
        codes[acc] = (values, indices)
        rows += [(acc, "DOMAIN", 11, 20, "DOMAIN:d"), (acc, "DOMAIN", 41, 50, "DOMAIN:d")]
    table, instances = _run(records, codes, _features(rows))
    got = {r["latent"]: r for r in table.to_pylist()}
    assert instances.n_instances.tolist() == [[20], [20]]
    assert got[1]["recall"] == pytest.approx(0.5) and got[1]["precision"] == pytest.approx(1.0)
    assert got[2]["recall"] == pytest.approx(1.0) and got[2]["precision"] == pytest.approx(1.0)


def test_disulfide_labels_its_two_ends_only() -> None:
    features = _features(
        [("A1", "DISULFID", 3, 30, "DISULFID"), ("A1", "DISULFID", 3, 30, "DISULFID")]
    )
    instances = concept_instances(features, {"A1": "train"}, min_proteins=1)
    assert instances.by_protein["A1"].tolist() == [[0, 2, 3], [0, 29, 30]]


def _brute_force(records, codes, instances, train_max, fractions):
    """Per (split, latent, concept, threshold): predicted, labelled-predicted residues and
    recalled instances, by looping over dense activations."""
    n_c, n_t = len(instances.concepts), len(fractions)
    active = np.zeros((2, WIDTH, n_t))
    labelled = np.zeros((2, WIDTH, n_c, n_t))
    found = np.zeros((2, WIDTH, n_c, n_t))
    for r in records:
        s = 0 if r.split == "train" else 1
        values, indices = codes[r.id]
        dense = np.zeros((len(values), WIDTH))
        np.put_along_axis(dense, indices.astype(int), values, 1)
        label = np.zeros((len(values), n_c), bool)
        inst = instances.by_protein.get(r.id, np.empty((0, 3), int))
        for c, a, b in inst:
            label[a:b, c] = True
        for j, f in enumerate(fractions):
            above = dense > train_max * f
            active[s, :, j] += above.sum(0)
            labelled[s, :, :, j] += above.T.astype(int) @ label.astype(int)
            for c, a, b in inst:
                found[s, :, c, j] += above[a:b].any(0)
    return active, labelled, found


def test_sparse_counts_equal_a_brute_force_count() -> None:
    records, codes, _ = _planted_set(n_proteins=12, seed=3)
    rng = np.random.default_rng(1)
    rows = []
    for r in records:  # overlapping instances of one concept, single residues, a second concept
        a = int(rng.integers(1, 60))
        rows += [
            (r.id, "DOMAIN", a, a + 12, "DOMAIN:x"),
            (r.id, "DOMAIN", a + 5, a + 20, "DOMAIN:x"),
        ]
        site = int(rng.integers(1, 80))
        rows += [(r.id, "ACT_SITE", site, site, "ACT_SITE")]
    for values, indices in codes.values():  # random codes, ties included
        for row in indices:
            row[:] = rng.permutation(WIDTH)[:K]
        values[:] = rng.choice([0.0, 0.5, 1.0, 1.5, 3.0], values.shape)
    fractions = (0.0, 0.2, 0.5)
    rep_split = {r.id: r.split for r in records}
    instances = concept_instances(_features(rows), rep_split, min_proteins=1)
    train_max = np.full(WIDTH, 3.0, np.float32)
    counts = ConceptCounts(train_max, len(instances.concepts), fractions)
    collector = ConceptCollector(counts, instances, batch_residues=100)
    for r in records:
        collector.add(r.id, r.split, *codes[r.id])
    collector.flush()
    active, labelled, found = _brute_force(records, codes, instances, train_max, fractions)
    n_c = len(instances.concepts)

    def at_least(x, shape):
        return np.flip(np.cumsum(np.flip(x.reshape(shape), -1), -1), -1)

    assert np.array_equal(at_least(counts.active, (2, WIDTH, 3)), active)
    assert np.array_equal(at_least(counts.labelled, (2, WIDTH, n_c, 3)), labelled)
    assert np.array_equal(at_least(counts.found, (2, WIDTH, n_c, 3)), found)


def test_no_features_give_an_empty_valid_table() -> None:
    records, codes, _ = _planted_set(n_proteins=6)
    table, instances = _run(records, codes, SWISSPROT_FEATURES_SCHEMA.empty_table())
    assert instances.concepts == []
    assert table.num_rows == 0 and table.schema.equals(CONCEPTS_SCHEMA)


def test_rare_concepts_are_left_out() -> None:
    records, codes, features = _planted_set(n_proteins=8)  # 4 train proteins
    assert concept_instances(features, {r.id: r.split for r in records}, 5).concepts == []
    assert concept_instances(features, {r.id: r.split for r in records}, 4).concepts == ["MOTIF:m"]
