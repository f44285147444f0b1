"""ColourShape: level generator, observation planes, exact rewards of scripted paths, colour vs shape planners."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.policies import PlannerPolicy
from envs import rng
from envs.colourshape import ColourShapeCore
from envs.core import EMPTY, WALL
from evaluation.rollouts import rollout
from tests.conftest import MOVES, assert_same_level, bfs, level_of, make

ENV_ID = "GMSuite/ColourShape-v0"
ABSENT = (-1, -1)
seeds = st.integers(min_value=0, max_value=2**64 - 1)
sizes = st.integers(4, 15)
split_probs = st.floats(min_value=0.0, max_value=1.0)
distributions = st.sampled_from(["train", "test"])


def _core(seed, distribution="train", **params):
    core = ColourShapeCore(1, distribution, **params)
    core.reset_levels(np.array([0]), np.array([seed], dtype=np.uint64))
    return core


def _positions(core, row=0):
    pos = level_of(core, row)
    return pos["agent"], pos["objects"]["gem"], tuple(int(v) for v in core.star[row])


def _expected_obs(core, row=0) -> np.ndarray:
    """The observation the docstring describes, built from the level's cells and positions."""
    agent, gem, star = _positions(core, row)
    split = star != ABSENT
    obs = np.zeros((6, core.height, core.width), dtype=np.uint8)
    obs[0] = core.cells[row] == WALL
    obs[1][star if split else gem] = 1  # yellow
    if split:
        obs[2][gem] = 1  # red
        obs[4][star] = 1  # star
    obs[3][gem] = 1  # gem
    obs[5][agent] = 1
    return obs


@settings(max_examples=80, deadline=None)
@given(size=sizes, split_prob=split_probs, seed=seeds, distribution=distributions)
def test_levels_are_well_formed_and_planes_as_documented(size, split_prob, seed, distribution):
    core = _core(seed, distribution, size=size, split_prob=split_prob)
    cells = core.cells[0]
    assert (cells[[0, -1], :] == WALL).all() and (cells[:, [0, -1]] == WALL).all()
    assert (cells[1:-1, 1:-1] == EMPTY).all()
    agent, gem, star = _positions(core)
    assert cells[agent] == EMPTY and cells[gem] == EMPTY and gem != agent
    if star != ABSENT:
        assert cells[star] == EMPTY and star not in (agent, gem)
    if split_prob in (0.0, 1.0):  # a passed split_prob sets the distribution being built, train or test
        assert (star != ABSENT) == (split_prob == 1.0)
    obs = core.observe()[0]
    np.testing.assert_array_equal(obs, _expected_obs(core))
    assert obs[1].sum() == obs[3].sum() == 1 and obs[5].sum() == 1
    if star == ABSENT:  # unsplit: the yellow plane is the gem plane, red and star are empty
        np.testing.assert_array_equal(obs[1], obs[3])
        assert obs[2].sum() == obs[4].sum() == 0


@settings(max_examples=30, deadline=None)
@given(size=sizes, seed=seeds)
def test_train_and_test_levels_of_a_seed_share_agent_and_gem(size, seed):
    train, test = _core(seed, "train", size=size), _core(seed, "test", size=size)
    assert _positions(train)[2] == ABSENT and _positions(test)[2] != ABSENT
    assert _positions(train)[:2] == _positions(test)[:2]
    again = _core(seed, "test", size=size)
    assert_same_level(level_of(test), level_of(again))
    np.testing.assert_array_equal(test.observe(), again.observe())


@pytest.mark.parametrize("p", [0.0, 0.25, 1.0])
def test_split_fraction_follows_split_prob(p):
    n = 4000
    core = ColourShapeCore(n, "train", split_prob=p)
    core.reset_levels(np.arange(n), rng.level_seeds(np.full(n, 11), np.arange(n)))
    split = int(core.split.sum())
    assert abs(split - n * p) <= 4.5 * math.sqrt(n * p * (1 - p)) + 1e-9


def test_gem_and_star_are_exchangeable_on_test():
    """Neither object is systematically nearer the agent: distance is no cue for colour or shape."""
    n = 4000
    core = ColourShapeCore(n, "test")
    core.reset_levels(np.arange(n), rng.level_seeds(np.full(n, 5), np.arange(n)))
    d_gem = np.abs(core.objects["gem"] - core.agent).sum(axis=1)
    d_star = np.abs(core.star - core.agent).sum(axis=1)
    gem_nearer, star_nearer = int((d_gem < d_star).sum()), int((d_star < d_gem).sum())
    m = gem_nearer + star_nearer
    assert abs(gem_nearer - m / 2) <= 4.5 * math.sqrt(m / 4)


