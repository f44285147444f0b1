"""The Stable-Baselines3 VecEnv adapter over the batched shift envs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecCheckNan

import envs
from agents.vec_env import ShiftSB3VecEnv
from tests.conftest import ENV_IDS, SHORT_EPISODES

N = 6


def make_sb3(env_id, distribution="train", n=N, reward="specified", **kwargs):
    kwargs = {**SHORT_EPISODES.get(env_id, {}), **kwargs}
    vec = gym.make_vec(
        env_id, num_envs=n, vectorization_mode="vector_entry_point", distribution=distribution, **kwargs
    )
    return ShiftSB3VecEnv(vec, reward=reward)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_stepping_contract(env_id):
    venv = make_sb3(env_id, "test")
    core = venv.env.core
    names = core.reward_names
    checked = VecCheckNan(venv, raise_exception=True, check_inf=True)
    checked.seed(5)
    obs = checked.reset()
    assert obs.shape == (N, *core.obs_shape) and obs.dtype == np.uint8
    assert [set(i) for i in venv.reset_infos] == [{"level_seed"}] * N

    rand = np.random.default_rng(0)
    lengths = np.zeros(N, dtype=int)
    done_count = 0
    for _ in range(300):
        actions = rand.integers(4, size=N)
        checked.step_async(actions)
        obs, rewards, dones, infos = checked.step_wait()
        assert obs.shape == (N, *core.obs_shape)
        assert rewards.shape == (N,) and rewards.dtype == np.float32
        assert dones.shape == (N,) and dones.dtype == bool
        assert len(infos) == N
        lengths += 1
        for i in range(N):
            if dones[i]:
                done_count += 1
                info = infos[i]
                assert info["terminal_observation"].shape == core.obs_shape
                assert info["terminal_observation"].dtype == np.uint8
                assert set(info["episode_rewards"]) == set(names)
                assert all(type(v) is float for v in info["episode_rewards"].values())
                assert info["episode_length"] == lengths[i]
                assert isinstance(info["TimeLimit.truncated"], bool)
                if info["TimeLimit.truncated"]:
                    assert lengths[i] == core.max_steps
                lengths[i] = 0
                # the returned observation starts the next level (at the start cell, where the env has a
                # fixed one: ColourShape draws its agent's start at random)
                agent = obs[i][core.channel_names.index("agent")]
                assert core.steps[i] == 0 and agent[tuple(core.agent[i])] == 1
                if hasattr(core, "start"):
                    assert agent[tuple(core.start)] == 1
            else:
                assert "terminal_observation" not in infos[i]
    assert done_count >= N


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_episode_rewards_are_the_episode_sums(env_id):
    """Check the adapter against the underlying vector env stepped in lockstep."""
    venv = make_sb3(env_id, "test")
    ref = gym.make_vec(
        env_id,
        num_envs=N,
        vectorization_mode="vector_entry_point",
        distribution="test",
        **SHORT_EPISODES.get(env_id, {}),
    )
    names = venv.env.core.reward_names
    venv.seed(3)
    obs = venv.reset()
    ref_obs, _ = ref.reset(seed=3)
    np.testing.assert_array_equal(obs, ref_obs)
    sums = {name: np.zeros(N) for name in names}
    rand = np.random.default_rng(1)
    ends = rewarded = 0
    for _ in range(250):
        actions = rand.integers(4, size=N)
        obs, rewards, dones, infos = venv.step(actions)
        ref_obs, ref_rew, term, trunc, ref_info = ref.step(actions)
        np.testing.assert_array_equal(obs, ref_obs)
        np.testing.assert_array_equal(rewards, ref_rew)
        np.testing.assert_array_equal(dones, term | trunc)
        for name in names:
            sums[name] += ref_info["rewards"][name]
        for i in np.flatnonzero(dones):
            ends += 1
            np.testing.assert_array_equal(infos[i]["terminal_observation"], ref_info["final_obs"][i])
            assert infos[i]["TimeLimit.truncated"] == bool(trunc[i])
            rewarded += any(sums[name][i] != 0 for name in names)
            for name in names:
                assert infos[i]["episode_rewards"][name] == sums[name][i], name
                sums[name][i] = 0.0
    assert ends >= N
    assert rewarded >= 1, "no episode earned any reward: the sums were never exercised"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_training_reward_can_be_a_proxy(env_id):
    proxy = envs.core_class(env_id).proxy_rewards[0]
    venv = make_sb3(env_id, "test", reward=proxy)
    ref = gym.make_vec(
        env_id,
        num_envs=N,
        vectorization_mode="vector_entry_point",
        distribution="test",
        **SHORT_EPISODES.get(env_id, {}),
    )
    venv.seed(0)
    venv.reset()
    ref.reset(seed=0)
    rand = np.random.default_rng(2)
    for _ in range(200):
        actions = rand.integers(4, size=N)
        _, rewards, _, _ = venv.step(actions)
        _, _, _, _, info = ref.step(actions)
        np.testing.assert_array_equal(rewards, info["rewards"][proxy].astype(np.float32))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_unknown_reward_name_raises_naming_it(env_id):
    with pytest.raises(ValueError, match="'coins_collected'"):
        make_sb3(env_id, reward="coins_collected")


def test_seeded_reset_is_reproducible():
    a, b = make_sb3("GMSuite/CoinRun-v0", "test"), make_sb3("GMSuite/CoinRun-v0", "test")
    a.seed(11)
    b.seed(11)
    np.testing.assert_array_equal(a.reset(), b.reset())
    assert a.reset_infos == b.reset_infos
    c = make_sb3("GMSuite/CoinRun-v0", "test")
    c.seed(12)
    c.reset()
    assert c.reset_infos != a.reset_infos


def test_attribute_access_and_images():
    venv = make_sb3("GMSuite/Maze-v0", "test", n=3)
    venv.reset()
    assert venv.get_attr("distribution") == ["test"] * 3
    assert venv.env_is_wrapped(gym.Wrapper) == [False] * 3
    images = venv.get_images()
    assert len(images) == 3 and all(im.dtype == np.uint8 and im.ndim == 3 for im in images)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_tiny_ppo_learns_without_error(env_id):
    venv = make_sb3(env_id, "train", n=4)
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu", verbose=0)
    model.learn(total_timesteps=256)
    assert model.num_timesteps >= 256
    action, _ = model.predict(venv.reset(), deterministic=True)
    assert action.shape == (4,)


def test_reset_options_are_honoured():
    """SB3's ``VecEnv.set_options`` promises the options reach the next ``reset``.
    The adapter clears them without passing them on, so a chosen level set
    (per-env ``{"level_seed": k}``, the single env's option) cannot be requested."""
    venv = make_sb3("GMSuite/CoinRun-v0", "test", n=3)
    venv.set_options([{"level_seed": k} for k in (10, 20, 30)])
    venv.reset()
    assert [info["level_seed"] for info in venv.reset_infos] == [10, 20, 30]
