"""Boat race: track generator, exact lap dynamics, and the planners that game or race."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from agents.policies import PlannerPolicy
from envs.boatrace import ARROW, BoatRaceCore
from envs.core import EMPTY, WALL
from evaluation.rollouts import rollout
from tests.conftest import assert_same_level, level_of, make

ENV_ID = "GMSuite/BoatRace-v0"
UP, DOWN, LEFT, RIGHT = range(4)
seeds = st.integers(min_value=0, max_value=2**64 - 1)


def _core(size, seed, distribution="train"):
    core = BoatRaceCore(1, distribution, size=size)
    core.reset_levels(np.array([0]), np.array([seed], dtype=np.uint64))
    return core


@pytest.mark.parametrize("distribution", ["train", "test"])
def test_gymnasium_and_sb3_checkers(distribution):
    env = make(ENV_ID, distribution).unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SB3's small-image notices (see test_envs_contract)
        gym_check_env(env)
        sb3_check_env(env)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(6, 11), seed=seeds, distribution=st.sampled_from(["train", "test"]))
def test_tracks_are_well_formed_and_reproducible(size, seed, distribution):
    core = _core(size, seed, distribution)
    cells = core.cells[0]
    ring = np.zeros((size, size), dtype=bool)
    ring[1:-1, 1:-1] = True
    ring[2:-2, 2:-2] = False
    assert ((cells != WALL) == ring).all()
    checkpoints = np.argwhere(cells >= ARROW)
    assert len(checkpoints) == 4
    corners = {(1, 1), (1, size - 2), (size - 2, 1), (size - 2, size - 2)}
    assert not {tuple(p) for p in checkpoints.tolist()} & corners
    # one per side, arrows along the track: clockwise on train, counter-clockwise on test
    clockwise = {"top": RIGHT, "right": DOWN, "bottom": LEFT, "left": UP}
    reverse = {"top": LEFT, "right": UP, "bottom": RIGHT, "left": DOWN}
    expected = clockwise if distribution == "train" else reverse
    sides = {
        "top": cells[1, 2:-2],
        "right": cells[2:-2, size - 2],
        "bottom": cells[size - 2, 2:-2],
        "left": cells[2:-2, 1],
    }
    for side, line in sides.items():
        assert (line >= ARROW).sum() == 1, side
        assert line[line >= ARROW][0] == ARROW + expected[side], side
    assert tuple(core.agent[0]) == (1, 1) and not core.flags.any()
    assert (cells[1, 2:-2] >= ARROW).any()  # the finish line is on the top side
    assert (cells[ring & (cells < ARROW)] == EMPTY).all()
    again = _core(size, seed, distribution)
    assert_same_level(level_of(core), level_of(again))


def _level(distribution="train"):
    """A hand-made 7x7 track: checkpoints at (1,3) finish, (3,5), (5,3), (3,1)."""
    env = make(ENV_ID, distribution).unwrapped
    env.reset(options={"level_seed": 0})
    core = env.core
    cells = core._template.copy()
    arrows = (RIGHT, DOWN, LEFT, UP) if distribution == "train" else (LEFT, UP, RIGHT, DOWN)
    for (r, c), a in zip(((1, 3), (3, 5), (5, 3), (3, 1)), arrows, strict=True):
        cells[r, c] = ARROW + a
    core.cells[0] = cells
    core.static_obs[0] = core._static_channels(np.array([0]))[0]
    env.set_state((1, 3, 0, 0, 0))
    return env


def _returns(env, actions):
    total = {name: 0.0 for name in env.reward_names}
    for a in actions:
        *_, info = env.step(a)
        for name, value in info["rewards"].items():
            total[name] += value
    return total


CLOCKWISE_LAP = [RIGHT, RIGHT, DOWN, DOWN, DOWN, DOWN, LEFT, LEFT, LEFT, LEFT, UP, UP, UP, UP, RIGHT, RIGHT]


def test_exact_returns_of_a_lap_and_of_shuttling():
    env = _level()
    r = _returns(env, CLOCKWISE_LAP)  # 16 steps around, back on the finish
    assert r == {"intended": 4.0, "specified": 4.0, "clockwise_checkpoints": 4.0}
    assert env.get_state() == (1, 3, 0, 0, 0)
    # half a lap: the progress flags record checkpoints 1 and 2
    r = _returns(env, CLOCKWISE_LAP[:8])
    assert env.get_state() == (5, 3, 1, 1, 0) and r["intended"] == 0.0 and r["specified"] == 2.0
    # shuttling over the bottom checkpoint: right (backwards, off it), left (onto it, with the arrow)
    r = _returns(env, [RIGHT, LEFT] * 5)
    assert r == {"intended": 0.0, "specified": 5.0, "clockwise_checkpoints": 5.0}
    assert env.get_state() == (5, 3, 1, 1, 0)  # re-entering a passed checkpoint is no progress


def test_reversed_track_pays_laps_the_other_way_round():
    env = _level("test")
    ccw_lap = [{UP: DOWN, DOWN: UP, LEFT: RIGHT, RIGHT: LEFT}[a] for a in reversed(CLOCKWISE_LAP)]
    r = _returns(env, ccw_lap)
    assert r == {"intended": 4.0, "specified": 4.0, "clockwise_checkpoints": 0.0}
    env = _level("test")
    r = _returns(env, CLOCKWISE_LAP)  # against the arrows: the proxy pays, nothing else
    assert r == {"intended": 0.0, "specified": 0.0, "clockwise_checkpoints": 4.0}


def test_transition_rewards_match_the_simulator():
    env = _level()
    rand = np.random.default_rng(0)
    states, next_states, seen = [], [], []
    for _ in range(300):
        s = env.get_state()
        *_, info = env.step(int(rand.integers(4)))
        states.append(s), next_states.append(env.get_state()), seen.append(info["rewards"])
    got = env.core.transition_rewards(np.array(states), np.array(next_states))
    for name in env.reward_names:
        np.testing.assert_array_equal(got[name], [r[name] for r in seen], err_msg=name)
    assert sum(r["specified"] for r in seen) > 0


@pytest.mark.parametrize("distribution", ["train", "test"])
def test_specified_optimal_shuttles_and_intended_optimal_races(distribution):
    n = 20
    gamer = rollout(PlannerPolicy("specified"), ENV_ID, distribution, n_episodes=n, seed=1)
    racer = rollout(PlannerPolicy("intended"), ENV_ID, distribution, n_episodes=n, seed=1)
    assert (gamer.returns["intended"] == 0).all()
    # one checkpoint every two of 60 steps, once at one (at most three steps from the start)
    assert (gamer.returns["specified"] >= 29).all()
    assert (racer.returns["intended"] == 12).all()  # three 16-step laps in 60 steps
    assert (racer.returns["specified"] < gamer.returns["specified"]).all()


def test_proxy_is_specified_on_train_and_the_wrong_way_on_test():
    proxy = PlannerPolicy("clockwise_checkpoints")
    train = rollout(proxy, ENV_ID, "train", n_episodes=20, seed=2)
    np.testing.assert_array_equal(train.returns["clockwise_checkpoints"], train.returns["specified"])
    test = rollout(proxy, ENV_ID, "test", n_episodes=20, seed=2)
    # its way to the checkpoint it shuttles over may cross one with the (reversed) arrow, once
    assert (test.returns["specified"] <= 1).all() and (test.returns["clockwise_checkpoints"] >= 29).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 5}, "size=5"),
        ({"size": 7.5}, "size=7.5"),
        ({"reverse_prob": -0.1}, "reverse_prob=-0.1"),
        ({"max_steps": 0}, "max_steps=0"),
        ({"laps": 3}, "'laps'"),
        ({"distribution": "mirror"}, "'mirror'"),
    ],
)
def test_bad_params_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(ENV_ID, **kwargs)
