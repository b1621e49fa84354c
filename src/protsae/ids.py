"""Per-id hashing: which shard a sequence goes to, whether it is held out, and its random draws.

Each is a function of the sequence id (and a seed) alone, never of the sample's order or size,
so a sequence keeps its shard, split and sampled positions when the sample grows or is reordered.
"""

from __future__ import annotations

import hashlib

import numpy as np


def id_digest(seq_id: str) -> bytes:
    """An 8-byte hash of a sequence id: the one source of every per-id random choice."""
    return hashlib.blake2b(seq_id.encode(), digest_size=8).digest()


def _hash64(seq_id: str) -> int:
    return int.from_bytes(id_digest(seq_id), "little")


def is_holdout(seq_id: str, fraction: float) -> bool:
    """Whether a sequence belongs to the held-out evaluation set (stable per id)."""
    return (_hash64(seq_id) % 1_000_000) < round(fraction * 1_000_000)


def shard_of(seq_id: str, n_shards: int) -> int:
    """The training shard of a sequence: a function of its id alone.

    So a sequence's shard never changes when the sample grows or is reordered.
    Uses different hash bits from :func:`is_holdout` so the two are independent.
    """
    return (_hash64(seq_id) // 1_000_000) % n_shards


def id_rng(seq_id: str, seed: int) -> np.random.Generator:
    """A generator that depends on the sequence id and seed only, never on batching or order."""
    return np.random.default_rng([seed, _hash64(seq_id)])
