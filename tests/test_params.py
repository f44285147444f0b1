"""Bad input stops with a ValueError whose message names the bad value (DESIGN 5)."""

from __future__ import annotations

import gymnasium as gym
import pytest

from envs.coinrun import CoinRunCore
from envs.maze import MazeCore
from tests.conftest import make

BAD_PARAMS = [
    # (env id, kwargs, text the message must contain)
    ("GMSuite/CoinRun-v0", {"distribution": "nope"}, "'nope'"),
    ("GMSuite/Maze-v0", {"distribution": "nope"}, "'nope'"),
    ("GMSuite/CoinRun-v0", {"coin_random_prob": 1.5}, "coin_random_prob=1.5"),
    ("GMSuite/CoinRun-v0", {"coin_random_prob": -0.5}, "coin_random_prob=-0.5"),
    ("GMSuite/CoinRun-v0", {"hazard_prob": -0.1}, "hazard_prob=-0.1"),
    ("GMSuite/CoinRun-v0", {"hazard_prob": float("nan")}, "hazard_prob=nan"),
    ("GMSuite/CoinRun-v0", {"hazard_prob": "0.5"}, "hazard_prob='0.5'"),
    ("GMSuite/CoinRun-v0", {"colour": "red"}, "'colour'"),
    ("GMSuite/Maze-v0", {"colour": "red"}, "'colour'"),
    ("GMSuite/CoinRun-v0", {"height": 4}, "height=4"),
    ("GMSuite/CoinRun-v0", {"width": 6}, "width=6"),
    ("GMSuite/CoinRun-v0", {"width": 9.0}, "width=9.0"),
    ("GMSuite/CoinRun-v0", {"max_steps": 0}, "max_steps=0"),
    ("GMSuite/Maze-v0", {"size": 8}, "size=8"),
    ("GMSuite/Maze-v0", {"size": 3}, "size=3"),
    ("GMSuite/Maze-v0", {"size": True}, "size=True"),
    ("GMSuite/Maze-v0", {"size": 9, "cheese_region": 8}, "cheese_region=8"),
    ("GMSuite/Maze-v0", {"size": 5, "cheese_region": 4}, "cheese_region=4"),
    ("GMSuite/Maze-v0", {"cheese_region": 0}, "cheese_region=0"),
    ("GMSuite/Maze-v0", {"distribution": "test", "cheese_region": 99}, "cheese_region=99"),
    ("GMSuite/Maze-v0", {"max_steps": -3}, "max_steps=-3"),
]


def _id(case):
    env_id, kwargs, _ = case
    return f"{env_id.split('/')[1]}-" + ",".join(f"{k}={v}" for k, v in kwargs.items())


@pytest.mark.parametrize("case", BAD_PARAMS, ids=[_id(c) for c in BAD_PARAMS])
def test_bad_params_raise_naming_the_value(case):
    env_id, kwargs, needle = case
    with pytest.raises(ValueError) as err:
        make(env_id, **kwargs)
    assert needle in str(err.value), str(err.value)
    # the batched entry point validates the same way
    with pytest.raises(ValueError) as err:
        gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", **kwargs)
    assert needle in str(err.value), str(err.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"coin_random_prob": 0},
        {"coin_random_prob": 1},
        {"hazard_prob": 0.0, "height": 5, "width": 7},
        {"height": 51, "width": 101},
        {"distribution": "test", "coin_random_prob": 0.3},
    ],
)
def test_valid_coinrun_params_accepted(kwargs):
    env = make("GMSuite/CoinRun-v0", **kwargs)
    env.reset(seed=0)
    for name, value in kwargs.items():
        if name != "distribution":
            assert env.unwrapped.params[name] == value


def test_user_param_overrides_distribution_default():
    assert CoinRunCore(1, "test", coin_random_prob=0.25).params["coin_random_prob"] == 0.25
    assert CoinRunCore(1, "test").params["coin_random_prob"] == 1.0
    assert CoinRunCore(1, "train").params["coin_random_prob"] == 0.0
    assert MazeCore(1, "test").params["cheese_region"] is None
    assert MazeCore(1, "test", cheese_region=2).params["cheese_region"] == 2
    assert MazeCore(1, "train", size=11, cheese_region=9).params["cheese_region"] == 9


def test_shared_params_drop_distribution_params():
    params = CoinRunCore(1, "train", height=9, coin_random_prob=0.2).params
    shared = CoinRunCore.shared_params(params)
    assert "coin_random_prob" not in shared and shared["height"] == 9


@pytest.mark.parametrize("num_envs", [0, -1, 1.5, True])
def test_bad_num_envs(num_envs):
    with pytest.raises(ValueError, match="num_envs"):
        CoinRunCore(num_envs)


def test_negative_level_seed_rejected():
    env = make("GMSuite/CoinRun-v0")
    with pytest.raises(ValueError, match="-5"):
        env.reset(options={"level_seed": -5})


def test_vector_reset_wrong_number_of_seeds():
    vec = gym.make_vec("GMSuite/Maze-v0", num_envs=3, vectorization_mode="vector_entry_point")
    with pytest.raises(ValueError, match="2 seeds for 3 envs"):
        vec.reset(seed=[1, 2])
