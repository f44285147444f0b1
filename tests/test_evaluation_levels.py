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
def test_the_banks_solver_gives_the_planning_modules_levels_bit_for_bit(env_id, distribution, params):
    from agents.planning import solve_level
    from evaluation.levels import solve_level_fast

    core = envs.task(env_id)(8, distribution, **params)
    core.reset_levels(np.arange(8), distribution_level_seeds(8, 0, distribution).astype(np.uint64))
    for row in range(8):
        fast, plain = solve_level_fast(core, row, 0.99), solve_level(core, row, 0.99)
        assert fast.horizon == plain.horizon and fast.optimum == plain.optimum
        assert fast.horizon_values.keys() == plain.horizon_values.keys()
        for name, values in plain.horizon_values.items():
            np.testing.assert_array_equal(fast.horizon_values[name], values)
        for name, q in plain.q.items():
            np.testing.assert_array_equal(fast.q[name], q)
        np.testing.assert_array_equal(fast.model.states, plain.model.states)
        np.testing.assert_array_equal(fast.codes, plain.codes)


def test_finite_horizon_values_stop_at_the_fixed_point_with_the_same_array():
    from agents.planning import finite_horizon_values as plain
    from evaluation.levels import finite_horizon_values as fast

    bank = LevelBank()
    seeds = distribution_level_seeds(3, 1, "test")
    for lv in bank.levels("GMSuite/Maze-v0", "test", {"size": 9}, seeds):
        rewards = np.stack([lv.model.rewards[n] for n in lv.model.rewards])
        np.testing.assert_array_equal(fast(lv.model, rewards, 324), plain(lv.model, rewards, 324))
