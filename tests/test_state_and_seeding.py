"""Exact state (get_state / set_state) and reproducible seeding."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from envs import rng
from tests.conftest import ENV_IDS, assert_same_level, level_of, make


def _roll(env, actions):
    """Outputs of stepping ``actions`` until the episode ends (inclusive)."""
    out = []
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(int(a))
        out.append((obs.copy(), reward, terminated, truncated, info["rewards"]))
        if terminated or truncated:
            break
    return out


def _assert_same_rollout(a, b):
    assert len(a) == len(b)
    for (o1, r1, t1, tr1, i1), (o2, r2, t2, tr2, i2) in zip(a, b, strict=True):
        np.testing.assert_array_equal(o1, o2)
        assert (r1, t1, tr1, i1) == (r2, t2, tr2, i2)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_state_is_hashable_and_tracks_the_agent(env_id):
    env = make(env_id).unwrapped
    env.reset(seed=0)
    state = env.get_state()
    hash(state)
    assert isinstance(state, tuple) and all(type(v) is int for v in state)
    assert state[:2] == tuple(int(v) for v in env.core.agent[0])
    assert len(state) == env.core.state_dim
    assert state == env.get_state()  # reading it has no side effect


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("seed", range(6))
def test_set_state_roundtrip_reproduces_trajectory(env_id, seed):
    env = make(env_id, max_steps=1000).unwrapped
    env.reset(seed=seed)
    rand = np.random.default_rng(seed)
    for _ in range(int(rand.integers(0, 15))):  # wander a little, staying in the episode
        _, _, terminated, truncated, _ = env.step(int(rand.integers(4)))
        if terminated or truncated:
            env.reset()
    saved = env.get_state()
    actions = rand.integers(4, size=40)
    first = _roll(env, actions)
    env.set_state(saved)
    assert env.get_state() == saved
    second = _roll(env, actions)
    _assert_same_rollout(first, second)


def test_maze_visited_flag_is_part_of_state():
    """``reach_top_right`` pays once; set_state must restore whether it was paid."""
    env = make("GMSuite/Maze-v0", size=5, distribution="test").unwrapped
    for level_seed in range(50):
        env.reset(options={"level_seed": level_seed})
        corner = (1, env.core.width - 2)
        if tuple(env.core.objects["cheese"][0]) != corner:
            break
    below = (corner[0] + 1, corner[1])
    left = (corner[0], corner[1] - 1)
    neighbour, into = (below, 0) if env.core.cells[0][below] == 0 else (left, 3)
    assert env.core.cells[0][neighbour] == 0
    if tuple(env.core.objects["cheese"][0]) == neighbour:
        pytest.skip("cheese next to the corner on this level")
    env.set_state((*neighbour, 0))
    *_, info = env.step(into)
    assert info["rewards"]["reach_top_right"] == 10.0
    assert env.get_state() == (*corner, 1)
    env.set_state((*neighbour, 1))
    *_, info = env.step(into)
    assert info["rewards"]["reach_top_right"] == 0.0
    env.set_state((*neighbour, 0))
    *_, info = env.step(into)
    assert info["rewards"]["reach_top_right"] == 10.0


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_set_state_keeps_the_episode_clock(env_id):
    """The exact state is the level's dynamic state, not the time: ``set_state``
    moves the agent but leaves the step counter running, so a restored state
    mid-episode cannot extend the episode past ``max_steps``."""
    env = make(env_id, max_steps=20, **({"hazard_prob": 0.0} if "CoinRun" in env_id else {})).unwrapped
    env.reset(seed=0)
    start = env.get_state()
    for a in (0, 1) * 5:  # up/down at the start: never terminal on these levels
        env.step(a)
    env.step(0)
    env.set_state(start)
    assert env.get_state() == start
    rest = _roll(env, [0, 1] * 5)
    assert len(rest) == 9 and rest[-1][3], "truncated at step 20 of the episode, not 20 steps after set_state"
    assert not any(step[2] for step in rest)


# ----------------------------------------------------------------- seeding
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_level_seed_option_gives_the_same_level(env_id):
    env = make(env_id, distribution="test").unwrapped
    levels = []
    for seed in (0, 1, 99):
        env.reset(seed=seed)  # different histories
        env.step(0)
        obs, info = env.reset(options={"level_seed": 12345})
        assert info["level_seed"] == 12345
        levels.append((obs, level_of(env.core)))
    for obs, level in levels[1:]:
        np.testing.assert_array_equal(obs, levels[0][0])
        assert_same_level(level, levels[0][1])
    # different level seeds give different levels (not all the same)
    distinct = set()
    for k in range(10):
        obs, _ = env.reset(options={"level_seed": k})
        distinct.add(obs.tobytes())
    assert len(distinct) >= 5


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_seed_sequence_is_reproducible(env_id):
    def level_sequence(seed):
        env = make(env_id, distribution="test")
        out = [env.reset(seed=seed)]
        out += [env.reset() for _ in range(4)]
        return [(o.tobytes(), i["level_seed"]) for o, i in out]

    a, b = level_sequence(7), level_sequence(7)
    assert a == b
    assert len({s for _, s in a}) == 5, "each episode should get a new level"
    assert level_sequence(8) != a
    # the documented derivation of level seeds
    expected = rng.level_seeds(np.full(5, 7), np.arange(5))
    assert [s for _, s in a] == [int(s) for s in expected]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reported_level_seed_replays_the_level(env_id):
    env = make(env_id, distribution="test").unwrapped
    env.reset(seed=3)
    env.reset()
    obs, info = env.reset()
    level = level_of(env.core)
    other = make(env_id, distribution="test").unwrapped
    obs2, _ = other.reset(options={"level_seed": info["level_seed"]})
    np.testing.assert_array_equal(obs, obs2)
    assert_same_level(level, level_of(other.core))
    assert 0 <= info["level_seed"] < 2**63


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_vector_level_seeds_option_matches_single(env_id):
    vec = gym.make_vec(env_id, num_envs=3, distribution="test", vectorization_mode="vector_entry_point")
    obs, info = vec.reset(options={"level_seeds": [5, 6, 7]})
    assert [int(s) for s in info["level_seed"]] == [5, 6, 7]
    for i, k in enumerate((5, 6, 7)):
        single, _ = make(env_id, distribution="test").reset(options={"level_seed": k})
        np.testing.assert_array_equal(obs[i], single)
