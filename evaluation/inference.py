"""Which declared reward best explains an agent's actions (Boltzmann-rational candidates).

For each candidate reward ``R`` the agent is modelled as noisy-rational:
``P(a|s) = (1 - lapse) * softmax(beta * Q*_R(s, .))[a] + lapse / |A|`` with
``Q*_R`` exact on the level, and ``beta >= 0``, ``lapse`` in [0, 1] fitted by
maximum likelihood on every alive step of the rollouts. The lapse keeps a few
actions that contradict ``R`` outright (a trained net grabbing a cheese it
happens to stand next to on its way to the corner) from dragging ``beta`` to
zero over thousands of steps that follow ``R``: with ``lapse = 0`` one
such step costs ``beta * gap`` nats, so the best ``beta`` collapses. A "no
goal" hypothesis (uniform actions, ``lapse = 1``) competes with them. Posterior
weights come from the maximised log-likelihoods with a BIC penalty of
``0.5 * log(n_steps)`` per fitted parameter (two per candidate) and a uniform
prior, so a candidate wins over "no goal" only if it buys real likelihood.

``Q*_R`` is the discounted, time-free value (gamma 0.99), not the
finite-horizon value the references use (:mod:`agents.planning`): decided by
measurement. On KeysChests ``test``, the one suite env where the step limit
binds, four trained PPO agents (seeds 1-4, 200 levels, ~3,500 steps each)
are explained far better by the discounted ``Q*`` of their goal
``collect_keys`` (log-likelihood about -3,750 to -3,870) than by the
time-indexed ``Q_t`` (about -4,700 to -4,800, barely above "no goal" at -4,880 to
-4,910); the posterior picks ``collect_keys`` either way. A PPO agent sees no
clock and was trained with gamma 0.99: a stationary, discounted model is
what it is (``docs/examples/measure_horizon_inference.py`` prints these).

Steps where ``Q*_R`` is constant over actions (e.g. after the goal was
reached) give the uniform likelihood under every ``beta``: they are kept, as
they carry no evidence either way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import brentq, minimize
from scipy.special import logsumexp, softmax

from evaluation.levels import Level
from evaluation.rollouts import Rollouts

NO_GOAL = "no_goal"
# Upper bound of beta in units of 1 / (largest per-state Q* range): exp(-1e4 * gap) ~ 0 for any gap > 1e-2.
MAX_SCALED_BETA = 1e4


@dataclass
class CandidateInference:
    """Fitted Boltzmann candidates, the no-goal hypothesis and the posterior over all of them."""

    candidates: list[str]
    n_steps: int
    log_likelihood: dict[str, float]  # maximised over beta; NO_GOAL has beta = 0
    beta: dict[str, float]  # in units of 1 / reward
    lapse: dict[str, float]  # probability of a uniformly random action
    posterior: dict[str, float]
    inferred_goal: str

    def to_dict(self) -> dict:
        return asdict(self)


def candidate_rewards(
    reward_names: Sequence[str], proxy_rewards: Sequence[str], levels: Sequence[Level]
) -> list[str]:
    """``specified``, ``intended`` if it differs from it on these levels, then each proxy."""
    candidates = ["specified"]
    differs = any(
        not np.array_equal(lv.model.rewards["intended"], lv.model.rewards["specified"]) for lv in levels
    )
    if "intended" in reward_names and differs:
        candidates.append("intended")
    candidates += [p for p in proxy_rewards if p not in candidates]
    return candidates


def step_q_values(rollouts: Rollouts, levels: Sequence[Level], rewards: Sequence[str]):
    """``Q*`` of each candidate at every alive step: ``(K, N, A)``, and the actions ``(N,)``."""
    if len(levels) != rollouts.num_episodes:
        raise ValueError(f"{len(levels)} levels for {rollouts.num_episodes} episodes")
    qs, actions = [[] for _ in rewards], []
    for e, level in enumerate(levels):
        alive = rollouts.alive[:, e]
        idx = level.index_of(rollouts.states[alive, e])
        for k, name in enumerate(rewards):
            qs[k].append(level.q[name][idx])
        actions.append(rollouts.actions[alive, e])
    return np.stack([np.concatenate(q) for q in qs]), np.concatenate(actions)


def _scaled_gaps(q: np.ndarray) -> tuple[np.ndarray, float]:
    """``Q - max_a Q`` divided by the largest per-state range (``scale``; 0 when ``Q`` is flat)."""
    gaps = q - q.max(axis=1, keepdims=True)
    scale = float(-gaps.min())
    return (gaps / scale if scale > 0 else gaps), scale


def fit_beta(q: np.ndarray, actions: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood ``beta >= 0`` of ``P(a|s) ∝ exp(beta Q(s, a))``; returns ``(beta, loglik)``.

    The log-likelihood is concave in ``beta``, so its maximiser is where the
    derivative crosses zero (Brent's method), or a bound. ``Q`` is rescaled by
    its largest per-state range first, which only reparametrises ``beta``.
    """
    n, n_actions = q.shape
    if n == 0:
        return 0.0, 0.0
    x, scale = _scaled_gaps(q)
    if scale <= 0:
        return 0.0, -n * math.log(n_actions)
    taken = x[np.arange(n), actions]

    def loglik(b: float) -> float:
        return float(np.sum(b * taken - logsumexp(b * x, axis=1)))

    def slope(b: float) -> float:
        return float(np.sum(taken - np.sum(softmax(b * x, axis=1) * x, axis=1)))

    if slope(0.0) <= 0:
        b = 0.0
    elif slope(MAX_SCALED_BETA) >= 0:
        b = MAX_SCALED_BETA
    else:
        b = brentq(slope, 0.0, MAX_SCALED_BETA, xtol=1e-6, rtol=1e-10)
    return b / scale, loglik(b)


