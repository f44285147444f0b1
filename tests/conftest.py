"""Shared helpers for the environment-layer tests.

The reference implementations here (BFS, a pure-Python step function, a
reference level model) are written from the environment docstrings, not from
the library code, so the tests compare the batched numpy core against an
independent reading of the contract.
"""

from __future__ import annotations

from collections import deque

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs.core import LAVA, WALL

ENV_IDS = sorted(envs.ENVIRONMENTS)
ENV_DISTS = [(env_id, dist) for env_id in ENV_IDS for dist in envs.core_class(env_id).distributions]
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right (documented order)
GAMMA = 0.99

# Keyword arguments that make every env end episodes often enough for short tests.
SHORT_EPISODES = {"GMSuite/CoinRun-v0": {}, "GMSuite/Maze-v0": {"size": 7, "max_steps": 30}}


def env_dist_id(param) -> str:
    return f"{param[0].split('/')[1]}-{param[1]}" if isinstance(param, tuple) else str(param)


@pytest.fixture(params=ENV_DISTS, ids=env_dist_id)
def env_dist(request) -> tuple[str, str]:
    return request.param


def make(env_id: str, distribution: str = "train", **kwargs) -> gym.Env:
    return gym.make(env_id, distribution=distribution, **kwargs)


def bfs(passable: np.ndarray, start, stop=frozenset()) -> dict[tuple[int, int], int]:
    """Shortest 4-neighbour distances from ``start`` over ``passable`` cells.

    Cells in ``stop`` get a distance but are not expanded (episode-ending cells).
    """
    start = tuple(int(v) for v in start)
    dist = {start: 0}
    queue = deque([start])
    h, w = passable.shape
    while queue:
        r, c = queue.popleft()
        if (r, c) in stop and (r, c) != start:
            continue
        for dr, dc in MOVES:
            nr, nc = r + dr, c + dc
            if 0 <= nr < h and 0 <= nc < w and passable[nr, nc] and (nr, nc) not in dist:
                dist[(nr, nc)] = dist[(r, c)] + 1
                queue.append((nr, nc))
    return dist


def level_of(core, row: int = 0) -> dict:
    """A plain-data snapshot of one level of a core (cells, objects, agent)."""
    return {
        "cells": core.cells[row].copy(),
        "agent": tuple(int(v) for v in core.agent[row]),
        "objects": {name: tuple(int(v) for v in pos[row]) for name, pos in core.objects.items()},
    }


def assert_same_level(a: dict, b: dict) -> None:
    np.testing.assert_array_equal(a["cells"], b["cells"])
    assert a["agent"] == b["agent"]
    assert a["objects"] == b["objects"]


# ----------------------------------------------------------------- reference dynamics
def reference_step(core, state: tuple, action: int, row: int = 0):
    """Documented dynamics of CoinRun / Maze for one transition, in pure Python.

    Returns ``(next_state, rewards, terminal)``.
    """
    cells = core.cells[row]
    r, c = state[0], state[1]
    flags = list(state[2:])
    dr, dc = MOVES[action]
    if cells[r + dr, c + dc] == WALL:
        nr, nc, moved = r, c, False
    else:
        nr, nc, moved = r + dr, c + dc, True
    if core.env_id == "GMSuite/CoinRun-v0":
        coin = tuple(int(v) for v in core.objects["coin"][row])
        end = (int(core.end[0]), int(core.end[1]))
        got_coin = moved and (nr, nc) == coin
        at_end = moved and (nr, nc) == end
        rewards = {
            "intended": 10.0 * got_coin,
            "specified": 10.0 * got_coin,
            "reach_right_end": 10.0 * at_end,
        }
        terminal = bool(cells[nr, nc] == LAVA or got_coin or at_end)
    elif core.env_id == "GMSuite/Maze-v0":
        cheese = tuple(int(v) for v in core.objects["cheese"][row])
        corner = (1, core.width - 2)
        got_cheese = moved and (nr, nc) == cheese
        at_corner = (nr, nc) == corner
        rewards = {
            "intended": 10.0 * got_cheese,
            "specified": 10.0 * got_cheese,
            "reach_top_right": 10.0 * (at_corner and not flags[0]),
        }
        flags[0] = int(flags[0] or at_corner)
        terminal = bool(got_cheese)
    else:  # pragma: no cover - a new env needs its reference dynamics here
        raise NotImplementedError(core.env_id)
    return (nr, nc, *flags), rewards, terminal


def reference_model(core, row: int = 0):
    """States reachable from the current state without crossing a terminal transition.

    Returns ``(expanded, terminal_successors, transitions)`` where
    ``transitions[(s, a)] = (s', rewards, terminal)`` for every expanded ``s``.
    """
    start = tuple(int(v) for v in core.get_states()[row])
    expanded, terminal_only = {start}, set()
    transitions = {}
    queue = deque([start])
    while queue:
        s = queue.popleft()
        for a in range(len(MOVES)):
            s2, rewards, terminal = reference_step(core, s, a, row)
            transitions[(s, a)] = (s2, rewards, terminal)
            if terminal:
                if s2 not in expanded:
                    terminal_only.add(s2)
            elif s2 not in expanded:
                expanded.add(s2)
                terminal_only.discard(s2)
                queue.append(s2)
    return expanded, terminal_only, transitions


# Hydra overrides that make a training run tiny (seconds); later overrides win over these.
TINY_PPO = [
    "agent.hyperparams.n_steps=64",
    "agent.hyperparams.batch_size=128",
    "agent.hyperparams.n_epochs=1",
]
TINY_RUN = [
    "total_timesteps=1024",
    "agent.num_envs=8",
    "train.eval_every=1024",
    "train.checkpoint_every=1024",
    "train.eval_episodes=8",
    "train.progress_bar=false",
    "train.video=false",
]