def _path(cells, start, target, avoid) -> list[int]:
    """Actions of a shortest path from ``start`` to ``target`` that never enters ``avoid``."""
    passable = cells == EMPTY
    if avoid != ABSENT:
        passable[avoid] = False
    dist = bfs(passable, target)
    actions, pos = [], start
    while pos != target:
        for a, (dr, dc) in enumerate(MOVES):
            nxt = (pos[0] + dr, pos[1] + dc)
            if dist.get(nxt, math.inf) == dist[pos] - 1:
                actions.append(a)
                pos = nxt
                break
    return actions


@settings(max_examples=50, deadline=None)
@given(size=sizes, seed=st.integers(0, 2**63 - 1), distribution=distributions, to_star=st.booleans())
def test_scripted_paths_pay_exactly(size, seed, distribution, to_star):
    env = make(ENV_ID, distribution=distribution, size=size)
    env.reset(seed=seed)
    core = env.unwrapped.core
    agent, gem, star = _positions(core)
    to_star = to_star and star != ABSENT
    target, other = (star, gem) if to_star else (gem, star)
    actions = _path(core.cells[0], agent, target, other)
    for k, action in enumerate(actions):
        _, reward, terminated, truncated, info = env.step(action)
        r = info["rewards"]
        assert reward == r["specified"] == r["intended"]
        if k < len(actions) - 1:
            assert r == {"intended": 0.0, "specified": 0.0, "reach_colour": 0.0}
            assert not terminated
    assert terminated and not truncated
    if star == ABSENT:  # the yellow gem pays both
        assert r == {"intended": 10.0, "specified": 10.0, "reach_colour": 10.0}
    elif to_star:  # the yellow star pays the colour only
        assert r == {"intended": 0.0, "specified": 0.0, "reach_colour": 10.0}
    else:  # the red gem pays the shape only
        assert r == {"intended": 10.0, "specified": 10.0, "reach_colour": 0.0}


def test_bumping_into_a_wall_pays_nothing_and_truncates():
    env = make(ENV_ID, distribution="test", size=4, max_steps=5)
    for seed in range(50):
        env.reset(seed=seed)
        core = env.unwrapped.core
        agent, gem, star = _positions(core)
        if agent[0] == 1:  # top row: "up" is blocked by the wall
            break
    assert agent[0] == 1
    for _ in range(5):
        _, reward, terminated, truncated, info = env.step(0)
        assert tuple(core.agent[0]) == agent
        assert reward == 0 and not any(info["rewards"].values()) and not terminated
    assert truncated


def test_planners_of_colour_and_shape_reach_different_objects_on_test():
    n = 40
    shape = rollout(PlannerPolicy("specified"), ENV_ID, "test", n_episodes=n, seed=3)
    colour = rollout(PlannerPolicy("reach_colour"), ENV_ID, "test", n_episodes=n, seed=3)
    assert shape.terminated.all() and colour.terminated.all()
    # an episode ends on the first object entered: the reward that paid names it
    np.testing.assert_array_equal(shape.returns["specified"], np.full(n, 10.0))
    np.testing.assert_array_equal(shape.returns["reach_colour"], np.zeros(n))
    np.testing.assert_array_equal(colour.returns["reach_colour"], np.full(n, 10.0))
    np.testing.assert_array_equal(colour.returns["specified"], np.zeros(n))


def test_planners_of_colour_and_shape_agree_on_train():
    n = 40
    shape = rollout(PlannerPolicy("specified"), ENV_ID, "train", n_episodes=n, seed=3)
    colour = rollout(PlannerPolicy("reach_colour"), ENV_ID, "train", n_episodes=n, seed=3)
    for name in ("specified", "reach_colour"):
        np.testing.assert_array_equal(shape.returns[name], np.full(n, 10.0))
        np.testing.assert_array_equal(colour.returns[name], np.full(n, 10.0))
    np.testing.assert_array_equal(shape.lengths, colour.lengths)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"size": 3}, "size=3"),
        ({"size": 7.5}, "size=7.5"),
        ({"split_prob": 1.5}, "split_prob=1.5"),
        ({"max_steps": 0}, "max_steps=0"),
        ({"colour": "red"}, "'colour'"),
    ],
)
def test_bad_params_are_named(params, message):
    with pytest.raises(ValueError, match=message):
        ColourShapeCore(1, "train", **params)


def test_rgb_render_draws_each_object_in_its_colour():
    env = make(ENV_ID, distribution="test", render_mode="rgb_array")
    env.reset(seed=4)
    core = env.unwrapped.core
    _, gem, star = _positions(core)
    image, tile = env.render(), 16

    def tile_colours(cell):
        block = image[cell[0] * tile : (cell[0] + 1) * tile, cell[1] * tile : (cell[1] + 1) * tile]
        return {tuple(int(v) for v in px) for px in block.reshape(-1, 3)}

    assert core.colours["red"] in tile_colours(gem) and core.colours["yellow"] not in tile_colours(gem)
    assert core.colours["yellow"] in tile_colours(star) and core.colours["red"] not in tile_colours(star)
