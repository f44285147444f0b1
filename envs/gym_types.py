"""What a user's :class:`~envs.gym_adapter.GymTask` code is written against.

Reward functions receive a :class:`Transition`; a state codec implements
:class:`StateCodec`; a level seed reaches ``env.reset`` through
:func:`fold_seed`. These sit below the task, the batch and the exact model so
that each of them can use them without importing the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

SEED_BITS = 31


def fold_seed(seed: int | np.integer) -> int:
    """A 64-bit level seed folded to ``SEED_BITS`` bits for ``env.reset(seed=...)``.

    The suite's level seeds are 64-bit; many envs accept only 32-bit seeds, so
    the high bits are mixed into the low ones rather than cut off (two seeds
    differing only in their high bits still give different levels).
    """
    s = int(seed)
    return (s ^ (s >> 31) ^ (s >> 62)) & ((1 << SEED_BITS) - 1)


@dataclass(frozen=True)
class Transition:
    """One step of one env, as reward functions see it (``env`` is the unwrapped env after the step)."""

    env: Any
    obs: Any
    action: int
    reward: float
    next_obs: Any
    terminated: bool
    truncated: bool
    info: dict


class StateCodec(Protocol):
    """Exact state of an env as a tuple of ints, and back."""

    def get(self, env) -> tuple[int, ...]: ...

    def set(self, env, state: Sequence[int]) -> None: ...


RewardSpec = str | Callable[[Transition], float]


def is_int_tuple(value) -> bool:
    """A tuple of integers (not bools): a state that is its own state vector."""
    return isinstance(value, tuple) and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
    )
