"""Exact level models by search through the simulator, and value iteration.

A deterministic shift environment exposes its dynamic state (``get_states`` /
``set_states`` on the batched core). :func:`enumerate_level` builds the
level's tabular model generically: breadth-first search from the start state,
expanding a whole frontier times every action in one batched ``step``. Value
iteration on that model gives ``Q*`` for every declared reward at once, which
the optimal planner, the normalised score and reward inference all share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.core import GridCore

DEFAULT_GAMMA = 0.99


@dataclass
class TabularModel:
    """Deterministic model of one level: ``S`` states, ``A`` actions.

    ``next_state[s, a]`` is the successor's index; where ``terminal[s, a]`` the
    episode ends on that transition and the successor is never expanded.
    """

    states: np.ndarray  # (S, state_dim) int
    next_state: np.ndarray  # (S, A) int
    terminal: np.ndarray  # (S, A) bool
    rewards: dict[str, np.ndarray]  # name -> (S, A) float
    start: int = 0

    @property
    def num_states(self) -> int:
        return len(self.states)

    @property
    def num_actions(self) -> int:
        return self.next_state.shape[1]

    def index_of(self, states: np.ndarray) -> np.ndarray:
        """Row indices of ``states`` (each must be in the model)."""
        lookup = {tuple(s): i for i, s in enumerate(self.states.tolist())}
        try:
            return np.array([lookup[tuple(s)] for s in np.asarray(states).tolist()], dtype=np.int64)
        except KeyError as err:
            raise ValueError(f"state {err.args[0]} is not in the level model") from None


def enumerate_level(core: GridCore, row: int = 0, max_states: int = 200_000) -> TabularModel:
    """Tabular model of the level in ``core``'s ``row``, from its current state."""
    n_actions = core.single_action_space().n
    start = core.get_states()[row]
    chunk = 256
    search = core.replicate(row, chunk * n_actions)
    index = {tuple(start.tolist()): 0}
    states = [start]
    next_rows, term_rows, reward_rows = [], [], {name: [] for name in core.reward_names}
    frontier_begin = 0
    while frontier_begin < len(states):
        frontier = np.array(states[frontier_begin : frontier_begin + chunk])
        frontier_begin += len(frontier)
        k = len(frontier) * n_actions
        rows = np.arange(k)
        search.set_states(rows, np.repeat(frontier, n_actions, axis=0))
        actions = np.tile(np.arange(n_actions), chunk)
        rewards, terminated, _ = search.step(actions)
        successors = search.get_states()[:k]
        succ_index = np.empty(k, dtype=np.int64)
        for j, succ in enumerate(successors.tolist()):
            key = tuple(succ)
            if key not in index:
                index[key] = len(states)
                states.append(np.array(succ))
            succ_index[j] = index[key]
        next_rows.append(succ_index.reshape(-1, n_actions))
        term_rows.append(terminated[:k].reshape(-1, n_actions))
        for name in core.reward_names:
            reward_rows[name].append(rewards[name][:k].reshape(-1, n_actions))
        if len(states) > max_states:
            raise ValueError(f"{core.env_id}: level has more than {max_states} states; provide a model")
    return TabularModel(
        states=np.array(states),
        next_state=np.concatenate(next_rows),
        terminal=np.concatenate(term_rows),
        rewards={name: np.concatenate(r).astype(np.float64) for name, r in reward_rows.items()},
    )


def value_iteration(
    model: TabularModel,
    rewards: np.ndarray,
    gamma: float = DEFAULT_GAMMA,
    tol: float = 1e-8,
    max_iters: int = 10_000,
) -> np.ndarray:
    """``Q*`` for a stack of rewards ``(K, S, A)`` on one model; returns ``(K, S, A)``."""
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim == 2:
        return value_iteration(model, rewards[None], gamma, tol, max_iters)[0]
    cont = gamma * ~model.terminal
    v = np.zeros(rewards.shape[:2])
    for _ in range(max_iters):
        q = rewards + cont[None] * v[:, model.next_state]
        v_new = q.max(axis=2)
        if np.max(np.abs(v_new - v)) < tol:
            return q
        v = v_new
    return q


def greedy_actions(q: np.ndarray) -> np.ndarray:
    """Optimal action per state (lowest index among ties, so plans are reproducible)."""
    return q.argmax(axis=-1)
