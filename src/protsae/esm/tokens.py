"""Token batches for ESM-2, equal to fair-esm's ``BatchConverter`` output but built by table lookup.

fair-esm tokenizes a sequence by splitting the string on each of its 33 tokens in turn, which
costs about as much as the forward pass of a small model (a profile of a probe job: 2.7 s of
tokenizing against 2.8 s of attention). A residue string needs none of that: every letter is one
token. ``ResidueBatchConverter`` maps the bytes through a lookup table and lays the batch out as
fair-esm does (BOS, residues, EOS, padding); a string with anything but one-letter tokens
(``<mask>`` written out, whitespace, an unknown letter) goes to fair-esm's own converter, so the
result is always fair-esm's.
"""

from __future__ import annotations

from collections.abc import Sequence

import esm
import numpy as np
import torch

Record = tuple[str, str]


class ResidueBatchConverter:
    """Callable ``records -> (labels, strings, tokens [B, T] int64)``, like fair-esm's converter."""

    def __init__(self, alphabet: esm.data.Alphabet) -> None:
        self.alphabet = alphabet
        table = np.full(256, -1, dtype=np.int64)
        for token, index in alphabet.tok_to_idx.items():
            if len(token) == 1 and token.isascii() and not token.isspace():
                table[ord(token)] = index
        self.table = table

    def _encode(self, sequence: str) -> np.ndarray | None:
        try:
            raw = np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)
        except UnicodeEncodeError:
            return None
        encoded = self.table[raw]
        return None if (encoded < 0).any() else encoded

    def __call__(self, records: Sequence[Record]) -> tuple[list[str], list[str], torch.Tensor]:
        labels = [label for label, _ in records]
        strings = [sequence for _, sequence in records]
        encoded = [self._encode(sequence) for sequence in strings]
        if any(e is None for e in encoded):
            labels_, strings_, tokens = self.alphabet.get_batch_converter()(records)
            return list(labels_), list(strings_), tokens
        bos, eos = int(self.alphabet.prepend_bos), int(self.alphabet.append_eos)
        width = max(len(e) for e in encoded) + bos + eos
        tokens = np.full((len(encoded), width), self.alphabet.padding_idx, dtype=np.int64)
        for row, sequence in enumerate(encoded):
            if bos:
                tokens[row, 0] = self.alphabet.cls_idx
            tokens[row, bos : bos + len(sequence)] = sequence
            if eos:
                tokens[row, bos + len(sequence)] = self.alphabet.eos_idx
        return labels, strings, torch.from_numpy(tokens)
