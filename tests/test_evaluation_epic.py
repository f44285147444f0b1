"""Tabular EPIC: hand-computed values and the invariances that define it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import envs
from agents.policies import PlannerPolicy, UniformRandomPolicy
from evaluation.epic import (
    LevelCoverage,
    canonicalize,
    coverage,
    declared_reward_matrices,
    epic_distances,
    pearson_distance,
)
from evaluation.levels import LevelBank, ParamsKeyedSolver, distribution_level_seeds
from evaluation.rollouts import rollout

GAMMA = 0.9


def tiny_coverage(n: int, p: np.ndarray, source, target) -> LevelCoverage:
    source, target = np.asarray(source), np.asarray(target)
    return LevelCoverage(None, np.arange(n), p, source, target, np.full(len(source), 1.0 / len(source)))


def distance(r_a, r_b, cov, gamma=GAMMA) -> float:
    sources = [lambda c: {"a": r_a}, lambda c: {"b": r_b}]
    return epic_distances([cov], sources, gamma)[("a", "b")]


def test_canonical_form_hand_computed():
    # Two states, D_S uniform, gamma 0.5, reward 1 for x0 -> x1:
    # m = R p = (0.5, 0), c = p.m = 0.25, C[i, j] = R[i, j] + 0.5 m[j] - m[i] - 0.5 c.
    r = np.array([[0.0, 1.0], [0.0, 0.0]])
    c = canonicalize(r, np.array([0.5, 0.5]), 0.5)
    np.testing.assert_allclose(c, [[-0.375, 0.375], [0.125, -0.125]])


def test_successor_only_states_do_not_enter_the_expectations():
    r = np.array([[0.0, 1.0, 5.0], [0.0, 0.0, 7.0], [3.0, 3.0, 3.0]])
    c = canonicalize(r, np.array([0.5, 0.5, 0.0]), 0.5)
    np.testing.assert_allclose(c[:2, :2], [[-0.375, 0.375], [0.125, -0.125]])
    assert c[0, 2] == pytest.approx(5.0 + 0.5 * 3.0 - 0.5 - 0.125)


def test_pearson_distance_hand_computed():
    # corr([1,0,0,0], [0,1,0,0]) = (-1/16) / (3/16) = -1/3  ->  sqrt((1 + 1/3) / 2)
    assert pearson_distance([1, 0, 0, 0], [0, 1, 0, 0]) == pytest.approx(math.sqrt(2 / 3))
    assert pearson_distance([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0)
    assert pearson_distance([1, 2, 3], [3, 2, 1]) == pytest.approx(1.0)
    # weights: the third point counted twice -> the same as repeating it
    assert pearson_distance([0, 1, 3], [1, 0, 2], [1, 1, 2]) == pytest.approx(
        pearson_distance([0, 1, 3, 3], [1, 0, 2, 2])
    )
    assert math.isnan(pearson_distance([1, 1, 1], [0, 1, 2]))  # a constant reward has no direction


def test_epic_of_a_two_state_example_by_hand():
    # Transitions (0->1) and (1->0); R_a rewards 0->1, R_b rewards 1->0.
    # Canonical forms (from the hand computation above, and its mirror):
    # C_a = (0.375, 0.125), C_b = (0.125, 0.375) on the two transitions -> rho = -1 -> distance 1.
    cov = tiny_coverage(2, np.array([0.5, 0.5]), [0, 1], [1, 0])
    r_a = np.array([[0.0, 1.0], [0.0, 0.0]])
    assert distance(r_a, r_a.T, cov, gamma=0.5) == pytest.approx(1.0)


def random_case(seed: int, n: int = 6):
    gen = np.random.default_rng(seed)
    r = gen.normal(size=(n, n))
    p = np.r_[gen.dirichlet(np.ones(n - 2)), 0.0, 0.0]  # two successor-only states
    source = np.repeat(np.arange(n - 2), 3)
    target = gen.integers(0, n, size=len(source))
    return r, tiny_coverage(n, p, source, target), gen


@pytest.mark.parametrize("seed", range(5))
def test_invariant_to_potential_shaping_and_positive_scaling(seed):
    r, cov, gen = random_case(seed)
    phi = gen.normal(size=len(r)) * 10
    shaped = r + GAMMA * phi[None, :] - phi[:, None]
    assert distance(r, shaped, cov) == pytest.approx(0.0, abs=1e-6)
    assert distance(r, 3.7 * r, cov) == pytest.approx(0.0, abs=1e-6)
    assert distance(r, 0.01 * shaped + 5.0, cov) == pytest.approx(0.0, abs=1e-6)
    assert distance(r, -r, cov) == pytest.approx(1.0)
    assert distance(r, -2.0 * shaped, cov) == pytest.approx(1.0)
    other = gen.normal(size=r.shape)
    assert 0.05 < distance(r, other, cov) < 0.95


@settings(max_examples=40, deadline=None)
@given(
    r=arrays(np.float64, (4, 4), elements=st.floats(-10, 10)),
    phi=arrays(np.float64, 4, elements=st.floats(-100, 100)),
    scale=st.floats(0.01, 100),
)
def test_shaping_and_scaling_property(r, phi, scale):
    # a reward whose values differ by ~1e-7 is swamped by float error once shaped with |phi| ~ 100
    assume(np.ptp(r) > 1e-3)
    cov = tiny_coverage(4, np.full(4, 0.25), [0, 0, 1, 2, 3, 3], [1, 2, 2, 3, 0, 1])
    base = distance(r, r, cov)
    if math.isnan(base):  # r is constant on the coverage after canonicalisation
        return
    shaped = scale * (r + GAMMA * phi[None, :] - phi[:, None])
    assert distance(r, shaped, cov) == pytest.approx(0.0, abs=1e-5)


def test_declared_rewards_on_a_real_coverage():
    bank, env_id = LevelBank(), "GMSuite/CoinRun-v0"
    if env_id not in envs.ENVIRONMENTS:
        pytest.skip("CoinRun is not registered")
    seeds = distribution_level_seeds(20, 0, "test")
    params = envs.core_class(env_id).resolve_params("test", {})
    levels = bank.levels(env_id, "test", params, seeds)
    refs = bank.references(env_id, "test", params, seeds)
    agent = rollout(
        PlannerPolicy("specified", solver=ParamsKeyedSolver()), env_id, "test", params, level_seeds=seeds
    )
    cov = coverage([agent, refs.random, *refs.optimal.values()], levels)
    assert math.fsum(w for c in cov for w in c.weights) == pytest.approx(1.0)
    for c in cov:
        assert c.state_weights.sum() == pytest.approx(1.0)
        n_cov = int((c.state_weights > 0).sum())
        assert len(c.source) == n_cov * 4 and c.source.max() < n_cov

    def shaped_specified(c):
        phi = c.state_vectors[:, 1].astype(float) * 3.0  # a potential: 3 x column
        return {
            "shaped": 2.0 * declared_reward_matrices(c)["specified"] + GAMMA * phi[None, :] - phi[:, None]
        }

    d = epic_distances(cov, [declared_reward_matrices, shaped_specified], GAMMA)
    assert d[("intended", "specified")] == pytest.approx(0.0, abs=1e-9)
    assert d[("specified", "shaped")] == pytest.approx(0.0, abs=1e-6)
    assert 0.5 < d[("specified", "reach_right_end")] < 0.9  # two goal rewards that rarely coincide
    with pytest.raises(ValueError, match="'nope'"):
        epic_distances(cov, [declared_reward_matrices], GAMMA, pairs=[("specified", "nope")])


def test_coverage_includes_states_reached_by_random_rollouts():
    bank, env_id = LevelBank(), "GMSuite/Maze-v0"
    if env_id not in envs.ENVIRONMENTS:
        pytest.skip("Maze is not registered")
    seeds = distribution_level_seeds(3, 1, "test")
    params = envs.core_class(env_id).resolve_params("test", {})
    levels = bank.levels(env_id, "test", params, seeds)
    r = rollout(UniformRandomPolicy(0), env_id, "test", params, level_seeds=seeds)
    cov = coverage([r], levels)
    for e, c in enumerate(cov):
        visited = {tuple(s) for s in r.states[r.alive[:, e], e].tolist()}
        covered = {tuple(s) for s in c.state_vectors[c.state_weights > 0].tolist()}
        assert visited <= covered


def test_stop_tables_cut_each_episode_after_its_first_payment():
    """Coverage with a stop table keeps each episode up to and including its first paying step; the
    state that step enters is a successor only (its steps out are after the goal)."""
    bank, env_id = LevelBank(), "GMSuite/Maze-v0"
    seeds = distribution_level_seeds(6, 2, "test")
    params = envs.core_class(env_id).resolve_params("test", {})
    levels = bank.levels(env_id, "test", params, seeds)
    r = rollout(UniformRandomPolicy(3), env_id, "test", params, level_seeds=seeds)
    # pays on entering the cell the random walk stands on at step 3 of each episode
    tables = []
    for e, level in enumerate(levels):
        target = level.index_of(r.states[3:4, e])[0]
        tables.append((level.model.next_state == target).astype(float))
    cut = coverage([r], levels, stop_tables=tables)
    never = coverage([r], levels, stop_tables=[np.zeros_like(t) for t in tables])
    full = coverage([r], levels)
    for e, (c, n, f) in enumerate(zip(cut, never, full, strict=True)):
        assert np.array_equal(n.states, f.states) and np.array_equal(n.source, f.source)
        idx = levels[e].index_of(r.states[r.alive[:, e], e])
        taken = r.actions[r.alive[:, e], e]
        first = int(np.flatnonzero(tables[e][idx, taken] > 0)[0])
        assert first <= 2  # the walk enters the step-3 cell by step 2 at the latest
        kept = set(idx[: first + 1].tolist()) | set(
            levels[e].model.next_state[idx[:first], taken[:first]].tolist()
        )
        assert set(c.states[c.state_weights > 0].tolist()) == kept
        assert levels[e].model.next_state[idx[first], taken[first]] in set(c.states.tolist())
