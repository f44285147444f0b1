"""Counter-based random numbers: a level is a pure function of its seed.

Levels are generated in batches, yet the level an environment gets must not
depend on which other environments happen to reset in the same batch. A
stateful generator shared by the batch cannot give that; hashing
``(level_seed, counter)`` with SplitMix64 can, fully vectorised.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_MAX_SEED = 2**64


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser over a uint64 array (wrapping arithmetic)."""
    z = np.asarray(x, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def as_seed_array(seeds) -> np.ndarray:
    """Seeds (ints >= 0) as a uint64 array; negative or huge seeds are rejected."""
    arr = np.asarray(seeds)
    if arr.dtype == object or np.any(arr < 0):
        raise ValueError(f"seeds must be integers in [0, 2**64), got {seeds!r}")
    return arr.astype(np.uint64)


def level_seeds(base_seeds: np.ndarray, episode_index: np.ndarray) -> np.ndarray:
    """Seed of the ``episode_index``-th level played by an env seeded ``base_seed``.

    Kept to 63 bits so a level seed is an ordinary int64 everywhere (info
    dicts, JSON, CSV).
    """
    mixed = splitmix64(splitmix64(as_seed_array(base_seeds)) ^ as_seed_array(episode_index))
    return mixed & np.uint64(2**63 - 1)


def uniform(seeds: np.ndarray, count: int, stream: int = 0) -> np.ndarray:
    """``(len(seeds), count)`` floats in [0, 1): draw ``j`` of stream ``stream`` per seed."""
    seeds = as_seed_array(seeds)
    counters = np.arange(count, dtype=np.uint64) + np.uint64(stream) * np.uint64(1 << 32)
    keyed = splitmix64(seeds)[:, None] ^ splitmix64(counters)[None, :]
    bits = splitmix64(keyed) >> np.uint64(11)
    return bits.astype(np.float64) * (1.0 / (1 << 53))


def random_choice_in_mask(mask: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index of a uniformly chosen True entry per row of ``mask`` (rows must have one).

    ``u`` holds one uniform draw per row; choosing the k-th True entry with
    ``k = floor(u * count)`` keeps the choice exactly uniform.
    """
    counts = mask.sum(axis=1)
    if np.any(counts == 0):
        raise ValueError("random_choice_in_mask: a row has no True entry")
    k = np.minimum((u * counts).astype(np.int64), counts - 1)
    ranks = np.cumsum(mask, axis=1) - 1
    hit = mask & (ranks == k[:, None])
    return hit.argmax(axis=1)
