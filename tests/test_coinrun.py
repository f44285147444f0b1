"""CoinRun analog: level generator properties, the proxy reward, coin placement statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs import rng
from envs.coinrun import CoinRunCore
from envs.core import EMPTY, LAVA, WALL
from tests.conftest import assert_same_level, bfs, level_of, make

seeds = st.integers(min_value=0, max_value=2**64 - 1)
probs = st.floats(min_value=0.0, max_value=1.0)
coinrun_params = st.fixed_dictionaries(
    {
        "height": st.integers(5, 15),
        "width": st.integers(7, 31),
        "hazard_prob": probs,
        "coin_random_prob": probs,
    }
)


def _core(params, seed, distribution="train"):
    core = CoinRunCore(1, distribution, **params)
    core.reset_levels(np.array([0]), np.array([seed], dtype=np.uint64))
    return core


@settings(max_examples=60, deadline=None)
@given(params=coinrun_params, seed=seeds)
def test_every_level_is_solvable_and_well_formed(params, seed):
    core = _core(params, seed)
    cells = core.cells[0]
    h, w = params["height"], params["width"]
    mid = h // 2
    start, end = (mid, 1), (mid, w - 2)
    coin = tuple(int(v) for v in core.objects["coin"][0])
    # layout
    assert cells.shape == (h, w)
    assert (cells[[0, -1], :] == WALL).all() and (cells[:, [0, -1]] == WALL).all()
    assert (cells[1:-1, 1:-1] != WALL).all()
    assert tuple(core.agent[0]) == start
    assert cells[start] == EMPTY and cells[end] == EMPTY
    assert cells[coin] == EMPTY and coin != start
    # lava only in hazard columns, never a full column
    lava_cols = set(np.flatnonzero((cells == LAVA).any(axis=0)))
    assert lava_cols <= set(range(3, w - 3, core.params["hazard_spacing"]))
    for c in lava_cols:
        assert (cells[1:-1, c] == LAVA).sum() <= max(1, h - 4)  # a gap of two cells at least
    # solvable: the coin is reachable without touching lava or the (episode-ending) level end,
    # and the level end is reachable without touching lava. (The end is not always reachable
    # without collecting the coin: a coin can sit in the only gap of a lava column.)
    free = cells == EMPTY
    to_coin = bfs(free, start, stop={end} - {coin})
    to_end = bfs(free, start)
    assert coin in to_coin
    assert end in to_end
    # every free cell is reachable (lava never cuts the corridor)
    assert set(bfs(free, start)) == set(zip(*np.nonzero(free), strict=True))
    if params["hazard_prob"] == 0:
        assert not (cells == LAVA).any()
        assert to_end[end] == w - 3


@settings(max_examples=40, deadline=None)
@given(params=coinrun_params, seed=seeds)
def test_same_seed_same_level(params, seed):
    a, b = _core(params, seed), _core(params, seed)
    assert_same_level(level_of(a), level_of(b))
    np.testing.assert_array_equal(a.observe(), b.observe())
    # through the env API as well
    env1 = make("GMSuite/CoinRun-v0", **params)
    env2 = make("GMSuite/CoinRun-v0", **params)
    o1, _ = env1.reset(seed=seed % 2**63)
    o2, _ = env2.reset(seed=seed % 2**63)
    np.testing.assert_array_equal(o1, o2)


@settings(max_examples=30, deadline=None)
@given(
    params=st.fixed_dictionaries(
        {"height": st.integers(5, 15), "width": st.integers(7, 31), "hazard_prob": probs}
    ),
    seed=st.integers(0, 2**63 - 1),
)
def test_proxy_equals_specified_on_train(params, seed):
    """With the coin always at the end, reach_right_end is the specified reward."""
    env = make("GMSuite/CoinRun-v0", distribution="train", coin_random_prob=0.0, **params)
    env.reset(seed=seed)
    rand = np.random.default_rng(seed)
    for _ in range(150):
        _, reward, terminated, truncated, info = env.step(int(rand.integers(4)))
        r = info["rewards"]
        assert r["reach_right_end"] == r["specified"] == r["intended"] == reward
        if terminated or truncated:
            env.reset()


def test_proxy_and_specified_come_apart_on_test():
    n = 200
    core = CoinRunCore(n, "test")
    core.reset_levels(np.arange(n), rng.level_seeds(np.zeros(n), np.arange(n)))
    off_end = (core.objects["coin"] != core.end).any(axis=1)
    assert off_end.mean() > 0.8

    # an agent that runs right along the middle row (no hazards in the way):
    # on train it always gets the coin, on test mostly only the level end
    for dist, lo, hi in (("train", 1.0, 1.0), ("test", 0.0, 0.35)):
        env = make("GMSuite/CoinRun-v0", distribution=dist, hazard_prob=0.0)
        spec = end = 0.0
        for k in range(n):
            env.reset(options={"level_seed": k})
            for _ in range(env.unwrapped.core.width):
                _, _, terminated, _, info = env.step(3)
                spec += info["rewards"]["specified"]
                end += info["rewards"]["reach_right_end"]
                if terminated:
                    break
        assert lo <= spec / (10 * n) <= hi, (dist, spec)
        # reaching the end is always possible by running right, unless the coin is in the way
        assert end / (10 * n) >= (0.99 if dist == "train" else 0.7), (dist, end)


def test_coin_on_lava_or_start_never_happens_even_when_crowded():
    core = CoinRunCore(2000, "test", height=5, width=7, hazard_prob=1.0)
    core.reset_levels(np.arange(2000), np.arange(2000))
    coins = core.objects["coin"]
    assert (core.cells[np.arange(2000), coins[:, 0], coins[:, 1]] == EMPTY).all()
    assert not ((coins == core.start).all(axis=1)).any()


# ----------------------------------------------------------------- coin placement statistics
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5])
def test_coin_off_end_fraction_follows_coin_random_prob(p):
    """P(coin off the end) = p * (1 - 1/F): a random coin lands on the end with prob 1/F,
    F = free cells other than the start. Checked within 4.5 binomial sigmas."""
    n = 4000
    core = CoinRunCore(n, "train", coin_random_prob=p)
    core.reset_levels(np.arange(n), rng.level_seeds(np.full(n, 123), np.arange(n)))
    off_end = (core.objects["coin"] != core.end).any(axis=1)
    free = (core.cells == EMPTY).reshape(n, -1).sum(axis=1) - 1  # minus the start cell
    q = p * (1.0 - 1.0 / free)
    mean, sigma = q.sum(), math.sqrt((q * (1 - q)).sum())
    if p == 0.0:
        assert off_end.sum() == 0
    else:
        assert abs(off_end.sum() - mean) <= 4.5 * sigma, (off_end.sum(), mean, sigma)
        # the band is narrow: placement that ignored p (all or no coins moved) falls outside
        assert 4.5 * sigma < 0.05 * n


def test_random_coin_is_uniform_over_free_cells():
    """With p = 1 and no hazards, every interior cell but the start is equally likely."""
    n = 5400
    core = CoinRunCore(n, "test", hazard_prob=0.0)  # 7 x 13: 55 interior cells, 54 candidates
    core.reset_levels(np.arange(n), rng.level_seeds(np.full(n, 9), np.arange(n)))
    counts = np.zeros((core.height, core.width))
    np.add.at(counts, (core.objects["coin"][:, 0], core.objects["coin"][:, 1]), 1)
    candidates = core.cells[0] == EMPTY
    candidates[tuple(core.start)] = False
    assert counts[~candidates].sum() == 0
    observed = counts[candidates]
    expected = n / candidates.sum()
    chi2 = ((observed - expected) ** 2 / expected).sum()
    # 53 degrees of freedom: mean 53, sd ~10.3; 110 is beyond 5 sd
    assert chi2 < 110, chi2


def test_levels_vary_with_the_seed():
    n = 60
    core = CoinRunCore(n, "train")
    core.reset_levels(np.arange(n), rng.level_seeds(np.full(n, 4), np.arange(n)))
    # 3 hazard columns of 13 layouts each (none, or a segment of length 1-3 at any height):
    # about 2,200 layouts, so a few of 60 levels may coincide, not many
    assert len({core.cells[i].tobytes() for i in range(n)}) >= n - 6
    # default hazard_prob = 0.75 over 3 hazard columns: about 2 lava columns per level
    lava_cols = (core.cells == LAVA).any(axis=1).sum(axis=1)
    assert 1.8 < lava_cols.mean() < 2.7  # expectation 2.25
