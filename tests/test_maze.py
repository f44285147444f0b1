"""Maze analog: perfect mazes, cheese placement, the off-region probability, the reach_top_right proxy."""

from __future__ import annotations

import hashlib
import math

import gymnasium as gym
import numpy as np
import pytest
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


# ----------------------------------------------------------------- cheese_off_region_prob (alpha)
# sha256 of every level array, the observation and the state of 400 levels (level seeds of base
# seed 7), computed with envs/maze.py as of commit 13af5a5, before cheese_off_region_prob existed.
# Trained agents and committed results rely on these levels: at alpha = 0 they must not change.
LEVELS_BEFORE_OFF_REGION_PROB = {
    ("train", ()): "b70a4a21e79bd2a1d24643958a04a953862576d3fe97840b0f310cbe744351fe",
    ("train", (("size", 13),)): "b561d0187439a574ba9fe26d8d8dceb382a9cd2297e3933e913e26e70536536c",
    ("train", (("size", 13), ("cheese_region", 3))): (
        "d787d7fa9f790e8693d2ab2999c042c65e4534ee3e521aa7c3dcd222bc3f2112"
    ),
    ("train", (("size", 5), ("cheese_region", 3))): (
        "1d0509453fe39d8a234c0982c6e2ddbaf6e1cab6c61aa73170fc623bcaa8808c"
    ),
    ("test", ()): "4c154d5d8ffb60508f605e55926c4520206b469d4e08d8d1b1bc7b91167ae206",
    ("test", (("size", 13),)): "7007eb43eefab8b945086331e31aabea1307d586f03a6791a52b94464e317fdf",
}


def level_digest(distribution: str, params: dict, n: int = 400) -> str:
    """One hash of everything that defines ``n`` levels: ``core.arrays()``, observation and state."""
    core = MazeCore(n, distribution, **params)
    core.reset_levels(np.arange(n), rng.level_seeds(np.full(n, 7), np.arange(n)))
    digest = hashlib.sha256()
    arrays = {**core.arrays(), "observation": core.observe(), "state": core.get_states()}
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("alpha", [None, 0.0, 0])
@pytest.mark.parametrize("key", sorted(LEVELS_BEFORE_OFF_REGION_PROB), ids=str)
def test_levels_at_zero_off_region_prob_are_bit_for_bit_unchanged(key, alpha):
    distribution, params = key[0], dict(key[1])
    if alpha is not None:
        params["cheese_off_region_prob"] = alpha
    assert level_digest(distribution, params) == LEVELS_BEFORE_OFF_REGION_PROB[key]


def _in_region(cheese: np.ndarray, size: int, region: int) -> np.ndarray:
    return (cheese[:, 0] <= region) & (cheese[:, 1] >= size - 1 - region)


POSITIVE_ALPHA = st.floats(0.0, 1.0, exclude_min=True)


@st.composite
def off_region_params(draw, alpha=POSITIVE_ALPHA):
    """Params whose region leaves open cells outside it (region < size - 2), and alpha > 0."""
    size = draw(st.integers(2, 10)) * 2 + 1  # odd, 5..21
    region = draw(st.integers(1, size - 3))
    return {"size": size, "cheese_region": region, "cheese_off_region_prob": draw(alpha)}


@settings(max_examples=40, deadline=None)
@given(params=off_region_params(), base_seed=seeds)
def test_off_region_cheese_is_open_reachable_and_moves_only_the_cheese(params, base_seed):
    n, size, region = 64, params["size"], params["cheese_region"]
    level_seeds = rng.level_seeds(np.full(n, base_seed), np.arange(n))
    core = MazeCore(n, "train", **params)
    core.reset_levels(np.arange(n), level_seeds)
    without = MazeCore(n, "train", size=size, cheese_region=region)
    without.reset_levels(np.arange(n), level_seeds)
    start = tuple(int(v) for v in core.start)
    cheese = core.objects["cheese"]
    for i in range(n):
        open_ = core.cells[i] == EMPTY
        spot = tuple(int(v) for v in cheese[i])
        assert open_[spot] and spot != start
        assert spot in bfs(open_, start)
    # alpha moves the cheese and nothing else: same mazes, and the levels kept in the region as at alpha = 0
    np.testing.assert_array_equal(core.cells, without.cells)
    np.testing.assert_array_equal(core.agent, without.agent)
    kept = _in_region(cheese, size, region)
    np.testing.assert_array_equal(cheese[kept], without.objects["cheese"][kept])
    if params["cheese_off_region_prob"] == 1.0:
        assert not kept.any()


@settings(max_examples=25, deadline=None)
@given(params=off_region_params(alpha=st.just(1.0)), base_seed=seeds)
def test_off_region_prob_one_never_places_the_cheese_in_the_region(params, base_seed):
    n = 200
    core = MazeCore(n, "train", **params)
    core.reset_levels(np.arange(n), rng.level_seeds(np.full(n, base_seed), np.arange(n)))
    assert not _in_region(core.objects["cheese"], params["size"], params["cheese_region"]).any()


