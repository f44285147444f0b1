"""The environment contract (DESIGN.md section 3) for every registered env and distribution."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from envs.core import VERDICTS
from tests.conftest import ENV_IDS, SHORT_EPISODES, make

# SB3's checker assumes image observations are meant for its CnnPolicy; ours are
# small one-hot planes in [0, 1] on purpose. Only these two notices are tolerated.
TOLERATED_SB3_WARNINGS = (
    "is an image but the upper and lower bounds are not in [0, 255]",
    "The minimal resolution for an image is 36x36",
)


# ----------------------------------------------------------------- declarations
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_declarations_are_consistent(env_id):
    core = envs.core_class(env_id)
    assert core.env_id == env_id
    assert "train" in core.distributions
    assert len(core.distributions) >= 2, "a shift env needs at least one shifted distribution"
    names = core.reward_names
    assert len(set(names)) == len(names)
    assert {"intended", "specified"} <= set(names)
    assert core.proxy_rewards, "at least one proxy reward must be declared"
    assert set(core.proxy_rewards) <= set(names)
    assert not {"intended", "specified"} & set(core.proxy_rewards)
    assert set(core.distribution_params) <= set(core.params_spec)
    for dist, overrides in core.distributions.items():
        assert set(overrides) <= set(core.params_spec), dist


# Envs whose design predicts no verdict (the task contract lets expected_verdicts leave it out), and why.
NO_EXPECTED_VERDICT = {
    "GMSuite/ColourShape-v0": (
        "colour and gem planes are equal on every training observation and the test distribution is "
        "symmetric under swapping colour with shape, so which one an agent follows depends on its seed"
    ),
}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_expected_verdicts_name_every_shifted_distribution(env_id):
    core = envs.core_class(env_id)
    shifted = set() if env_id in NO_EXPECTED_VERDICT else set(core.distributions) - {"train"}
    assert set(core.expected_verdicts) == shifted
    assert set(core.expected_verdicts.values()) <= set(VERDICTS)
    for dist, verdict in core.expected_verdicts.items():
        if verdict == "goal_misgeneralization":
            assert core.expected_goals.get(dist) in core.proxy_rewards, dist
    # the single env exposes the same declarations
    env = make(env_id).unwrapped
    assert env.expected_verdicts == dict(core.expected_verdicts)
    assert env.reward_names == core.reward_names
    assert env.proxy_rewards == core.proxy_rewards


def test_verdict_names_match_design():
    """The code's verdict names are the ones DESIGN.md §4 fixes, in its order (ties and plots follow it)."""
    design = " ".join((Path(__file__).resolve().parents[1] / "docs" / "DESIGN.md").read_text().split())
    sentence = re.search(r"Verdict names, everywhere \([^)]*\): ([^.]*)\.", design)
    assert sentence, "DESIGN.md no longer lists the verdict names after 'Verdict names, everywhere (...):'"
    assert tuple(re.findall(r"`([a-z_]+)`", sentence.group(1))) == VERDICTS


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_registered_with_both_entry_points(env_id):
    spec = gym.registry[env_id]
    assert spec.entry_point and spec.vector_entry_point
    assert issubclass(envs.core_class(env_id), envs.GridCore)


def test_core_class_unknown_id_names_it():
    with pytest.raises(ValueError, match="GMSuite/Nope-v0"):
        envs.core_class("GMSuite/Nope-v0")


# ----------------------------------------------------------------- checkers
def test_gymnasium_and_sb3_checkers_pass(env_dist):
    env_id, dist = env_dist
    for render_mode in (None, "ansi", "rgb_array"):
        env = make(env_id, dist, render_mode=render_mode)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gym_check_env(env.unwrapped)
            sb3_check_env(env.unwrapped, warn=True)
        unexpected = [
            str(w.message)
            for w in caught
            if not any(tolerated in str(w.message) for tolerated in TOLERATED_SB3_WARNINGS)
        ]
        assert not unexpected, unexpected


# ----------------------------------------------------------------- per-step contract
def test_rewards_info_and_observations_every_step(env_dist):
    env_id, dist = env_dist
    env = make(env_id, dist, **SHORT_EPISODES.get(env_id, {}))
    names = env.unwrapped.reward_names
    space = env.observation_space
    obs, info = env.reset(seed=3)
    assert isinstance(info["level_seed"], int)
    rng = np.random.default_rng(0)
    episodes = 0
    for _ in range(400):
        assert obs.dtype == np.uint8
        assert obs.shape == space.shape
        assert space.contains(obs)
        obs, reward, terminated, truncated, info = env.step(int(rng.integers(4)))
        assert set(info["rewards"]) == set(names)
        assert all(type(v) is float for v in info["rewards"].values()), info["rewards"]
        assert type(reward) is float
        assert reward == info["rewards"]["specified"]
        assert type(terminated) is bool and type(truncated) is bool
        assert not (terminated and truncated)
        if terminated or truncated:
            episodes += 1
            obs, info = env.reset()
    assert episodes >= 5


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_observation_shape_same_on_every_distribution(env_id):
    core = envs.core_class(env_id)
    shapes = set()
    for dist in core.distributions:
        env = make(env_id, dist)
        obs, _ = env.reset(seed=0)
        shapes.add((env.observation_space.shape, obs.shape))
    assert len(shapes) == 1, shapes


