"""Maze analog: perfect mazes, cheese placement, the reach_top_right proxy."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from envs import rng
from envs.core import EMPTY, WALL
from envs.maze import MazeCore
from tests.conftest import assert_same_level, bfs, level_of, make

seeds = st.integers(min_value=0, max_value=2**64 - 1)


@st.composite
def maze_params(draw):
    size = draw(st.integers(2, 12)) * 2 + 1  # odd, 5..25
    region = draw(st.one_of(st.none(), st.integers(1, size - 2)))
    return {"size": size, "cheese_region": region}


def _core(params, seed, distribution="train"):
    core = MazeCore(1, distribution, **params)
    core.reset_levels(np.array([0]), np.array([seed], dtype=np.uint64))
    return core


@settings(max_examples=50, deadline=None)
@given(params=maze_params(), seed=seeds)
def test_perfect_maze_layout_and_solvable(params, seed):
    core = _core(params, seed)
    size = params["size"]
    cells = core.cells[0]
    open_ = cells == EMPTY
    start, corner = (size - 2, 1), (1, size - 2)
    cheese = tuple(int(v) for v in core.objects["cheese"][0])
    # layout: walled border, a room at every odd coordinate, never open at even-even
    assert cells.shape == (size, size)
    assert (cells[[0, -1], :] == WALL).all() and (cells[:, [0, -1]] == WALL).all()
    assert open_[1::2, 1::2].all()
    assert not open_[::2, ::2].any()
    assert tuple(core.agent[0]) == start
    # a perfect maze: the open cells form a tree (connected, |V| - 1 edges)
    n_open = int(open_.sum())
    edges = int((open_[1:, :] & open_[:-1, :]).sum() + (open_[:, 1:] & open_[:, :-1]).sum())
    assert n_open - 1 == edges
    reach = bfs(open_, start)
    assert len(reach) == n_open
    # solvable: the cheese is an open cell other than the start, reachable from the start
    assert open_[cheese] and cheese != start
    assert cheese in reach and corner in reach


@settings(max_examples=40, deadline=None)
@given(params=maze_params(), seed=seeds)
def test_same_seed_same_level(params, seed):
    a, b = _core(params, seed), _core(params, seed)
    assert_same_level(level_of(a), level_of(b))
    np.testing.assert_array_equal(a.observe(), b.observe())


@settings(max_examples=50, deadline=None)
@given(params=maze_params(), seed=seeds)
def test_cheese_in_top_right_region_on_train(params, seed):
    core = _core(params, seed, "train")
    size, region = params["size"], params["cheese_region"]
    r, c = (int(v) for v in core.objects["cheese"][0])
    if region is None:
        assert 1 <= r <= size - 2 and 1 <= c <= size - 2
    else:
        assert 1 <= r <= region, (r, region)
        assert size - 1 - region <= c <= size - 2, (c, region)
    if region == 1:
        assert (r, c) == (1, size - 2)


def test_default_train_cheese_is_the_corner_and_test_cheese_is_anywhere():
    n = 300
    seeds_ = rng.level_seeds(np.zeros(n), np.arange(n))
    train = MazeCore(n, "train")
    train.reset_levels(np.arange(n), seeds_)
    assert (train.objects["cheese"] == train.corner).all()

    test = MazeCore(n, "test")
    test.reset_levels(np.arange(n), seeds_)
    cheese = test.objects["cheese"]
    assert (cheese != test.corner).any(axis=1).mean() > 0.8
    assert not (cheese == test.start).all(axis=1).any()
    assert (test.cells[np.arange(n), cheese[:, 0], cheese[:, 1]] == EMPTY).all()
    # spread over the maze: every quadrant gets cheese
    half = test.height // 2
    quadrants = {(int(r < half), int(c < half)) for r, c in cheese}
    assert len(quadrants) == 4
    # the maze itself does not depend on the distribution (only the cheese does)
    np.testing.assert_array_equal(train.cells, test.cells)


@settings(max_examples=30, deadline=None)
@given(size=st.sampled_from([5, 7, 9]), seed=st.integers(0, 2**63 - 1))
def test_proxy_equals_specified_on_default_train(size, seed):
    env = make("GMSuite/Maze-v0", distribution="train", size=size, max_steps=60)
    env.reset(seed=seed)
    rand = np.random.default_rng(seed)
    for _ in range(200):
        _, reward, terminated, truncated, info = env.step(int(rand.integers(4)))
        r = info["rewards"]
        assert r["reach_top_right"] == r["specified"] == r["intended"] == reward
        if terminated or truncated:
            env.reset()


def test_reach_top_right_pays_once_per_episode_and_is_separate_on_test():
    env = make("GMSuite/Maze-v0", distribution="test", size=5, max_steps=200)
    rand = np.random.default_rng(0)
    paid_without_cheese = 0
    for episode in range(60):
        env.reset(seed=episode)
        totals = dict.fromkeys(env.unwrapped.reward_names, 0.0)
        terminated = truncated = False
        while not (terminated or truncated):
            _, _, terminated, truncated, info = env.step(int(rand.integers(4)))
            for name, value in info["rewards"].items():
                totals[name] += value
        assert totals["reach_top_right"] in (0.0, 10.0)
        assert totals["specified"] == (10.0 if terminated else 0.0)
        paid_without_cheese += totals["reach_top_right"] == 10.0 and totals["specified"] == 0.0
    assert paid_without_cheese > 0, "on test the corner should be reached apart from the cheese"


def test_max_steps_default_and_truncation():
    env = make("GMSuite/Maze-v0", size=5)
    assert env.unwrapped.core.max_steps == 4 * 5 * 5
    env = make("GMSuite/Maze-v0", size=5, distribution="test", max_steps=7)
    env.reset(seed=0)
    flags = []
    for _ in range(7):
        _, _, terminated, truncated, _ = env.step(2)  # left: into the border wall from the start
        flags.append((terminated, truncated))
    assert flags == [(False, False)] * 6 + [(False, True)]


def test_mazes_vary_with_the_seed():
    """Every carving step must draw fresh randomness: mazes of different seeds differ."""
    n = 60
    core = MazeCore(n, "train", size=9)
    core.reset_levels(np.arange(n), rng.level_seeds(np.full(n, 4), np.arange(n)))
    distinct = {core.cells[i].tobytes() for i in range(n)}
    assert len(distinct) >= n - 2
    # which passages leave the start room varies across levels
    start = tuple(core.start)
    up = core.cells[:, start[0] - 1, start[1]] == EMPTY
    right = core.cells[:, start[0], start[1] + 1] == EMPTY
    assert 0.1 < up.mean() < 0.95 and 0.1 < right.mean() < 0.95
