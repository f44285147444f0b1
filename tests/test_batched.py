"""The batched vector env steps exactly like independent single envs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs.core import GridCore
from tests.conftest import ENV_DISTS, SHORT_EPISODES, assert_same_level, env_dist_id, level_of, make

NUM_ENVS = 8
STEPS = 300


@pytest.mark.parametrize("env_dist", ENV_DISTS, ids=env_dist_id)
@pytest.mark.parametrize("seed", [0, 2**40])
def test_vector_env_equals_single_envs(env_dist, seed):
    env_id, dist = env_dist
    kwargs = SHORT_EPISODES.get(env_id, {})
    vec = gym.make_vec(
        env_id, num_envs=NUM_ENVS, vectorization_mode="vector_entry_point", distribution=dist, **kwargs
    )
    assert vec.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    singles = [make(env_id, dist, **kwargs) for _ in range(NUM_ENVS)]
    names = singles[0].unwrapped.reward_names

    vobs, vinfo = vec.reset(seed=seed)
    assert vobs.shape == (NUM_ENVS, *singles[0].observation_space.shape)
    assert vobs.dtype == np.uint8
    for i, env in enumerate(singles):
        obs, info = env.reset(seed=seed + i)
        np.testing.assert_array_equal(vobs[i], obs)
        assert int(vinfo["level_seed"][i]) == info["level_seed"]

    rand = np.random.default_rng(seed % 1000)
    episodes = np.zeros(NUM_ENVS, dtype=int)
    for _ in range(STEPS):
        actions = rand.integers(4, size=NUM_ENVS)
        vobs, vrew, vterm, vtrunc, vinfo = vec.step(actions)
        assert set(vinfo["rewards"]) == set(names)
        final_mask = vinfo.get("_final_obs", np.zeros(NUM_ENVS, dtype=bool))
        for i, env in enumerate(singles):
            obs, reward, terminated, truncated, info = env.step(int(actions[i]))
            assert (bool(vterm[i]), bool(vtrunc[i])) == (terminated, truncated)
            assert float(vrew[i]) == reward
            for name in names:
                assert float(vinfo["rewards"][name][i]) == info["rewards"][name], name
            assert bool(final_mask[i]) == (terminated or truncated)
            if terminated or truncated:
                np.testing.assert_array_equal(vinfo["final_obs"][i], obs)
                obs, _ = env.reset()
                episodes[i] += 1
            np.testing.assert_array_equal(vobs[i], obs)
    assert episodes.min() >= 2, f"too few episodes to exercise autoreset: {episodes}"


@pytest.mark.parametrize("env_id", sorted(envs.ENVIRONMENTS))
def test_level_independent_of_batch_composition(env_id):
    """A level is a pure function of its seed, whichever rows reset beside it."""
    core_cls: type[GridCore] = envs.core_class(env_id)
    seeds = np.array([3, 2**62 + 5, 77, 0], dtype=np.uint64)
    batch = core_cls(len(seeds), "test")
    batch.reset_levels(np.arange(len(seeds)), seeds)
    # reset rows one at a time in a different order, in a bigger batch
    shuffled = core_cls(6, "test")
    shuffled.reset_levels(np.arange(6), np.arange(100, 106))
    for row, k in zip((5, 0, 3, 1), range(4), strict=True):
        shuffled.reset_levels(np.array([row]), seeds[k : k + 1])
    for k, row in enumerate((5, 0, 3, 1)):
        single = core_cls(1, "test")
        single.reset_levels(np.array([0]), seeds[k : k + 1])
        assert_same_level(level_of(batch, k), level_of(single))
        assert_same_level(level_of(shuffled, row), level_of(single))
        np.testing.assert_array_equal(batch.observe()[k], single.observe()[0])
    # the untouched rows keep their levels
    untouched = core_cls(1, "test")
    untouched.reset_levels(np.array([0]), np.array([102]))
    assert_same_level(level_of(shuffled, 2), level_of(untouched))
