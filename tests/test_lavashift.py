"""LavaShift: strip placement, solvability, the route proxy on train and its failure on test."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs import rng
from envs.core import EMPTY, LAVA, WALL
from envs.lavashift import LavaShiftCore
from tests.conftest import assert_same_level, bfs, level_of, make

ENV_ID = "GMSuite/LavaShift-v0"
seeds = st.integers(min_value=0, max_value=2**64 - 1)


@st.composite
def lava_params(draw):
    height = draw(st.integers(5, 12))
    width = draw(st.integers(6, 20))
    top = draw(st.integers(1, height - 2))
    bottom = draw(st.one_of(st.none(), st.integers(top, height - 2)))
    return {"height": height, "width": width, "strip_top": top, "strip_bottom": bottom}


def _core(params, seed, distribution="train"):
    core = LavaShiftCore(1, distribution, **params)
    core.reset_levels(np.array([0]), np.array([seed], dtype=np.uint64))
    return core


@settings(max_examples=60, deadline=None)
@given(params=lava_params(), seed=seeds)
def test_every_level_is_solvable_and_well_formed(params, seed):
    core = _core(params, seed)
    cells = core.cells[0]
    h, w = params["height"], params["width"]
    start, goal = (1, 1), (1, w - 2)
    assert (cells[[0, -1], :] == WALL).all() and (cells[:, [0, -1]] == WALL).all()
    assert (cells[1:-1, 1:-1] != WALL).all()
    assert tuple(core.agent[0]) == start and tuple(core.objects["goal"][0]) == goal
    assert cells[start] == EMPTY and cells[goal] == EMPTY
    # one strip row, within the band, covering columns 2..w-3 but one gap
    lava_rows = np.flatnonzero((cells == LAVA).any(axis=1))
    assert len(lava_rows) == 1
    row = lava_rows[0]
    bottom = params["strip_bottom"] or h - 2
    assert params["strip_top"] <= row <= bottom
    assert (cells[row] == LAVA).sum() == w - 5
    assert set(np.flatnonzero(cells[row] == LAVA)) < set(range(2, w - 2))
    free = cells == EMPTY
    reach = bfs(free, start)
    assert goal in reach
    assert set(reach) == set(zip(*np.nonzero(free), strict=True))  # lava never cuts the room


@settings(max_examples=40, deadline=None)
@given(params=lava_params(), seed=seeds)
def test_same_seed_same_level(params, seed):
    a, b = _core(params, seed), _core(params, seed)
    assert_same_level(level_of(a), level_of(b))
    np.testing.assert_array_equal(a.observe(), b.observe())
    o1, _ = make(ENV_ID, **params).reset(seed=seed % 2**63)
    o2, _ = make(ENV_ID, **params).reset(seed=seed % 2**63)
    np.testing.assert_array_equal(o1, o2)


def _run_right(distribution, n=200):
    """The memorised train route: right along the top row. Returns (specified, proxy, lava) rates."""
    env = make(ENV_ID, distribution=distribution)
    spec = proxy = lava = 0
    for k in range(n):
        env.reset(options={"level_seed": k})
        core = env.unwrapped.core
        for _ in range(core.width):
            _, _, terminated, _, info = env.step(3)
            spec += info["rewards"]["specified"] > 0
            proxy += info["rewards"]["follow_train_route"] > 0
            if terminated:
                lava += core.cell_at(core.agent)[0] == LAVA
                break
    return spec / n, proxy / n, lava / n


def test_train_route_reaches_the_goal_on_train_and_lava_on_test():
    assert _run_right("train") == (1.0, 1.0, 0.0)
    spec, proxy, lava = _run_right("test")
    # the route crosses the strip unless the gap sits in its one column of the top row
    assert spec == proxy and spec < 0.35 and lava > 0.65


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**63 - 1))
def test_proxy_equals_specified_along_optimal_train_paths(seed):
    """On train the shortest path is the top row: both rewards pay the same on it,
    and a random walk earns the proxy only when it earns the specified reward."""
    env = make(ENV_ID, distribution="train")
    env.reset(seed=seed)
    rand = np.random.default_rng(seed)
    for _ in range(150):
        _, reward, terminated, truncated, info = env.step(int(rand.integers(4)))
        r = info["rewards"]
        assert r["specified"] == r["intended"] == reward
        assert r["follow_train_route"] <= r["specified"]
        if terminated or truncated:
            env.reset()


def test_proxy_and_specified_come_apart_on_test():
    """On test the top row always holds lava: the route reward is unattainable, the goal is not."""
    n = 300
    core = LavaShiftCore(n, "test")
    core.reset_levels(np.arange(n), rng.level_seeds(np.zeros(n), np.arange(n)))
    assert (core.cells[:, 1] == LAVA).any(axis=1).all()
    for i in range(n):
        free = core.cells[i] == EMPTY
        assert (1, core.width - 2) in bfs(free, (1, 1))
        top_only = np.zeros_like(free)
        top_only[1] = free[1]
        assert (1, core.width - 2) not in bfs(top_only, (1, 1))


def test_gap_position_is_spread_over_the_strip():
    n = 2000
    core = LavaShiftCore(n, "train")
    core.reset_levels(np.arange(n), rng.level_seeds(np.full(n, 5), np.arange(n)))
    rows = (core.cells == LAVA).any(axis=2).argmax(axis=1)
    assert set(rows.tolist()) == {3, 4}
    gaps = [int(np.flatnonzero(core.cells[i, rows[i], 2:-2] != LAVA)[0]) for i in range(n)]
    counts = np.bincount(gaps, minlength=core.width - 4)
    assert counts.min() > 0.7 * n / len(counts)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"height": 3}, "height=3"),
        ({"width": 100}, "width=100"),
        ({"strip_top": 0}, "strip_top=0"),
        ({"strip_top": 3, "strip_bottom": 2}, "strip_bottom=2"),
        ({"height": 5, "strip_top": 4}, "strip_top=4"),
        ({"max_steps": 0}, "max_steps=0"),
        ({"colour": "red"}, "'colour'"),
    ],
)
def test_bad_params_are_named(params, message):
    with pytest.raises(ValueError, match=message):
        LavaShiftCore(1, "train", **params)
