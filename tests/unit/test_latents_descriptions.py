"""Generated latent descriptions: best family and best concepts with their scores, how often."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from protsae.latents.concepts import CONCEPTS_SCHEMA
from protsae.latents.descriptions import (
    DESCRIPTIONS_SCHEMA,
    active_fractions,
    concept_phrase,
    descriptions_table,
)


def _concepts(rows):
    return pa.Table.from_pylist(
        [dict(latent=lat, concept=c, threshold=0.15, precision=0.9, recall=0.9, f1_test=f,
              f1_train=f, n_train=10, n_test=10) for lat, c, f in rows],
        schema=CONCEPTS_SCHEMA,
    )  # fmt: skip


def test_each_latent_is_described_from_its_scored_tables() -> None:
    families = pa.table(
        {"latent": [0, 1, 2], "family": ["IPRZ00001", None, "IPR000001"], "f1": [0.94, None, 0.2]}
    )
    concepts = _concepts(
        [
            (0, "MOTIF:planted motif IPRZ00001.m2", 0.81),
            (0, "TRANSMEM", 0.3),
            (0, "HELIX", 0.35),
            (0, "COILED", 0.05),  # below the floor: not named
            (2, "BINDING:Zn(2+)", 0.6),
        ]
    )
    seq_stats = pa.table({"latent": [0, 0, 2], "n_active": [30, 10, 1]})
    active = active_fractions(seq_stats, 3, n_residues=1000)
    table = descriptions_table(3, families, concepts, active)
    assert table.schema.equals(DESCRIPTIONS_SCHEMA)
    text = dict(zip(table["latent"].to_pylist(), table["description"].to_pylist(), strict=True))
    assert text[0] == (
        "IPRZ00001 family (F1 0.94); MOTIF 'planted motif IPRZ00001.m2' residues (F1 0.81); "
        "HELIX residues (F1 0.35); active on 4% of residues"
    )
    assert text[1] == "never active on the evaluation set"
    assert text[2] == (
        "IPR000001 family (F1 0.20); BINDING 'Zn(2+)' residues (F1 0.60); active on 0.1% of residues"
    )
    assert np.allclose(active, [0.04, 0.0, 0.001])


def test_concept_phrases() -> None:
    assert concept_phrase("TRANSMEM") == "TRANSMEM residues"
    assert concept_phrase("MOD_RES:Phosphoserine") == "MOD_RES 'Phosphoserine' residues"