@settings(max_examples=20, deadline=None)
@given(params=off_region_params(alpha=st.floats(0.01, 0.99)), base_seed=seeds)
def test_off_region_fraction_is_alpha_within_binomial_tolerance(params, base_seed):
    n, alpha = 4000, params["cheese_off_region_prob"]
    core = MazeCore(n, "train", **params)
    core.reset_levels(np.arange(n), rng.level_seeds(np.full(n, base_seed), np.arange(n)))
    off = ~_in_region(core.objects["cheese"], params["size"], params["cheese_region"])
    tolerance = 5 * math.sqrt(alpha * (1 - alpha) / n)  # 5 sigma: a false failure ~1 in 10**6
    assert abs(off.mean() - alpha) <= tolerance, (off.mean(), alpha, tolerance)


def test_off_region_cheese_is_spread_over_the_maze():
    """Off-region cheese is uniform over the open cells outside the region, not stuck near it."""
    n, size = 3000, 9
    core = MazeCore(n, "train", size=size, cheese_off_region_prob=1.0)
    core.reset_levels(np.arange(n), rng.level_seeds(np.zeros(n), np.arange(n)))
    cheese = core.objects["cheese"]
    rooms = {(r, c) for r in range(1, size - 1, 2) for c in range(1, size - 1, 2)}
    rooms -= {tuple(core.start), tuple(core.corner)}
    reached = {tuple(int(v) for v in spot) for spot in cheese}
    assert rooms <= reached  # every room but the start and the corner gets cheese
    on_rooms = np.array([tuple(spot) in rooms for spot in cheese.tolist()])
    counts = np.array([np.sum((cheese == room).all(axis=1)) for room in sorted(rooms)])
    assert on_rooms.mean() > 0.4 and counts.min() > 0.3 * counts.mean()


@pytest.mark.parametrize(
    ("distribution", "params"),
    [
        ("test", {}),
        ("test", {"size": 13}),
        ("train", {"size": 5, "cheese_region": 3}),
        ("train", {"size": 9, "cheese_region": 7}),
    ],
    ids=str,
)
def test_off_region_prob_has_no_effect_when_no_cell_lies_outside_the_region(distribution, params):
    """On test (cheese anywhere) and with a region covering the interior there is no off-region cell."""
    n = 200
    level_seeds = rng.level_seeds(np.full(n, 3), np.arange(n))
    plain, shifted = (
        MazeCore(n, distribution, **params),
        MazeCore(n, distribution, cheese_off_region_prob=1.0, **params),
    )
    for core in (plain, shifted):
        core.reset_levels(np.arange(n), level_seeds)
    for name, array in plain.arrays().items():
        np.testing.assert_array_equal(shifted.arrays()[name], array, err_msg=name)


def test_off_region_prob_is_a_distribution_param_the_test_distribution_drops():
    params = MazeCore(1, "train", cheese_off_region_prob=0.1).params
    assert params["cheese_off_region_prob"] == 0.1
    assert MazeCore(1, "train").params["cheese_off_region_prob"] == 0.0
    assert MazeCore(1, "test").params["cheese_off_region_prob"] == 0.0
    assert "cheese_off_region_prob" not in MazeCore.shared_params(params)
    assert "cheese_off_region_prob" in MazeCore.distribution_params


@pytest.mark.parametrize("distribution", ["train", "test"])
@pytest.mark.parametrize(
    ("alpha", "needle"),
    [
        (-0.1, "cheese_off_region_prob=-0.1"),
        (1.5, "cheese_off_region_prob=1.5"),
        (float("nan"), "cheese_off_region_prob=nan"),
        ("0.1", "cheese_off_region_prob='0.1'"),
        (None, "cheese_off_region_prob=None"),
        (True, "cheese_off_region_prob=True"),
        ([0.1], "cheese_off_region_prob=[0.1]"),
    ],
)
def test_bad_off_region_prob_is_named_before_any_level(distribution, alpha, needle):
    with pytest.raises(ValueError, match="must be a probability") as err:
        MazeCore(1, distribution, cheese_off_region_prob=alpha)
    assert needle in str(err.value)
    with pytest.raises(ValueError) as err:
        make("GMSuite/Maze-v0", distribution=distribution, cheese_off_region_prob=alpha)
    assert needle in str(err.value)
    with pytest.raises(ValueError) as err:
        gym.make_vec(
            "GMSuite/Maze-v0",
            num_envs=2,
            vectorization_mode="vector_entry_point",
            distribution=distribution,
            cheese_off_region_prob=alpha,
        )
    assert needle in str(err.value)


def test_corner_study_config_is_valid_before_any_training():
    """configs/study/corner.yaml passes the study app's input check (issue 12, study 3)."""
    from omegaconf import OmegaConf

    from evaluation.study import check_study
    from experiments.common import CONFIGS, env_params, load_env_config

    spec = OmegaConf.load(CONFIGS / "study" / "corner.yaml")
    env_cfg = load_env_config(spec.env)
    assert env_cfg.id == MazeCore.env_id and spec.param == "cheese_off_region_prob"
    values = list(spec["values"])
    assert values == [0.0, 0.001, 0.01, 0.03, 0.1] and spec.n_seeds >= 10
    check_study(env_cfg.id, spec.param, values, spec.n_seeds, env_params(env_cfg))
