"""What the sequence readers share: the input error, gzip detection, ESM-2's residue letters."""

from __future__ import annotations

import functools
import gzip
import os
from typing import IO

GZIP_MAGIC = b"\x1f\x8b"


class InputError(ValueError):
    """An input file is malformed; the message names the file, the record and the problem."""


@functools.cache
def esm_residue_letters() -> str:
    """The 25 residue letters ESM-2 has tokens for (its alphabet's standard tokens minus gaps)."""
    from esm.data import Alphabet  # deferred: importing esm imports torch

    tokens = Alphabet.from_architecture("ESM-1b").standard_toks
    return "".join(t for t in tokens if len(t) == 1 and t.isalpha())


def is_gzip(path: str | os.PathLike[str]) -> bool:
    """Whether a file is gzip-compressed, told by its magic bytes rather than its name."""
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def open_binary(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open plain or gzipped input for reading bytes."""
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def open_text(path: str | os.PathLike[str]) -> IO[str]:
    """Open plain or gzipped UTF-8 input for reading text, undecodable bytes replaced."""
    if is_gzip(path):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")
