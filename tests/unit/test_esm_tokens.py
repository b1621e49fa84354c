"""The table-lookup batch converter gives exactly fair-esm's BatchConverter output."""

from __future__ import annotations

import random

import esm
import pytest
import torch

from protsae.esm import RESIDUE_LETTERS
from protsae.esm.tokens import ResidueBatchConverter


@pytest.fixture(scope="module")
def alphabet():
    return esm.data.Alphabet.from_architecture("ESM-1b")


def _same(alphabet, records):
    mine = ResidueBatchConverter(alphabet)(records)
    theirs = alphabet.get_batch_converter()(records)
    assert list(mine[0]) == list(theirs[0]) and list(mine[1]) == list(theirs[1])
    assert mine[2].dtype == theirs[2].dtype == torch.int64
    assert torch.equal(mine[2], theirs[2])


def test_residue_batches_equal_fair_esm(alphabet):
    rng = random.Random(0)
    letters = sorted(RESIDUE_LETTERS)
    for _ in range(20):
        records = [
            (f"s{i}", "".join(rng.choices(letters, k=rng.randint(1, 60))))
            for i in range(rng.randint(1, 6))
        ]
        _same(alphabet, records)


def test_strings_with_special_tokens_take_fair_esms_path(alphabet):
    # '<mask>' written out is one token for fair-esm, six letters for a naive lookup
    _same(alphabet, [("a", "MK<mask>LV"), ("b", "ACDE")])
    _same(alphabet, [("a", "MK.-LV")])  # '.' and '-' are one-letter tokens of the alphabet


def test_a_letter_outside_the_alphabet_fails_as_in_fair_esm(alphabet):
    with pytest.raises(KeyError):
        ResidueBatchConverter(alphabet)([("a", "MKJ")])
    with pytest.raises(KeyError):
        alphabet.get_batch_converter()([("a", "MKJ")])
