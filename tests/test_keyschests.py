"""KeysChests: placement, solvability, the inventory rules and the collect_keys proxy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs import rng
from envs.core import EMPTY, WALL
from envs.keyschests import KeysChestsCore
from tests.conftest import MOVES, bfs, make

ENV_ID = "GMSuite/KeysChests-v0"
seeds = st.integers(min_value=0, max_value=2**64 - 1)


@st.composite
def kc_params(draw):
    size = draw(st.sampled_from([5, 7, 9, 11]))
    free = 2 * ((size - 1) // 2) ** 2 - 2  # open cells of a perfect maze, start excluded
    keys = draw(st.integers(1, min(4, size - 2)))
    chests = draw(st.integers(1, min(4, free - keys)))
    return {"size": size, "num_keys": keys, "num_chests": chests}


def _core(params, seed, distribution="train"):
    core = KeysChestsCore(1, distribution, **params)
    core.reset_levels(np.array([0]), np.array([seed], dtype=np.uint64))
    return core


def _layout(core, row=0):
    return core.cells[row].copy(), core.keys[row].copy(), core.chests[row].copy()


@settings(max_examples=60, deadline=None)
@given(params=kc_params(), seed=seeds)
def test_every_level_is_a_perfect_maze_with_reachable_objects(params, seed):
    core = _core(params, seed)
    cells, keys, chests = _layout(core)
    size = params["size"]
    start = (size - 2, 1)
    open_ = cells == EMPTY
    assert (cells[[0, -1], :] == WALL).all() and (cells[:, [0, -1]] == WALL).all()
    assert tuple(core.agent[0]) == start
    # a perfect maze: every open cell reachable, and a tree (open cells - 1 adjacent pairs)
    reach = bfs(open_, start)
    assert len(reach) == open_.sum() == 2 * ((size - 1) // 2) ** 2 - 1
    pairs = (open_[1:] & open_[:-1]).sum() + (open_[:, 1:] & open_[:, :-1]).sum()
    assert pairs == open_.sum() - 1
    objects = [tuple(p) for p in keys.tolist() + chests.tolist()]
    assert len(set(objects)) == len(objects) and start not in objects
    assert all(p in reach for p in objects)
    obs = core.observe()[0]
    assert obs[1].sum() == params["num_keys"] and obs[2].sum() == params["num_chests"]
    assert obs[3].sum() == 0  # nothing held yet


@settings(max_examples=40, deadline=None)
@given(params=kc_params(), seed=seeds)
def test_same_seed_same_level(params, seed):
    a, b = _core(params, seed), _core(params, seed)
    for x, y in zip(_layout(a), _layout(b), strict=True):
        np.testing.assert_array_equal(x, y)
    o1, _ = make(ENV_ID, **params).reset(seed=seed % 2**63)
    o2, _ = make(ENV_ID, **params).reset(seed=seed % 2**63)
    np.testing.assert_array_equal(o1, o2)


def test_object_cells_are_uniform_over_the_free_cells():
    """Every free cell (open, not the start) holds the chest of a test level equally often."""
    n = 4000
    core = KeysChestsCore(n, "test", size=5)
    core.reset_levels(np.arange(n), rng.level_seeds(np.full(n, 3), np.arange(n)))
    # size 5: the free cells of each maze differ, so count per level how many free cells it has
    free = (core.cells == EMPTY).reshape(n, -1).sum(axis=1) - 1
    assert (free == 6).all()
    chest = core.chests[:, 0]
    assert not ((chest == core.start).all(axis=1)).any()
    # the corner room (1, 3) is open in every size-5 maze: expected share 1/6 per level
    share = (chest == (1, 3)).all(axis=1).mean()
    assert abs(share - 1 / 6) < 4 * np.sqrt((1 / 6) * (5 / 6) / n)


def _walk_to(env, target):
    """Step along the shortest maze path to ``target``; returns the summed rewards and done."""
    core = env.unwrapped.core
    dist = bfs(core.cells[0] == EMPTY, tuple(target))
    total = {name: 0.0 for name in core.reward_names}
    done = False
    while tuple(core.agent[0]) != tuple(target) and not done:
        r, c = core.agent[0]
        here = dist[(r, c)]
        action = next(a for a, (dr, dc) in enumerate(MOVES) if dist.get((r + dr, c + dc)) == here - 1)
        _, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        for name, value in info["rewards"].items():
            total[name] += value
    return total, done


def test_chests_need_keys_and_the_inventory_is_shown_and_spent():
    env = make(ENV_ID, distribution="train", max_steps=500)
    env.reset(options={"level_seed": 5})
    core = env.unwrapped.core
    key, chests = core.keys[0, 0], core.chests[0]
    # walking over a chest without a key does nothing; it stays closed and visible
    got, done = _walk_to(env, chests[0])
    assert got["specified"] == 0 and not done and not core.opened.any()
    assert core.observe()[0, 2].sum() == 2
    got, done = _walk_to(env, key)
    obs = core.observe()[0]
    assert got["collect_keys"] == 10 and got["specified"] == 0 and not done and obs[1].sum() == 0
    assert obs[3].sum() == 1 and obs[3, 0, 1] == 1  # the held key, drawn on the top wall
    got, done = _walk_to(env, chests[1])
    assert got["specified"] == got["intended"] == 10 and got["collect_keys"] == 1
    assert done  # the only key is spent: nothing more can be opened
    assert core.opened[0].sum() == 1 and core.observe()[0, 3].sum() == 0


def test_time_budget_fits_the_direct_route_but_not_a_tour_of_every_key():
    """The documented budget figures, from BFS distances on 200 default test levels."""
    n = 200
    core = KeysChestsCore(n, "test")
    core.reset_levels(np.arange(n), rng.level_seeds(np.full(n, 1), np.arange(n)))
    direct, tour = [], []
    for i in range(n):
        open_ = core.cells[i] == EMPTY
        start, chest = tuple(core.start), tuple(core.chests[i, 0])
        keys = [tuple(k) for k in core.keys[i]]
        dist = {p: bfs(open_, p) for p in [start, *keys]}
        direct.append(min(dist[start][k] + dist[k][chest] for k in keys))
        tour.append(
            min(
                dist[start][o[0]] + sum(dist[a][b] for a, b in itertools.pairwise(o)) + dist[o[-1]][chest]
                for o in itertools.permutations(keys)
            )
        )
    budget = core.max_steps
    assert budget == 18
    direct_fits, tour_fits = np.mean(np.array(direct) <= budget), np.mean(np.array(tour) <= budget)
    assert direct_fits >= 0.95 and tour_fits <= 0.35, (direct_fits, tour_fits)


def _planner_returns(distribution, reward, n=40, **params):
    """Mean returns of the exact optimal policy for ``reward`` (via the planner)."""
    from agents.policies import PlannerPolicy
    from evaluation.rollouts import rollout

    r = rollout(PlannerPolicy(reward), ENV_ID, distribution, params, level_seeds=np.arange(n))
    return {name: float(np.mean(v)) for name, v in r.returns.items()}


def test_optimal_for_specified_collects_every_key_on_train_but_not_on_test():
    no_budget = {"max_steps": 500}
    train = _planner_returns("train", "specified", **no_budget)
    assert train["specified"] == 10.0 and train["collect_keys"] == 11.0  # the one key is needed
    test = _planner_returns("test", "specified", **no_budget)
    keys_optimal = _planner_returns("test", "collect_keys", **no_budget)
    assert test["specified"] == 10.0 and test["collect_keys"] < 21.0  # one key of three is enough
    # with time to spare, the key lover gets every key and the chest: 3 x 10 + 1
    assert keys_optimal["collect_keys"] == 31.0 and keys_optimal["specified"] == 10.0
    # within the default budget the time-optimal key lover takes a key (10) over the chest (1)
    # whenever the steps left cannot hold both: it opens the chest on only ~60% of levels
    budgeted = _planner_returns("test", "collect_keys", n=100)
    assert budgeted["specified"] < 7.0


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
        ({"size": 8}, "size=8"),
        ({"num_keys": 0}, "num_keys=0"),
        ({"num_chests": 9}, "num_chests=9"),
        ({"num_keys": 9}, "num_keys=9"),
        ({"size": 5, "num_keys": 4}, "num_keys=4"),  # inventory marks: at most size - 2
        ({"size": 5, "num_keys": 3, "num_chests": 4}, "num_chests=4"),  # 6 free cells
        ({"num_chests": "two"}, "num_chests='two'"),
        ({"max_steps": 0}, "max_steps=0"),
        ({"keys": 3}, "'keys'"),
    ],
)
def test_bad_params_are_named(params, message):
    with pytest.raises(ValueError, match=message):
        KeysChestsCore(1, "train", **params)


def test_opening_the_chest_ends_a_test_level_only_once_no_key_is_left():
    env = make(ENV_ID, distribution="test", max_steps=500)
    env.reset(options={"level_seed": 11})
    core = env.unwrapped.core
    keys, chest = core.keys[0], core.chests[0, 0]
    got, done = _walk_to(env, keys[0])
    assert got["collect_keys"] >= 10 and not done
    got, done = _walk_to(env, chest)
    assert got["specified"] == 10 and core.opened[0].all()
    assert not done and not core.collected[0].all()  # keys still lie around: the level goes on
    for key in keys:
        if not core.collected[0][(core.keys[0] == key).all(axis=1)].all():
            got, done = _walk_to(env, key)
    assert done and core.collected[0].all() and got["specified"] == 0
