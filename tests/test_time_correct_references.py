"""The reference optimum is the optimum of the scored quantity: undiscounted return within the step limit."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

import envs
from agents.planning import (
    LevelSolver,
    TabularModel,
    finite_horizon_values,
    greedy_actions,
    stationary_return,
    value_iteration,
)
from agents.policies import PlannerPolicy
from evaluation.judge import judge
from evaluation.levels import distribution_level_seeds
from evaluation.rollouts import rollout

# The exact path's planners cannot take these: each is judged on the sampled path (tests/test_sampled_path.py).
BEYOND_EXACT_PATH = {
    "GMSuite/FrozenShift-v0": "stochastic (slippery FrozenLake)",
    "GMSuite/PointMass-v0": "continuous, without state access",
    "GMSuite/KeysChestsMany-v0": "test levels hold more than the exact path's 200,000 states",
}
SUITE = sorted(
    k
    for k in gymnasium.registry
    if k.startswith("GMSuite/") and "MiniGrid" not in k and k not in BEYOND_EXACT_PATH
)
MINIGRID = ["GMSuite/MiniGrid-DistShift-v0", "GMSuite/MiniGrid-LavaGap-v0"]


def chain(length: int = 5, small: float = 1.0, large: float = 10.0) -> TabularModel:
    """States ``0..length-1`` on a line: action 0 takes ``small`` and ends, action 1 steps right; the end pays ``large``."""
    n = length
    next_state = np.stack([np.arange(n), np.minimum(np.arange(n) + 1, n - 1)], axis=1)
    terminal = np.zeros((n, 2), dtype=bool)
    terminal[:, 0] = True
    reward = np.zeros((n, 2))
    reward[:, 0] = small
    reward[n - 2, 1] = large
    terminal[n - 2, 1] = True
    return TabularModel(
        states=np.arange(n)[:, None], next_state=next_state, terminal=terminal, rewards={"r": reward}
    )


def test_finite_horizon_optimum_is_exact_where_discounting_overreaches():
    model = chain()
    q = value_iteration(model, model.rewards["r"], gamma=0.99)
    plan = greedy_actions(q)
    assert plan[0] == 1  # discounted: 10 * 0.99**3 beats 1 now
    for horizon, optimum, stationary in [(3, 1.0, 0.0), (4, 10.0, 10.0), (1, 1.0, 0.0)]:
        values = finite_horizon_values(model, model.rewards["r"][None], horizon)[0]
        assert values[0, model.start] == optimum
        assert stationary_return(model, model.rewards["r"], plan, horizon) == stationary
        assert (values[horizon] == 0).all()


@pytest.mark.parametrize("env_id", SUITE + MINIGRID)
def test_optimal_planner_reaches_the_time_limited_optimum_on_every_level(env_id):
    """Per level, distribution and declared reward: the planner's return is the exact finite-horizon optimum."""
    task = envs.task(env_id)
    for distribution in task.distributions:
        seeds = distribution_level_seeds(20, 3, distribution)
        solver = LevelSolver()
        core = task(len(seeds), distribution)
        core.reset_levels(np.arange(len(seeds)), seeds.astype(np.uint64))
        levels = solver.row_levels(core)
        for reward in task.reward_names:
            played = rollout(
                PlannerPolicy(reward, solver=solver), env_id, distribution, {}, level_seeds=seeds
            )
            optimum = np.array([lv.optimum[reward] for lv in levels])
            np.testing.assert_allclose(played.returns[reward], optimum, rtol=0, atol=1e-9)


def test_keys_chests_limit_binds_and_the_planner_plans_in_time():
    """KeysChests' step limit (2 * size) binds for key collection: the discounted plan falls short there."""
    env_id = "GMSuite/KeysChests-v0"
    seeds = distribution_level_seeds(40, 1, "test")
    solver = LevelSolver()
    core = envs.task(env_id)(len(seeds), "test")
    core.reset_levels(np.arange(len(seeds)), seeds.astype(np.uint64))
    levels = solver.row_levels(core)
    bound = [lv for lv in levels if "collect_keys" in lv.horizon_values]
    assert bound, "expected levels where the discounted key plan runs out of time"
    for lv in bound:
        reward = lv.model.rewards["collect_keys"]
        stationary = stationary_return(lv.model, reward, greedy_actions(lv.q["collect_keys"]), lv.horizon)
        assert stationary < lv.optimum["collect_keys"]
    played = rollout(PlannerPolicy("collect_keys", solver=solver), env_id, "test", {}, level_seeds=seeds)
    np.testing.assert_allclose(played.returns["collect_keys"], [lv.optimum["collect_keys"] for lv in levels])


@pytest.mark.parametrize(
    ("env_id", "reward"), [("GMSuite/KeysChests-v0", "collect_keys"), ("GMSuite/CoinRun-v0", "specified")]
)
def test_judged_optimal_planner_scores_exactly_one(env_id, reward):
    """The judge's reference optimum is the levels' finite-horizon optimum, and the planner scores 1 against it."""
    judgements = judge(PlannerPolicy(reward), env_id, n_episodes=30, seed=1, progress=None)
    task = envs.task(env_id)
    for j in judgements:
        for distribution, table in j.scores.items():
            seeds = j.rollouts[distribution].level_seeds.astype(np.uint64)
            core = task(len(seeds), distribution, **j.rollouts[distribution].params)
            core.reset_levels(np.arange(len(seeds)), seeds)
            optimum = np.mean([lv.optimum[reward] for lv in LevelSolver().row_levels(core)])
            assert table.optimal_returns[reward] == pytest.approx(optimum, abs=1e-12)
            assert table.scores[reward] == pytest.approx(1.0, abs=1e-12)
