"""Normalised scores on hand-made rollouts whose returns are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.levels import References
from evaluation.rollouts import Rollouts
from evaluation.scores import normalised_score, normalised_scores, success_rates

SEEDS = np.array([11, 12, 13, 14])


def fake(
    returns: dict[str, list[float]], policy: str = "agent", seeds=SEEDS, distribution="test"
) -> Rollouts:
    n = len(seeds)
    return Rollouts(
        env_id="GMSuite/CoinRun-v0",
        distribution=distribution,
        params={},
        policy=policy,
        level_seeds=np.asarray(seeds),
        returns={k: np.asarray(v, dtype=float) for k, v in returns.items()},
        lengths=np.ones(n, dtype=np.int64),
        terminated=np.ones(n, dtype=bool),
        states=np.zeros((1, n, 2), dtype=np.int64),
        actions=np.zeros((1, n), dtype=np.int64),
        alive=np.ones((1, n), dtype=bool),
    )


def test_score_formula_on_known_values():
    assert normalised_score(6.0, 2.0, 10.0) == (0.5, False)
    assert normalised_score(2.0, 2.0, 10.0) == (0.0, False)
    assert normalised_score(10.0, 2.0, 10.0) == (1.0, False)
    assert normalised_score(0.0, 2.0, 10.0) == (-0.25, False)


def test_zero_denominator_gives_nan_and_a_flag_not_an_error():
    score, degenerate = normalised_score(3.0, 5.0, 5.0)
    assert math.isnan(score) and degenerate
    score, degenerate = normalised_score(3.0, 6.0, 5.0)  # "optimal" worse than random
    assert math.isnan(score) and degenerate


def test_table_from_rollouts_on_the_same_levels():
    # J_spec: agent 5, random 2.5, optimal 10  ->  (5 - 2.5) / 7.5 = 1/3
    # J_proxy: agent 10, random 0, optimal 10  ->  1;  a reward opt can't beat random on -> NaN
    agent = fake({"specified": [10, 0, 10, 0], "proxy": [10, 10, 10, 10], "flat": [0, 0, 0, 0]})
    random = fake({"specified": [10, 0, 0, 0], "proxy": [0, 0, 0, 0], "flat": [0, 0, 0, 0]}, "random")
    optimal = {
        "specified": fake({"specified": [10] * 4, "proxy": [0] * 4, "flat": [0] * 4}, "opt_spec"),
        "proxy": fake({"specified": [0] * 4, "proxy": [10] * 4, "flat": [0] * 4}, "opt_proxy"),
        "flat": fake({"specified": [0] * 4, "proxy": [0] * 4, "flat": [0] * 4}, "opt_flat"),
    }
    table = normalised_scores(agent, References(random, optimal))
    assert table.returns == {"specified": 5.0, "proxy": 10.0, "flat": 0.0}
    assert table.random_returns["specified"] == 2.5
    assert table.scores["specified"] == pytest.approx(1 / 3)
    assert table.scores["proxy"] == 1.0
    assert math.isnan(table.scores["flat"]) and table.degenerate == {
        "specified": False,
        "proxy": False,
        "flat": True,
    }
    assert table.success == {"specified": 0.5, "proxy": 1.0, "flat": 0.0}
    assert table.random_success["specified"] == 0.25
    assert table.optimal_success["proxy"] == 1.0


def test_references_on_other_levels_are_rejected():
    agent = fake({"specified": [1, 1, 1, 1]})
    other = fake({"specified": [0, 0, 0, 0]}, seeds=SEEDS + 1)
    with pytest.raises(ValueError, match="other levels"):
        normalised_scores(agent, References(other, {"specified": agent}))
    with pytest.raises(ValueError, match="train"):
        normalised_scores(agent, References(fake({"specified": [0] * 4}, distribution="train"), {}))


def test_missing_optimal_reference_names_the_reward():
    agent = fake({"specified": [1, 1, 1, 1], "proxy": [0, 0, 0, 0]})
    with pytest.raises(ValueError, match="'proxy'"):
        normalised_scores(agent, References(agent, {"specified": agent}))


def test_success_rate_counts_positive_returns():
    assert success_rates(fake({"r": [0, 0.5, -1, 3]})) == {"r": 0.5}