def test_observation_planes_are_channels_first_one_hot(env_dist):
    env_id, dist = env_dist
    env = make(env_id, dist)
    core = env.unwrapped.core
    obs, _ = env.reset(seed=11)
    n_channels = len(core.channel_names)
    assert obs.shape == (n_channels, core.height, core.width)
    assert set(np.unique(obs)) <= {0, 1}
    # exactly one agent, at the agent's position; one plane per object at its position
    agent = obs[core.channel_names.index("agent")]
    assert agent.sum() == 1
    assert agent[tuple(core.agent[0])] == 1
    for name, pos in core.objects.items():
        plane = obs[core.channel_names.index(name)]
        assert plane.sum() == 1 and plane[tuple(pos[0])] == 1
    wall = obs[core.channel_names.index("wall")]
    np.testing.assert_array_equal(wall, core.cells[0] == 1)
    # the agent plane follows the agent
    for action in (3, 0, 3, 1):
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
        agent = obs[core.channel_names.index("agent")]
        assert agent.sum() == 1 and agent[tuple(core.agent[0])] == 1


def test_render_modes(env_dist):
    env_id, dist = env_dist
    env = make(env_id, dist, render_mode="ansi")
    env.reset(seed=1)
    text = env.render()
    core = env.unwrapped.core
    assert isinstance(text, str)
    lines = text.rstrip("\n").split("\n")
    assert len(lines) == core.height and all(len(line) == core.width for line in lines)
    assert text.count("@") == 1

    env = make(env_id, dist, render_mode="rgb_array")
    env.reset(seed=1)
    image = env.render()
    assert isinstance(image, np.ndarray)
    assert image.dtype == np.uint8
    assert image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] % core.height == 0 and image.shape[1] % core.width == 0
    assert image.shape[0] // core.height == image.shape[1] // core.width
    assert image.std() > 0, "a rendered level should not be a flat colour"

    env = make(env_id, dist)
    env.reset(seed=1)
    assert env.render() is None


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_unknown_render_mode_rejected(env_id):
    env_cls = gym.envs.registration.load_env_creator(gym.registry[env_id].entry_point)
    with pytest.raises(ValueError, match="bogus"):
        env_cls(render_mode="bogus")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_vector_env_unknown_render_mode_rejected(env_id):
    """DESIGN 5: bad input stops with a message naming it. The single env checks
    render_mode; the vector env accepts anything and then renders nothing."""
    with pytest.raises(ValueError, match="bogus"):
        gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", render_mode="bogus")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_vector_render(env_id):
    vec = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point", render_mode="ansi")
    vec.reset(seed=0)
    frames = vec.render()
    assert len(frames) == 3 and all(isinstance(f, str) for f in frames)


# ----------------------------------------------------------------- actions
@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("action", [-1, 4, 1.5])
def test_single_env_rejects_invalid_action(env_id, action):
    env = make(env_id)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="invalid action"):
        env.step(action)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_vector_env_rejects_negative_action(env_id):
    """``MOVES[actions]`` with numpy indexing silently reads -1 as 'right' (3)."""
    vec = gym.make_vec(env_id, num_envs=4, vectorization_mode="vector_entry_point")
    vec.reset(seed=0)
    with pytest.raises(ValueError):
        vec.step(np.array([-1, 0, 0, 0]))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_vector_env_rejects_wrong_number_of_actions(env_id):
    """One action for four envs silently broadcasts to all of them."""
    vec = gym.make_vec(env_id, num_envs=4, vectorization_mode="vector_entry_point")
    vec.reset(seed=0)
    with pytest.raises(ValueError):
        vec.step(np.array([3]))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_walls_block_and_moves_follow_documented_order(env_id):
    kwargs = {"hazard_prob": 0.0} if "CoinRun" in env_id else {}
    env = make(env_id, **kwargs).unwrapped
    env.reset(seed=5)
    core = env.core
    start = env.get_state()
    moves = {0: (-1, 0), 1: (1, 0), 2: (0, -1), 3: (0, 1)}
    blocked_seen = moved_seen = 0
    for action, (dr, dc) in moves.items():
        env.set_state(start)
        target = (start[0] + dr, start[1] + dc)
        env.step(action)
        if core.cells[0][target] == 1:
            assert tuple(core.agent[0]) == start[:2]
            blocked_seen += 1
        else:
            assert tuple(core.agent[0]) == target
            moved_seen += 1
    assert blocked_seen >= 1 and moved_seen >= 1  # the start is next to the left border wall
