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
"""

from __future__ import annotations

import importlib
import importlib.util
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


LAZY_PREFIX = "GMSuite/MiniGrid-"  # the suite's Minigrid tasks, imported on first use (minigrid is an extra)

# Tasks that are not GridCore classes (Gymnasium adapters, users' own), by env id.
TASKS: dict[str, Task] = {}


def register_task(task: Task, *, replace: bool = False) -> Task:
    """Make ``task`` known to every app under ``task.env_id`` (``envs.task(env_id)`` finds it)."""
    missing = [
        name
        for name in ("env_id", "distributions", "reward_names", "resolve_params", "shared_params")
        if not hasattr(task, name)
    ]
    if missing or not callable(task):
        raise ValueError(f"{task!r} is not a task: it lacks {missing or ['__call__']} (envs.task.Task)")
    check_declarations(task)
    if task.env_id in TASKS and not replace:
        return TASKS[task.env_id]
    TASKS[task.env_id] = task
    return task


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


def task(env_id: str) -> Task:
    """The task behind an env id: a registered adapter, or the core of a ``GMSuite`` env.

    A Gymnasium env that declares no distributions and rewards is not a task;
    the message says what to add.
    """
    if env_id in TASKS:
        return TASKS[env_id]
    if env_id.startswith(LAZY_PREFIX) and importlib.util.find_spec("minigrid") is not None:
        importlib.import_module("envs.minigrid_tasks")  # registers the suite's Minigrid tasks
        if env_id in TASKS:
            return TASKS[env_id]
    if env_id.startswith("MiniGrid-") and importlib.util.find_spec("minigrid") is not None:
        importlib.import_module("minigrid")  # registers the MiniGrid-* ids
    if env_id not in gymnasium.registry:
        known = sorted(set(TASKS) | {k for k in gymnasium.registry if k.startswith("GMSuite/")})
        raise ValueError(f"unknown environment {env_id!r}; registered tasks: {known}")
    entry = gymnasium.registry[env_id].entry_point
    env_cls = gymnasium.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
    core = getattr(env_cls, "core_cls", None)
    if core is not None:
        return core
    raise ValueError(
        f"{env_id} is a Gymnasium env but not a shift task: it declares no distributions and no "
        "rewards (intended, specified, proxies). Wrap it with envs.gym_adapter.GymTask(env_id, "
        "distributions={'train': {...}, 'test': {...}}, rewards={...}) and envs.register_task(...)"
    )
