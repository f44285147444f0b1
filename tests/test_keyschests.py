"""KeysChests: placement, solvability, the inventory rules and the collect_keys proxy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs import rng
from envs.core import EMPTY, WALL
from envs.keyschests import KeysChestsCore
from tests.conftest import bfs, make

ENV_ID = "GMSuite/KeysChests-v0"
seeds = st.integers(min_value=0, max_value=2**64 - 1)


@st.composite
def kc_params(draw):
    size = draw(st.integers(5, 10))
    keys = draw(st.integers(1, 4))
    chests = draw(st.integers(1, 4))
    return {"size": size, "num_keys": keys, "num_chests": chests}


def _core(params, seed, distribution="train"):
    core = KeysChestsCore(1, distribution, **params)
    core.reset_levels(np.array([0]), np.array([seed], dtype=np.uint64))
    return core


def _layout(core, row=0):
    return core.cells[row].copy(), core.keys[row].copy(), core.chests[row].copy()


@settings(max_examples=60, deadline=None)
@given(params=kc_params(), seed=seeds)
def test_every_level_is_solvable_and_well_formed(params, seed):
    core = _core(params, seed)
    cells, keys, chests = _layout(core)
    size = params["size"]
    start = (size - 2, 1)
    assert (cells[[0, -1], :] == WALL).all() and (cells[1:-1, 1:-1] == EMPTY).all()
    assert tuple(core.agent[0]) == start
    objects = [tuple(p) for p in keys.tolist() + chests.tolist()]
    assert len(set(objects)) == len(objects) and start not in objects
    assert all(cells[p] == EMPTY for p in objects)
    # every object is reachable, so min(keys, chests) chests can be opened
    reach = bfs(cells == EMPTY, start)
    assert all(p in reach for p in objects)
    obs = core.observe()[0]
    assert obs[1].sum() == params["num_keys"] and obs[2].sum() == params["num_chests"]


@settings(max_examples=40, deadline=None)
@given(params=kc_params(), seed=seeds)
def test_same_seed_same_level(params, seed):
    a, b = _core(params, seed), _core(params, seed)
    for x, y in zip(_layout(a), _layout(b), strict=True):
        np.testing.assert_array_equal(x, y)
    o1, _ = make(ENV_ID, **params).reset(seed=seed % 2**63)
    o2, _ = make(ENV_ID, **params).reset(seed=seed % 2**63)
    np.testing.assert_array_equal(o1, o2)


def _walk_to(env, target):
    """Step along a shortest path to ``target`` in the open room; returns the summed rewards."""
    core = env.unwrapped.core
    total = {name: 0.0 for name in core.reward_names}
    done = False
    while tuple(core.agent[0]) != tuple(target) and not done:
        r, c = core.agent[0]
        action = 0 if target[0] < r else 1 if target[0] > r else 2 if target[1] < c else 3
        _, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        for name, value in info["rewards"].items():
            total[name] += value
    return total, done


def test_chests_need_keys_and_the_inventory_is_spent():
    env = make(ENV_ID, distribution="train", size=8, max_steps=500)
    env.reset(options={"level_seed": 5})
    core = env.unwrapped.core
    key, chests = core.keys[0, 0], core.chests[0]
    # walking over a chest without a key does nothing; it stays closed and visible
    got, done = _walk_to(env, chests[0])
    assert got["specified"] == 0 and not done and not core.opened.any()
    assert env.unwrapped.core.observe()[0, 2].sum() == 2
    got, done = _walk_to(env, key)
    assert got["collect_keys"] == 10 and not done and core.observe()[0, 1].sum() == 0
    got, done = _walk_to(env, chests[1])
    assert got["specified"] == 10 and got["intended"] == 10
    assert done  # the only key is spent: nothing more can be opened
    assert core.opened[0].sum() == 1


def _greedy_planner_returns(distribution, reward, n=40):
    """Mean returns of the exact optimal policy for ``reward`` (via the planner)."""
    from agents.policies import PlannerPolicy
    from evaluation.rollouts import rollout

    r = rollout(PlannerPolicy(reward), ENV_ID, distribution, {}, level_seeds=np.arange(n))
    return {name: float(np.mean(v)) for name, v in r.returns.items()}


def test_optimal_for_specified_collects_every_key_on_train_but_not_on_test():
    train = _greedy_planner_returns("train", "specified")
    assert train["specified"] == 10.0 and train["collect_keys"] == 10.0  # the one key is needed
    test = _greedy_planner_returns("test", "specified")
    keys_optimal = _greedy_planner_returns("test", "collect_keys")
    assert test["specified"] == 10.0 and test["collect_keys"] < 15.0  # one key of three is enough
    assert keys_optimal["collect_keys"] == 30.0
    # a key collector opens the chest on test only when it happens to walk over it last
    assert keys_optimal["specified"] < 5.0


def test_state_holds_one_flag_per_key_and_chest():
    n = 500
    for dist, keys, chests in (("train", 1, 2), ("test", 3, 1)):
        core = KeysChestsCore(n, dist)
        core.reset_levels(np.arange(n), rng.level_seeds(np.full(n, 2), np.arange(n)))
        assert core.keys.shape == (n, keys, 2) and core.chests.shape == (n, chests, 2)
        assert core.state_dim == 2 + keys + chests


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"size": 3}, "size=3"),
        ({"num_keys": 0}, "num_keys=0"),
        ({"num_chests": 9}, "num_chests=9"),
        ({"num_keys": 9}, "num_keys=9"),
        ({"size": 4, "num_keys": 2, "num_chests": 2}, "num_chests=2"),
        ({"num_chests": "two"}, "num_chests='two'"),
        ({"max_steps": 0}, "max_steps=0"),
        ({"keys": 3}, "'keys'"),
    ],
)
def test_bad_params_are_named(params, message):
    with pytest.raises(ValueError, match=message):
        KeysChestsCore(1, "train", **params)
