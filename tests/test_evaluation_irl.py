"""MaxEnt IRL: features, the soft-optimal policy, the exact gradient, and a recovered goal."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import approx_fprime
from scipy.special import logsumexp

import envs
from agents.policies import PlannerPolicy
from evaluation.irl import FeatureMap, IRLProblem, maxent_irl
from evaluation.levels import LevelBank, ParamsKeyedSolver, distribution_level_seeds
from evaluation.rollouts import rollout

ENV_ID = "GMSuite/Maze-v0"


@pytest.fixture(scope="module")
def maze():
    if ENV_ID not in envs.ENVIRONMENTS:
        pytest.skip("Maze is not registered")
    params = envs.core_class(ENV_ID).resolve_params("test", {"size": 7})
    seeds = distribution_level_seeds(12, 0, "test")
    levels = LevelBank().levels(ENV_ID, "test", params, seeds)
    return params, seeds, levels


def demos(maze, reward: str, beta: float):
    params, seeds, levels = maze
    agent = PlannerPolicy(reward, beta=beta, seed=0, solver=ParamsKeyedSolver())
    return rollout(agent, ENV_ID, "test", params, level_seeds=seeds), levels


def test_features_have_no_constant_direction(maze):
    """No weights give a constant per-step reward (the living-penalty loophole is closed)."""
    _, _, levels = maze
    fm = FeatureMap.for_levels(levels)
    rows = []
    for lv in levels:
        m = lv.model
        rows.append(fm(lv.core, np.repeat(m.states, 4, axis=0), m.states[m.next_state.ravel()]))
    phi = np.concatenate(rows)
    assert phi.shape[1] == len(fm.names)
    ones = np.ones(len(phi))
    fit = np.linalg.lstsq(phi, ones, rcond=None)[0]
    assert np.linalg.norm(phi @ fit - ones) > 0.5 * np.sqrt(len(phi))
    assert {"on_cheese", "on_wall", "blocked", "set_visited_top_right"} <= set(fm.names)


def test_soft_policy_is_the_soft_bellman_fixed_point(maze):
    r, levels = demos(maze, "specified", 3.0)
    problem = IRLProblem(r, levels, gamma=0.9, l2=0.0)
    m = problem.models
    reward = m.phi @ np.random.default_rng(0).normal(size=problem.n_features)
    pi, _ = m.soft_policy(reward, problem.pi, tol=1e-10)
    rows = np.arange(m.shape[0])[:, None, None]
    # Plain soft value iteration: V = log mean_a exp Q (entropy relative to uniform),
    # Q = r + gamma (1 - done) V(next); its softmax must equal soft policy iteration's result.
    q_true = reward.copy()
    for _ in range(2000):
        v = logsumexp(q_true, axis=2) - np.log(m.shape[2])
        q_true = reward + m.cont * v[rows, m.next]
    np.testing.assert_allclose(pi, np.exp(q_true - logsumexp(q_true, axis=2, keepdims=True)), atol=1e-6)


def test_gradient_matches_finite_differences(maze):
    r, levels = demos(maze, "reach_top_right", 2.0)
    problem = IRLProblem(r, levels[:6], gamma=0.95, l2=1e-3)
    w = np.random.default_rng(1).normal(scale=0.5, size=problem.n_features)
    value, grad = problem.value_and_grad(w)
    numeric = approx_fprime(w, lambda x: problem.value_and_grad(x)[0], 1e-6)
    np.testing.assert_allclose(grad, numeric, atol=1e-5)


def test_learned_reward_puts_its_weight_on_the_demonstrated_goal(maze):
    r, levels = demos(maze, "reach_top_right", 300.0)
    learned = maxent_irl(r, levels)
    top = dict(learned.top_features(3))
    assert "set_visited_top_right" in top and top["set_visited_top_right"] > 0
    assert learned.mean_log_likelihood > -np.log(4)  # better than uniform
    lv = levels[0]
    m = lv.model
    s, s2 = m.states[:5], m.states[m.next_state[:5, 0]]
    np.testing.assert_allclose(learned.rewards(lv, s, s2), learned.features(lv.core, s, s2) @ learned.weights)


def test_bad_arguments(maze):
    r, levels = demos(maze, "specified", 3.0)
    with pytest.raises(ValueError, match="l2"):
        maxent_irl(r, levels, l2=-1.0)
    with pytest.raises(ValueError, match="levels"):
        maxent_irl(r, levels[:3])
