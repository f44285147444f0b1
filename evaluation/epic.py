"""Tabular EPIC distance (Gleave et al. 2021): how far apart two rewards are, up to shaping and scale.

Two rewards that differ by potential shaping ``gamma * Phi(s') - Phi(s)`` or
by a positive factor induce the same optimal behaviour; EPIC first maps each
reward to a canonical form that removes shaping,

    C(R)(s, a, s') = R(s, a, s') + E[gamma R(s', A, S') - R(s, A, S') - gamma R(S, A, S')],

with ``S, S'`` drawn independently from a state distribution ``D_S`` and ``A``
uniform, then takes the Pearson distance ``sqrt((1 - rho) / 2)`` between the
canonical rewards over a distribution of transitions. Rewards here depend on
``(s, s')`` only, so ``A`` drops out and a reward on a level is a matrix over
pairs of states.

Coverage (our choice, per level): ``D_S`` is uniform over the distinct states
the given rollouts visit (agent and references on the shifted distribution,
including each episode's final state); the transitions are every action from
every covered state through the exact model, uniform; levels weigh equally.
Taking the optimal references' rollouts into the coverage puts every declared
reward's goal in it, so no declared reward is constant on the coverage.

Library goals (:mod:`evaluation.goals`) enter as reward sources built from
their model tables (:func:`goal_reward_source`), on a coverage cut where a
``reach`` goal is reached (:func:`goal_stop_tables`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from evaluation.goal_names import GoalName
from evaluation.goals import goal_table
from evaluation.levels import Level
from evaluation.rollouts import Rollouts

# Canonical rewards with a weighted variance below this are treated as constant (distance undefined).
MIN_VARIANCE = 1e-18


def canonicalize(reward: np.ndarray, state_weights: np.ndarray, gamma: float) -> np.ndarray:
    """Canonical form of a reward matrix ``R[i, j] = R(x_i, x_j)`` under ``D_S = state_weights``.

    ``state_weights`` sums to 1 and may be zero on states that only appear as successors.
    """
    reward = np.asarray(reward, dtype=np.float64)
    p = np.asarray(state_weights, dtype=np.float64)
    mean_next = reward @ p  # E_{S'} R(x_i, S')
    mean_all = float(p @ mean_next)  # E_{S, S'} R(S, S')
    return reward + gamma * mean_next[None, :] - mean_next[:, None] - gamma * mean_all


def pearson_distance(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """``sqrt((1 - rho) / 2)`` for the weighted Pearson ``rho``; NaN if either is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    w = np.full(len(x), 1.0 / len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    dx, dy = x - w @ x, y - w @ y
    vx, vy = w @ (dx * dx), w @ (dy * dy)
    if vx <= MIN_VARIANCE * max(1.0, float(w @ (x * x))) or vy <= MIN_VARIANCE * max(1.0, float(w @ (y * y))):
        return math.nan
    rho = float(np.clip((w @ (dx * dy)) / math.sqrt(vx * vy), -1.0, 1.0))
    return math.sqrt((1.0 - rho) / 2.0)


@dataclass
class LevelCoverage:
    """Covered states of one level and the transitions EPIC compares rewards on."""

    level: Level
    states: np.ndarray  # (n,) model indices: covered states, then successor-only states
    state_weights: np.ndarray  # (n,) D_S, uniform on covered states, zero on successor-only ones
    source: np.ndarray  # (m,) transition start, index into ``states``
    target: np.ndarray  # (m,) transition end, index into ``states``
    weights: np.ndarray  # (m,) transition weights (sum to 1 over all levels)

    @property
    def state_vectors(self) -> np.ndarray:
        return self.level.model.states[self.states]


def coverage(
    rollouts: Sequence[Rollouts],
    levels: Sequence[Level],
    max_levels: int | None = None,
    stop_tables: Sequence[np.ndarray] | None = None,
) -> list[LevelCoverage]:
    """Per-level coverage from rollouts that all share ``levels`` (one episode per level).

    ``stop_tables`` (one ``(S, A)`` table per level) cut every episode after its
    first step whose entry is positive: the coverage of a goal that is over
    once reached (:func:`evaluation.goals.goal_ends`), whose reward says
    nothing about the steps after. The state that step enters is a successor
    only (unless covered otherwise): the steps out of it are steps after.
    """
    n_levels = len(levels) if max_levels is None else min(len(levels), max_levels)
    for r in rollouts:
        if r.num_episodes != len(levels):
            raise ValueError(
                f"coverage: {r.policy} rollouts have {r.num_episodes} episodes for {len(levels)} levels"
            )
    result = []
    for e in range(n_levels):
        level = levels[e]
        model = level.model
        visited = []
        for r in rollouts:
            alive = r.alive[:, e]
            idx = level.index_of(r.states[alive, e])
            taken = r.actions[alive, e]
            entered = model.next_state[idx, taken]
            if stop_tables is not None:
                reached = np.flatnonzero(stop_tables[e][idx, taken] > 0)
                if len(reached):
                    # the state the goal is reached in is entered, not left: a successor only
                    idx, entered = idx[: reached[0] + 1], entered[: reached[0]]
            visited += [idx, entered]
        covered = np.unique(np.concatenate(visited))
        successors = np.setdiff1d(np.unique(model.next_state[covered]), covered)
        states = np.concatenate([covered, successors])
        position = {int(s): i for i, s in enumerate(states)}
        n_cov, n_actions = len(covered), model.num_actions
        p = np.zeros(len(states))
        p[:n_cov] = 1.0 / n_cov
        source = np.repeat(np.arange(n_cov), n_actions)
        target = np.array([position[int(s)] for s in model.next_state[covered].ravel()], dtype=np.int64)
        weights = np.full(len(source), 1.0 / (n_cov * n_actions * n_levels))
        result.append(LevelCoverage(level, states, p, source, target, weights))
    return result


def declared_reward_matrices(cov: LevelCoverage) -> dict[str, np.ndarray]:
    """Every declared reward of the level over all pairs of the coverage's states.

    A task that values arbitrary transitions (``transition_rewards``) is asked
    directly. Otherwise (a Gymnasium adapter) the rewards are known only on the
    model's own transitions; a pair ``(s, s')`` the simulator never produces is
    valued as *entering* ``s'``: the mean reward of the model's transitions into
    ``s'`` (zero if none). Exact for rewards of the state entered (reach a goal,
    step on lava), an approximation for rewards that depend on where the agent
    came from.
    """
    x = cov.state_vectors
    n = len(x)
    core = cov.level.core
    if hasattr(core, "transition_rewards"):
        rewards = core.transition_rewards(np.repeat(x, n, axis=0), np.tile(x, (n, 1)))
        return {name: value.reshape(n, n) for name, value in rewards.items()}
    return table_matrices(cov, cov.level.model.rewards)


def table_matrices(cov: LevelCoverage, tables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rewards given as ``(S, A)`` tables on the level's model, over all pairs of the coverage's states.

    A pair the model realises gets its transition's reward; any other pair
    ``(s, s')`` is valued as *entering* ``s'`` (the mean reward of the
    model's transitions into ``s'``, zero if none). Rewards compared under
    this one convention are compared like for like, whatever each would
    pay on transitions the simulator never produces.
    """
    x = cov.state_vectors
    n = len(x)
    model = cov.level.model
    position = np.full(model.num_states, -1)
    position[cov.states] = np.arange(n)
    source = np.repeat(np.arange(model.num_states), model.num_actions)
    target = model.next_state.ravel()
    counts = np.bincount(target, minlength=model.num_states)
    realised = (position[source] >= 0) & (position[target] >= 0)
    rows, cols = position[source[realised]], position[target[realised]]
    result = {}
    for name, table in tables.items():
        values = np.asarray(table, dtype=np.float64).ravel()
        entering = np.bincount(target, weights=values, minlength=model.num_states)
        entering = np.divide(entering, counts, out=np.zeros_like(entering), where=counts > 0)
        matrix = np.tile(entering[cov.states][None, :], (n, 1))
        matrix[rows, cols] = values[realised]
        result[name] = matrix
    return result


def model_reward_matrices(cov: LevelCoverage) -> dict[str, np.ndarray]:
    """Every declared reward from its model table (:func:`table_matrices`), even where the task values any pair."""
    return table_matrices(cov, cov.level.model.rewards)


RewardMatrices = Callable[[LevelCoverage], dict[str, np.ndarray]]


def epic_distances(
    coverages: Sequence[LevelCoverage],
    reward_sources: Sequence[RewardMatrices],
    gamma: float,
    pairs: Sequence[tuple[str, str]] | None = None,
) -> dict[tuple[str, str], float]:
    """EPIC distance of every pair of named rewards (or the given ``pairs``), pooled over levels.

    ``reward_sources`` map a level's coverage to reward matrices by name
    (:func:`declared_reward_matrices`, a learned reward's ``matrices``).
    """
    values: dict[str, list[np.ndarray]] = {}
    weights = []
    for cov in coverages:
        matrices = {}
        for source in reward_sources:
            matrices.update(source(cov))
        for name, r in matrices.items():
            canonical = canonicalize(r, cov.state_weights, gamma)
            values.setdefault(name, []).append(canonical[cov.source, cov.target])
        weights.append(cov.weights)
    w = np.concatenate(weights)
    pooled = {name: np.concatenate(v) for name, v in values.items()}
    names = list(pooled)
    if pairs is None:
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    unknown = [n for pair in pairs for n in pair if n not in pooled]
    if unknown:
        raise ValueError(f"unknown reward name {unknown[0]!r}; known: {names}")
    return {(a, b): pearson_distance(pooled[a], pooled[b], w) for a, b in pairs}


# ------------------------------------------------------------------ library goals


def goal_stop_tables(goal_name: str, levels: Sequence[Level], max_levels: int | None = None):
    """Where EPIC's coverage of the library goal ``kind:target`` ends (:func:`coverage`'s ``stop_tables``),
    or None to keep every step.

    A ``reach`` goal is over once reached (:func:`evaluation.goals.goal_ends`):
    each episode is cut after it first enters the place, so what an agent does
    there afterwards (idling in and out of a corner) does not count against a
    declared reward paid on the first visit only. ``stay`` and ``set`` goals
    keep every step.
    """
    goal = GoalName.parse(goal_name)
    if goal.kind != "reach":
        return None
    n_levels = len(levels) if max_levels is None else min(len(levels), max_levels)
    return [goal_table(goal, lv) for lv in levels[:n_levels]]


def goal_reward_source(goal_name: str):
    """A reward source for :func:`epic_distances`: the library goal ``kind:target``.

    Built from the goal's model table (:func:`table_matrices`): compare it
    with declared rewards built the same way (:func:`model_reward_matrices`).
    A flag goal and a task's own ``transition_rewards`` disagree on pairs no
    step produces (a flag set far from the object), and EPIC's
    canonicalisation weighs every pair.
    """
    goal = GoalName.parse(goal_name)

    def source(cov: LevelCoverage) -> dict[str, np.ndarray]:
        return table_matrices(cov, {goal_name: goal_table(goal, cov.level)})

    return source
