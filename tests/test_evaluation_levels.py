"""Level bank and rollouts: per-params solver keys, reference caching, frozen finished rows."""

from __future__ import annotations

import numpy as np
import pytest

import envs
from agents.policies import PlannerPolicy, UniformRandomPolicy
from evaluation.levels import LevelBank, LevelSolver, distribution_level_seeds
from evaluation.rollouts import rollout

COINRUN = "GMSuite/CoinRun-v0"


@pytest.fixture(autouse=True)
def need_coinrun():
    if COINRUN not in envs.ENVIRONMENTS:
        pytest.skip("CoinRun is not registered")


def test_level_seeds_differ_across_distributions_and_are_reproducible():
    a = distribution_level_seeds(50, 3, "train")
    b = distribution_level_seeds(50, 3, "test")
    assert not set(a.tolist()) & set(b.tolist())
    np.testing.assert_array_equal(a, distribution_level_seeds(50, 3, "train"))
    assert (a >= 0).all() and a.dtype == np.int64
    with pytest.raises(ValueError, match="n_episodes"):
        distribution_level_seeds(0, 3, "train")


def test_one_seed_is_a_different_level_under_other_params():
    """Why solvers key by params: a seed-keyed cache would plan test levels with train models."""
    seeds = np.array([7])
    train = envs.core_class(COINRUN)(1, "train")
    test = envs.core_class(COINRUN)(1, "test")
    train.reset_levels([0], seeds)
    test.reset_levels([0], seeds)
    assert not np.array_equal(train.objects["coin"], test.objects["coin"])
    solver = LevelSolver()
    assert not np.array_equal(solver.level(train, 0).q["specified"], solver.level(test, 0).q["specified"])


def test_references_are_cached_and_on_the_same_levels():
    bank = LevelBank()
    seeds = distribution_level_seeds(10, 0, "test")
    refs = bank.references(COINRUN, "test", {}, seeds)
    assert bank.references(COINRUN, "test", {}, seeds) is refs
    assert bank.references(COINRUN, "test", {"coin_random_prob": 1.0}, seeds) is refs  # same resolved params
    assert bank.references(COINRUN, "test", {"coin_random_prob": 0.5}, seeds) is not refs
    np.testing.assert_array_equal(refs.random.level_seeds, seeds)
    assert set(refs.optimal) == set(envs.core_class(COINRUN).reward_names)
    for name, r in refs.optimal.items():
        assert r.returns[name].mean() >= refs.random.returns[name].mean()


def test_finished_rows_are_frozen_and_exact_policies_never_leave_the_model():
    seeds = distribution_level_seeds(40, 0, "test")
    bank = LevelBank()
    levels = bank.levels(COINRUN, "test", envs.core_class(COINRUN).resolve_params("test", {}), seeds)
    for policy in (
        UniformRandomPolicy(0),
        PlannerPolicy("reach_right_end", beta=1.0, solver=LevelSolver()),
    ):
        r = rollout(policy, COINRUN, "test", level_seeds=seeds)
        for e, lv in enumerate(levels):
            lv.index_of(r.states[:, e])  # raises if any state (alive or not) is outside the model
            dead = ~r.alive[:, e]
            if dead.any():
                assert (r.states[dead, e] == r.states[dead, e][0]).all()


@pytest.mark.parametrize(
    ("env_id", "distribution", "params"),
    [
        ("GMSuite/Maze-v0", "test", {"size": 9}),
        ("GMSuite/CoinRun-v0", "train", {}),
        ("GMSuite/KeysChests-v0", "test", {}),  # the step limit binds for collect_keys
        ("GMSuite/LavaShift-v0", "test", {}),
    ],
)
def test_finite_horizon_values_stop_at_the_fixed_point_with_every_sweeps_array(env_id, distribution, params):
    """The early stop fills earlier steps with the fixed point: the same array as sweeping to t = 0."""
    from agents.planning import enumerate_level, finite_horizon_values

    core = envs.task(env_id)(4, distribution, **params)
    core.reset_levels(np.arange(4), distribution_level_seeds(4, 0, distribution).astype(np.uint64))
    for row in range(4):
        single = core.replicate(row, 1)
        single.reset_levels(np.array([0]), core.level_seed[row : row + 1])
        model = enumerate_level(single)
        rewards = np.stack([model.rewards[n] for n in model.rewards])
        horizon = int(core.max_steps)
        every_sweep = np.zeros((len(rewards), horizon + 1, model.num_states))
        for t in range(horizon - 1, -1, -1):
            every_sweep[:, t] = (rewards + ~model.terminal * every_sweep[:, t + 1][:, model.next_state]).max(
                axis=2
            )
        np.testing.assert_array_equal(finite_horizon_values(model, rewards, horizon), every_sweep)
