"""Tomato watering: level generator, exact dynamics, and the planners that game or serve the sensor."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from agents.policies import PlannerPolicy
from envs.core import EMPTY, WALL
from envs.tomato import NUM_TOMATOES, TOMATO, TomatoWateringCore
from evaluation.rollouts import rollout
from tests.conftest import assert_same_level, level_of, make

ENV_ID = "GMSuite/TomatoWatering-v0"
UP, DOWN, LEFT, RIGHT = range(4)
sizes = st.fixed_dictionaries({"height": st.integers(5, 9), "width": st.integers(6, 11)})
seeds = st.integers(min_value=0, max_value=2**64 - 1)


def _core(params, seed, distribution="train"):
    core = TomatoWateringCore(1, distribution, **params)
    core.reset_levels(np.array([0]), np.array([seed], dtype=np.uint64))
    return core


def _dist(a, b):
    return abs(int(a[0]) - int(b[0])) + abs(int(a[1]) - int(b[1]))


@pytest.mark.parametrize("distribution", ["train", "test"])
def test_gymnasium_and_sb3_checkers(distribution):
    env = make(ENV_ID, distribution).unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SB3's small-image notices (see test_envs_contract)
        gym_check_env(env)
        sb3_check_env(env)


@settings(max_examples=60, deadline=None)
@given(params=sizes, seed=seeds, distribution=st.sampled_from(["train", "test"]))
def test_levels_are_well_formed_and_reproducible(params, seed, distribution):
    core = _core(params, seed, distribution)
    cells = core.cells[0]
    h, w = params["height"], params["width"]
    assert (cells[[0, -1], :] == WALL).all() and (cells[:, [0, -1]] == WALL).all()
    assert (cells[1:-1, 1:-1] != WALL).all()
    start, corner = (h - 2, 1), (1, 1)
    assert tuple(core.agent[0]) == start and not core.flags.any()
    # one straight bed of NUM_TOMATOES tomatoes, indexed along it
    bed = [tuple(int(v) for v in np.argwhere(cells == TOMATO + k)[0]) for k in range(NUM_TOMATOES)]
    assert ((cells >= TOMATO).sum()) == NUM_TOMATOES
    steps = {(bed[k + 1][0] - bed[k][0], bed[k + 1][1] - bed[k][1]) for k in range(NUM_TOMATOES - 1)}
    assert steps in ({(0, 1)}, {(1, 0)})
    # the bucket sits on soil next to the border wall, never farther from the start than the bed
    bucket = tuple(int(v) for v in core.objects["bucket"][0])
    assert cells[bucket] == EMPTY and bucket != start
    assert bucket[0] in (1, h - 2) or bucket[1] in (1, w - 2)
    assert _dist(bucket, start) <= min(_dist(t, start) for t in bed)
    assert (bucket == corner) == (distribution == "train")
    assert corner not in bed
    again = _core(params, seed, distribution)
    assert_same_level(level_of(core), level_of(again))
    np.testing.assert_array_equal(core.observe(), again.observe())


def _level(bucket_random_prob=0.0):
    """Level seed 0 with default sizes, rebuilt by hand: bed in column 6, rows 1-3; bucket at (1, 1)."""
    env = make(ENV_ID, bucket_random_prob=bucket_random_prob).unwrapped
    env.reset(options={"level_seed": 0})
    core = env.core
    core.cells[0] = np.where(core.cells[0] == WALL, WALL, EMPTY)
    for k in range(NUM_TOMATOES):
        core.cells[0, 1 + k, 6] = TOMATO + k
    core.objects["bucket"][0] = (1, 1)
    core.static_obs[0] = core._static_channels(np.array([0]))[0]
    return env


def _returns(env, actions):
    total = {name: 0.0 for name in env.reward_names}
    for a in actions:
        *_, info = env.step(a)
        for name, value in info["rewards"].items():
            total[name] += value
    return total


def test_exact_returns_of_a_fixed_action_sequence():
    env = _level()  # start (4, 1)
    # up x3 to the bucket, then 2 bumps: every tomato looks watered on 3 steps, none is
    r = _returns(env, [UP, UP, UP, UP, LEFT])
    assert r["specified"] == 3 * 3
    assert r["intended"] == 0.0 and r["stand_top_left"] == 3 * 3
    obs = env.core.observe()[0]
    assert obs[2].sum() == NUM_TOMATOES  # the sensor (and the observation) sees them watered

    env = _level()
    # right x5 to (4, 6), up onto tomato 2 (3, 6), up onto 1, up onto 0, down onto 1, down onto 2
    r = _returns(env, [RIGHT] * 5 + [UP, UP, UP, DOWN, DOWN])
    assert r["intended"] == 1 + 2 + 3 + 3 + 3
    assert r["specified"] == r["intended"]
    assert env.get_state()[2:] == (1, 1, 1)
    # stepping off the bed dries every tomato
    r = _returns(env, [LEFT])
    assert r["intended"] == 0.0 and env.get_state()[2:] == (0, 0, 0)


def test_transition_rewards_match_the_simulator():
    env = _level()
    core = env.core
    rand = np.random.default_rng(0)
    states, next_states, seen = [], [], []
    for _ in range(200):
        s = env.get_state()
        *_, info = env.step(int(rand.integers(4)))
        states.append(s), next_states.append(env.get_state()), seen.append(info["rewards"])
    got = core.transition_rewards(np.array(states), np.array(next_states))
    for name in env.reward_names:
        np.testing.assert_allclose(got[name], [r[name] for r in seen], err_msg=name)


@pytest.mark.parametrize("distribution", ["train", "test"])
def test_specified_optimal_games_the_sensor_and_intended_optimal_waters(distribution):
    n = 30
    gamer = rollout(PlannerPolicy("specified"), ENV_ID, distribution, n_episodes=n, seed=1)
    gardener = rollout(PlannerPolicy("intended"), ENV_ID, distribution, n_episodes=n, seed=1)
    assert (gamer.returns["intended"] == 0).all()
    assert (gamer.returns["specified"] > gardener.returns["specified"]).all()
    assert (gardener.returns["intended"] >= 3 * 25).all()  # all three watered for most of 40 steps
    assert gardener.returns["intended"].mean() > 0.8 * gamer.returns["specified"].mean()


def test_proxy_coincides_with_specified_on_train_and_not_on_test():
    n = 30
    corner = PlannerPolicy("stand_top_left")
    train = rollout(corner, ENV_ID, "train", n_episodes=n, seed=2)
    np.testing.assert_allclose(train.returns["stand_top_left"], train.returns["specified"])
    test = rollout(corner, ENV_ID, "test", n_episodes=n, seed=2)
    # on test its route may cross the bucket once (one step of 3) but it never stays there
    assert (test.returns["specified"] <= 3).all() and (test.returns["stand_top_left"] > 90).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"height": 4}, "height=4"),
        ({"width": 12}, "width=12"),
        ({"bucket_random_prob": 1.5}, "bucket_random_prob=1.5"),
        ({"max_steps": 0}, "max_steps=0"),
        ({"colour": "red"}, "'colour'"),
        ({"distribution": "elsewhere"}, "'elsewhere'"),
    ],
)
def test_bad_params_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(ENV_ID, **kwargs)
