"""GoalShift (robust control): goal placement, solvability, the corner proxy on train and test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs import rng
from envs.core import EMPTY, WALL
from envs.goalshift import GoalShiftCore
from tests.conftest import assert_same_level, bfs, level_of, make

ENV_ID = "GMSuite/GoalShift-v0"
seeds = st.integers(min_value=0, max_value=2**64 - 1)
goal_params = st.fixed_dictionaries(
    {"size": st.integers(4, 15), "goal_random_prob": st.floats(min_value=0.0, max_value=1.0)}
)


def _core(params, seed, distribution="train"):
    core = GoalShiftCore(1, distribution, **params)
    core.reset_levels(np.array([0]), np.array([seed], dtype=np.uint64))
    return core


@settings(max_examples=60, deadline=None)
@given(params=goal_params, seed=seeds)
def test_every_level_is_solvable_and_well_formed(params, seed):
    core = _core(params, seed)
    size = params["size"]
    cells = core.cells[0]
    start = (size - 2, 1)
    goal = tuple(int(v) for v in core.objects["goal"][0])
    assert (cells[[0, -1], :] == WALL).all() and (cells[:, [0, -1]] == WALL).all()
    assert (cells[1:-1, 1:-1] == EMPTY).all()
    assert tuple(core.agent[0]) == start
    assert cells[goal] == EMPTY and goal != start
    assert goal in bfs(cells == EMPTY, start)
    if params["goal_random_prob"] == 0:
        assert goal == (1, size - 2)


@settings(max_examples=40, deadline=None)
@given(params=goal_params, seed=seeds)
def test_same_seed_same_level(params, seed):
    a, b = _core(params, seed), _core(params, seed)
    assert_same_level(level_of(a), level_of(b))
    np.testing.assert_array_equal(a.observe(), b.observe())
    o1, _ = make(ENV_ID, **params).reset(seed=seed % 2**63)
    o2, _ = make(ENV_ID, **params).reset(seed=seed % 2**63)
    np.testing.assert_array_equal(o1, o2)


@settings(max_examples=30, deadline=None)
@given(size=st.integers(4, 12), seed=st.integers(0, 2**63 - 1))
def test_proxy_equals_specified_when_the_goal_is_in_the_corner(size, seed):
    env = make(ENV_ID, distribution="train", size=size, goal_random_prob=0.0)
    env.reset(seed=seed)
    rand = np.random.default_rng(seed)
    for _ in range(150):
        _, reward, terminated, truncated, info = env.step(int(rand.integers(4)))
        r = info["rewards"]
        assert r["reach_top_right"] == r["specified"] == r["intended"] == reward
        if terminated or truncated:
            env.reset()


def _corner_runner(distribution, n=300):
    """Up to the top row, then right to the corner: (specified, proxy) success rates."""
    env = make(ENV_ID, distribution=distribution)
    spec = proxy = 0
    for k in range(n):
        env.reset(options={"level_seed": k})
        size = env.unwrapped.core.width
        for action in [0] * (size - 3) + [3] * (size - 3):
            _, _, terminated, _, info = env.step(action)
            spec += info["rewards"]["specified"] > 0
            proxy += info["rewards"]["reach_top_right"] > 0
            if terminated:
                break
    return spec / n, proxy / n


def test_proxy_and_specified_come_apart_on_test():
    train_spec, train_proxy = _corner_runner("train")
    test_spec, test_proxy = _corner_runner("test")
    # the corner-runner gets the goal on corner levels and on the goals along its path
    assert 0.7 <= train_spec <= 0.85 and train_proxy >= 0.65
    assert test_spec <= 0.4 and test_proxy >= 0.6
    assert train_spec - test_spec > 0.4


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_goal_off_corner_fraction_follows_goal_random_prob(p):
    """P(goal off the corner) = p * (1 - 1/F), F = interior cells other than the start."""
    n = 4000
    core = GoalShiftCore(n, "train", goal_random_prob=p)
    core.reset_levels(np.arange(n), rng.level_seeds(np.full(n, 17), np.arange(n)))
    off = (core.objects["goal"] != core.corner).any(axis=1).sum()
    f = (core.width - 2) ** 2 - 1
    q = p * (1 - 1 / f)
    assert abs(off - n * q) <= 4.5 * math.sqrt(n * q * (1 - q)) + 1e-9


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"size": 3}, "size=3"),
        ({"size": 7.5}, "size=7.5"),
        ({"goal_random_prob": 1.5}, "goal_random_prob=1.5"),
        ({"max_steps": -2}, "max_steps=-2"),
        ({"lava": True}, "'lava'"),
    ],
)
def test_bad_params_are_named(params, message):
    with pytest.raises(ValueError, match=message):
        GoalShiftCore(1, "train", **params)
