"""Boltzmann-rational candidate inference: the beta fit and the posterior."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import logsumexp, softmax

import envs
from agents.policies import PlannerPolicy
from evaluation.inference import NO_GOAL, candidate_rewards, fit_beta, fit_noisy_rational, infer_goal
from evaluation.levels import LevelBank, ParamsKeyedSolver, distribution_level_seeds
from evaluation.rollouts import rollout


def boltzmann_actions(q: np.ndarray, beta: float, seed: int) -> np.ndarray:
    p = softmax(beta * q, axis=1)
    u = np.random.default_rng(seed).random(len(q))[:, None]
    return np.minimum((p.cumsum(axis=1) < u).sum(axis=1), q.shape[1] - 1)


def direct_loglik(q, actions, beta) -> float:
    return float(np.sum(beta * q[np.arange(len(q)), actions] - logsumexp(beta * q, axis=1)))


@pytest.mark.parametrize("true_beta", [0.5, 3.0, 20.0])
def test_fit_recovers_the_generating_beta(true_beta):
    q = np.random.default_rng(0).normal(size=(20000, 4))
    actions = boltzmann_actions(q, true_beta, seed=1)
    beta, loglik = fit_beta(q, actions)
    assert beta == pytest.approx(true_beta, rel=0.1)
    assert loglik == pytest.approx(direct_loglik(q, actions, beta))
    # the maximum: no beta on a grid does better
    grid = np.linspace(0, 3 * true_beta, 61)
    assert loglik >= max(direct_loglik(q, actions, b) for b in grid) - 1e-6


def test_beta_is_in_reward_units():
    q = np.random.default_rng(2).normal(size=(5000, 4))
    actions = boltzmann_actions(q, 2.0, seed=3)
    b1, ll1 = fit_beta(q, actions)
    b10, ll10 = fit_beta(10 * q, actions)
    assert b10 == pytest.approx(b1 / 10, rel=1e-4) and ll10 == pytest.approx(ll1)


def test_edge_cases():
    q = np.random.default_rng(4).normal(size=(3000, 4))
    worst = q.argmin(axis=1)
    assert fit_beta(q, worst)[0] == 0.0  # anti-optimal: the bound beta = 0
    greedy = q.argmax(axis=1)
    beta, loglik = fit_beta(q, greedy)
    assert beta > 100 and loglik > -0.01 * len(q)  # deterministic optimal: near-certain per step
    flat = np.zeros((10, 4))
    assert fit_beta(flat, np.zeros(10, dtype=int)) == (0.0, -10 * math.log(4))
    assert fit_beta(np.zeros((0, 4)), np.zeros(0, dtype=int)) == (0.0, 0.0)


@pytest.fixture(scope="module")
def maze():
    env_id = "GMSuite/Maze-v0"
    if env_id not in envs.ENVIRONMENTS:
        pytest.skip("Maze is not registered")
    bank = LevelBank()
    seeds = distribution_level_seeds(30, 0, "test")
    params = envs.core_class(env_id).resolve_params("test", {})
    return env_id, params, seeds, bank.levels(env_id, "test", params, seeds)


def test_posterior_is_bic_penalised_softmax(maze):
    env_id, params, seeds, levels = maze
    agent = PlannerPolicy("reach_top_right", beta=300.0, solver=ParamsKeyedSolver())
    r = rollout(agent, env_id, "test", params, level_seeds=seeds)
    candidates = candidate_rewards(envs.core_class(env_id).reward_names, ["reach_top_right"], levels)
    assert candidates == ["specified", "reach_top_right"]  # intended is the same function here
    inf = infer_goal(r, levels, candidates)
    assert inf.n_steps == int(r.alive.sum())
    assert inf.log_likelihood[NO_GOAL] == pytest.approx(-inf.n_steps * math.log(4))
    penalty = 2 * 0.5 * math.log(inf.n_steps)  # beta and lapse
    names = candidates + [NO_GOAL]
    score = [inf.log_likelihood[h] - (penalty if h != NO_GOAL else 0) for h in names]
    np.testing.assert_allclose([inf.posterior[h] for h in names], softmax(score))
    assert inf.inferred_goal == "reach_top_right" and inf.posterior["reach_top_right"] > 0.99


@pytest.mark.parametrize(("true_beta", "true_lapse"), [(5.0, 0.0), (5.0, 0.1), (20.0, 0.3)])
def test_noisy_rational_fit_recovers_beta_and_lapse(true_beta, true_lapse):
    rng = np.random.default_rng(3)
    q = rng.normal(size=(20000, 4))
    actions = boltzmann_actions(q, true_beta, seed=4)
    lapsed = rng.random(len(q)) < true_lapse
    actions[lapsed] = rng.integers(0, 4, size=lapsed.sum())
    beta, lapse, loglik = fit_noisy_rational(q, actions)
    assert beta == pytest.approx(true_beta, rel=0.15) and lapse == pytest.approx(true_lapse, abs=0.03)
    p = (1 - lapse) * softmax(beta * q, axis=1)[np.arange(len(q)), actions] + lapse / 4
    assert loglik == pytest.approx(float(np.sum(np.log(p))))
    assert loglik >= fit_beta(q, actions)[1] - 1e-9  # never worse than the lapse-free fit


def test_a_few_contradicting_steps_do_not_erase_a_followed_goal():
    """A goal followed on 95% of steps, flouted by its worst action on 5%: lapse-free beta collapses."""
    rng = np.random.default_rng(5)
    q = rng.normal(size=(5000, 4))
    q[:, 0] += 3.0  # action 0 best by far
    q[:, 3] -= 20.0  # action 3 catastrophic for the goal
    actions = np.where(rng.random(len(q)) < 0.05, 3, 0)
    beta0, _ = fit_beta(q, actions)
    beta, lapse, _ = fit_noisy_rational(q, actions)
    assert beta0 < 0.3  # the lapse-free model explains the flouts by near-random choice
    # MLE lapse with a near-greedy softmax: 0.95 * 0.75 / (1 - 0.75 e) = 0.05 / e, e = 1/15
    assert beta > 2.0 and 0.05 < lapse < 0.12


def test_weakly_rational_agent_loses_to_no_goal_only_when_beta_buys_nothing(maze):
    env_id, params, seeds, levels = maze
    weak = rollout(
        PlannerPolicy("specified", beta=1e-6, solver=ParamsKeyedSolver()),
        env_id,
        "test",
        params,
        level_seeds=seeds,
    )
    inf = infer_goal(weak, levels, ["specified", "reach_top_right"])
    assert inf.inferred_goal == NO_GOAL


def test_unknown_reward_is_named(maze):
    env_id, params, seeds, levels = maze
    r = rollout(
        PlannerPolicy("specified", solver=ParamsKeyedSolver()), env_id, "test", params, level_seeds=seeds[:2]
    )
    with pytest.raises(ValueError, match="'reach_the_moon'"):
        infer_goal(r, levels[:2], ["specified", "reach_the_moon"])
    with pytest.raises(ValueError, match="levels"):
        infer_goal(r, levels, ["specified"])


def test_noisy_rational_fit_leaves_beta_zero_when_lapse_free_fit_is_stuck_there():
    """60% greedy, 40% the catastrophic action: lapse-free beta is 0, the goal is still found.

    MLE: lapse / 4 explains action 3 and (1 - lapse) + lapse / 4 action 0, so
    0.4 (1 - 0.75 e) = 0.45 e, e = 0.533; each step then beats uniform by ~0.28 nats.
    """
    rng = np.random.default_rng(6)
    q = rng.normal(size=(4000, 4))
    q[:, 0] += 3.0
    q[:, 3] -= 20.0
    actions = np.where(rng.random(len(q)) < 0.6, 0, 3)
    assert fit_beta(q, actions)[0] == 0.0
    beta, lapse, loglik = fit_noisy_rational(q, actions)
    assert beta > 1.0 and lapse == pytest.approx(0.533, abs=0.03)
    assert loglik > -len(q) * math.log(4) + 0.2 * len(q)
