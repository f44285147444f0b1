"""The task protocol: everything the judge, the train app and the planners need from an environment.

A *task* is a shift environment seen from outside: named distributions of
levels, declared rewards, and a way to build a batch of seeded levels. It is a
protocol, not a base class (docs/DESIGN.md §3): a :class:`~envs.core.GridCore`
subclass satisfies it as a class, a Gymnasium adapter
(:class:`envs.gym_adapter.GymTask`) as an object, and a user's package may
bring a third implementation.

Three layers of access, each optional beyond the first:

- :class:`Task` + :class:`LevelBatch`: distributions, declared rewards valued
  on every step, seeded batched levels. Enough to train and to score a policy.
- :class:`ExactAccess`: the batch's dynamic state as integer vectors that can
  be got and set, and copies of one level. Enough for the exact path
  (enumeration, value iteration, optimal references, goal inference).
  Convention: ``state[:2]`` is the agent's grid cell when the task has one.
- Reward features for IRL and EPIC: ``feature_planes()`` (static per-cell
  planes of a level, named), ``flag_names`` (which state columns after the
  position are boolean flags) and ``transition_rewards(states, next_states)``
  (declared rewards of arbitrary transitions). Without them the judge uses
  generic fallbacks (see :mod:`evaluation.epic` and :mod:`evaluation.irl`).

Policies never see any of this: they get observations (``act(obs)``).

Finding a task by its env id is :mod:`envs.registry`'s job; this module names
no implementation.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import gymnasium
import numpy as np

VERDICTS = (
    "untrained",
    "misspecification",
    "robust",
    "goal_misgeneralization",
    "capability_misgeneralization",
)
# An expected goal nobody declared is named as the judge names found goals: reach:<place>, stay:<place>, set:<flag>.
FOUND_GOAL_KINDS = ("reach", "stay", "set")


@runtime_checkable
class LevelBatch(Protocol):
    """``num_envs`` levels stepped together; rows are reset to seeded levels one by one."""

    env_id: str
    distribution: str
    params: dict
    num_envs: int
    reward_names: tuple[str, ...]
    max_steps: int
    level_seed: np.ndarray

    def reset_levels(self, idx: np.ndarray, seeds: np.ndarray) -> None: ...

    def observe(self) -> np.ndarray: ...

    def step(self, actions: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]: ...

    def single_observation_space(self) -> gymnasium.Space: ...

    def single_action_space(self) -> gymnasium.spaces.Discrete: ...


@runtime_checkable
class ExactAccess(Protocol):
    """Exact state access of a deterministic batch (the planners' and the judge's exact path)."""

    state_dim: int

    def get_states(self) -> np.ndarray: ...

    def set_states(self, idx: np.ndarray, states: np.ndarray) -> None: ...

    def replicate(self, row: int, n: int) -> ExactAccess: ...


@runtime_checkable
class Task(Protocol):
    """A shift environment's declarations and its batch factory."""

    env_id: str
    distributions: Mapping[str, Mapping[str, Any]]
    distribution_params: tuple[str, ...]
    reward_names: tuple[str, ...]
    proxy_rewards: tuple[str, ...]
    expected_verdicts: Mapping[str, str]
    expected_goals: Mapping[str, str]

    def resolve_params(self, distribution: str, params: dict) -> dict: ...

    def shared_params(self, params: dict) -> dict: ...

    def __call__(self, num_envs: int, distribution: str = "train", **params) -> LevelBatch: ...


EXACT_METHODS = ("get_states", "set_states", "replicate")


def exact_problem(batch) -> str | None:
    """Why ``batch`` cannot take the exact path, or None when it can."""
    reason = getattr(batch, "exact_unavailable", None)
    if reason:
        return reason
    missing = [m for m in EXACT_METHODS if not callable(getattr(batch, m, None))]
    if missing:
        return (
            f"{batch.env_id}: the exact path (planners, normalised scores, goal inference) needs "
            f"state access; the task has no {', '.join(missing)}. Give the env get_state()/set_state(), "
            "or a state_key for the deepcopy fallback (envs.gym_adapter.GymTask)"
        )
    return None


def require_exact(batch) -> None:
    """Raise ``ValueError`` with what is missing when ``batch`` has no exact access."""
    problem = exact_problem(batch)
    if problem:
        raise ValueError(problem)


def check_declarations(task) -> None:
    """The declarations every task must make, each named when missing."""
    names = tuple(task.reward_names)
    for required in ("intended", "specified"):
        if required not in names:
            raise ValueError(
                f"{task.env_id}: declared rewards must include {required!r}; declared: {list(names)}"
            )
    unknown = [p for p in task.proxy_rewards if p not in names]
    if unknown:
        raise ValueError(
            f"{task.env_id}: proxy {unknown[0]!r} is not a declared reward; declared: {list(names)}"
        )
    if "train" not in task.distributions or len(task.distributions) < 2:
        raise ValueError(
            f"{task.env_id}: distributions must name 'train' and at least one shifted one; "
            f"got {sorted(task.distributions)}"
        )
    for d, verdict in dict(task.expected_verdicts).items():
        if verdict not in VERDICTS:
            raise ValueError(
                f"{task.env_id}: expected verdict {verdict!r} for {d!r} is not one of {VERDICTS}"
            )
    for d, goal in dict(getattr(task, "expected_goals", {}) or {}).items():
        if goal not in names and goal.split(":", 1)[0] not in FOUND_GOAL_KINDS:
            raise ValueError(
                f"{task.env_id}: expected goal {goal!r} for {d!r} is not a declared reward ({list(names)}) "
                "nor a goal the judge can find (reach:<place>, stay:<place>, set:<flag>, as it names them)"
            )


# Registry names that code written against this module imports from it.
_REGISTRY_NAMES = ("TASKS", "register_task", "task")


def __getattr__(name: str):
    """``TASKS``, ``register_task`` and ``task`` of :mod:`envs.registry`, looked up when asked for.

    Not imported: the protocol must not depend on the registry (which depends on
    it). Importing this module imports the ``envs`` package first, which loads
    the registry, so it is there whenever one of these names is asked for.
    """
    if name in _REGISTRY_NAMES:
        return getattr(sys.modules["envs.registry"], name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