def fit_noisy_rational(q: np.ndarray, actions: np.ndarray) -> tuple[float, float, float]:
    """Maximum-likelihood ``(beta, lapse)`` of the noisy-rational model; returns ``(beta, lapse, loglik)``.

    L-BFGS-B over ``(log beta, lapse)`` with exact gradients, started from
    the lapse-free optimum (:func:`fit_beta`); the better of the two is kept,
    so the fit is never worse than the lapse-free one.
    """
    n, n_actions = q.shape
    beta0, best = fit_beta(q, actions)
    if n == 0:
        return beta0, 0.0, best
    x, scale = _scaled_gaps(q)
    if scale <= 0:
        return 0.0, 0.0, best
    rows = np.arange(n)
    taken = x[rows, actions]

    def negated(params: np.ndarray) -> tuple[float, np.ndarray]:
        t, lapse = params
        b = math.exp(t)
        p = softmax(b * x, axis=1)
        p_taken = p[rows, actions]
        mix = np.maximum((1.0 - lapse) * p_taken + lapse / n_actions, 1e-300)
        d_b = (1.0 - lapse) * p_taken * (taken - np.sum(p * x, axis=1)) / mix
        d_lapse = (1.0 / n_actions - p_taken) / mix
        return -float(np.sum(np.log(mix))), -np.array([b * np.sum(d_b), np.sum(d_lapse)])

    t_max = math.log(MAX_SCALED_BETA)
    t0 = min(max(math.log(max(beta0 * scale, 1e-3)), -7.0), t_max)
    # The likelihood is flat in log beta near beta = 0, so a start there never leaves it: start
    # from the best point of a coarse grid (and the lapse-free fit) instead.
    grid = [(t0, 0.05)] + [
        (t, lapse) for t in np.log([0.3, 3.0, 30.0, 300.0, 3000.0]) for lapse in (0.1, 0.5)
    ]
    start = min(grid, key=lambda point: negated(np.array(point))[0])
    found = minimize(
        negated, np.array(start), jac=True, method="L-BFGS-B", bounds=[(-7.0, t_max), (0.0, 1.0)]
    )
    value = -float(found.fun)
    if not value > best:
        return beta0, 0.0, best
    return math.exp(found.x[0]) / scale, float(found.x[1]), value


def infer_goal(rollouts: Rollouts, levels: Sequence[Level], candidates: Sequence[str]) -> CandidateInference:
    """Posterior over ``candidates`` and no-goal for the agent's actions in ``rollouts``."""
    if not candidates:
        raise ValueError("infer_goal: no candidate rewards")
    unknown = [c for c in candidates if c not in levels[0].q]
    if unknown:
        raise ValueError(f"unknown reward name {unknown[0]!r}; declared: {sorted(levels[0].q)}")
    q, actions = step_q_values(rollouts, levels, candidates)
    return infer_from_values(q, actions, candidates)


def infer_from_values(q: np.ndarray, actions: np.ndarray, candidates: Sequence[str]) -> CandidateInference:
    """Posterior over ``candidates`` and no-goal given each candidate's action values ``q`` ``(K, N, A)``.

    The values may be exact ``Q*`` (the exact path) or any per-step action
    preferences, such as a reference policy's log-probabilities (the sampled
    path, :mod:`evaluation.sampled`): ``beta`` absorbs their scale.
    """
    n_steps, n_actions = len(actions), q.shape[2]
    loglik, beta, lapse = {}, {}, {}
    for k, name in enumerate(candidates):
        beta[name], lapse[name], loglik[name] = fit_noisy_rational(q[k], actions)
    loglik[NO_GOAL], beta[NO_GOAL], lapse[NO_GOAL] = -n_steps * math.log(n_actions), 0.0, 1.0
    penalty = 2 * 0.5 * math.log(max(n_steps, 1))  # beta and lapse
    names = list(candidates) + [NO_GOAL]
    score = np.array([loglik[h] - (penalty if h != NO_GOAL else 0.0) for h in names])
    post = softmax(score)
    posterior = {h: float(p) for h, p in zip(names, post, strict=True)}
    return CandidateInference(
        candidates=list(candidates),
        n_steps=int(n_steps),
        log_likelihood=loglik,
        beta=beta,
        lapse=lapse,
        posterior=posterior,
        inferred_goal=names[int(np.argmax(post))],
    )
