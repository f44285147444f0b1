"""Candidate-free behavioral reward: maximum-entropy IRL over features shared by all levels.

Candidate inference can only pick among declared rewards; an agent may pursue
something nobody declared. Maximum (causal) entropy IRL (Ziebart et al. 2008,
2010) fits a linear reward ``R_w(s, s') = w . phi(s, s')`` whose soft-optimal
policy ``pi_w(a|s) = exp(Q_w(s, a) - V_w(s))`` maximises the likelihood of the
agent's actions, on each level's exact model.

Features come from the task protocol generically (no per-env code): a
(centred) one-hot of the agent's next position (``state[:2]``), each named
static plane of the level (``feature_planes()``: wall, lava, coin, cheese,
...) at the next position, a "blocked" bit (the position did not change) and
each declared flag (``flag_names``, the state columns after the position)
just set in ``s'``. A task without planes or flags gets the position and
blocked features only. Entropy is measured relative to the uniform policy, so ending an
episode costs no entropy bonus: termination is neutral, as in the declared
rewards.

Fitting: levels are padded to a common state count and solved together. Soft
values by soft policy iteration (each step one exact sparse LU solve over all levels, warm
started from the previous policy); the exact gradient of the log-likelihood
from successor features ``psi = (I - gamma P_pi)^-1 phi_pi``; L-BFGS on the
L2-regularised mean log-likelihood, which is concave in ``w``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import minimize
from scipy.sparse.linalg import splu
from scipy.special import logsumexp

from agents.planning import DEFAULT_GAMMA
from envs.task import LevelBatch
from evaluation.epic import LevelCoverage
from evaluation.levels import Level
from evaluation.rollouts import Rollouts


@dataclass(frozen=True)
class FeatureMap:
    """``phi(s, s')`` shared by every level of an env: which cells get a position feature, and names.

    Position features cover the cells the agent can occupy on the IRL's levels
    and are centred (``e_p - 1/P``) so that, with no constant feature, no
    weight vector makes a constant per-step reward: in an episodic task a
    living penalty explains "reach a terminal state fast" far more cheaply
    (under L2) than the goal itself, and EPIC, which removes constants, would
    then see nothing of the goal.
    """

    height: int
    width: int
    cells: np.ndarray  # flat indices ``row * width + col`` with a position feature
    channels: tuple[str, ...]  # static observation channels read at the next position
    channel_index: tuple[int, ...]
    flags: tuple[str, ...]

    @classmethod
    def for_levels(cls, levels: Sequence[Level]) -> FeatureMap:
        core = levels[0].core
        channels, planes = _feature_planes(core)
        states = np.concatenate([lv.model.states[:, :2] for lv in levels])
        height = max(int(states[:, 0].max()) + 1, planes.shape[2])
        width = max(int(states[:, 1].max()) + 1, planes.shape[3])
        occupied = np.unique(
            np.concatenate([lv.model.states[:, 0] * width + lv.model.states[:, 1] for lv in levels])
        )
        return cls(
            height=height,
            width=width,
            cells=occupied,
            channels=tuple(channels),
            channel_index=tuple(range(len(channels))),
            flags=tuple(getattr(core, "flag_names", ())),
        )

    @property
    def names(self) -> list[str]:
        rows, cols = np.divmod(self.cells, self.width)
        names = [f"at_{r}_{c}" for r, c in zip(rows.tolist(), cols.tolist(), strict=True)]
        return names + [f"on_{ch}" for ch in self.channels] + ["blocked"] + [f"set_{f}" for f in self.flags]

    def __call__(self, core: LevelBatch, states: np.ndarray, next_states: np.ndarray) -> np.ndarray:
        """Features of transitions ``s -> s'`` of the level in ``core``'s row 0: ``(n, F)``."""
        states, next_states = np.atleast_2d(states), np.atleast_2d(next_states)
        n = len(states)
        r, c = next_states[:, 0], next_states[:, 1]
        slot = np.full(self.height * self.width, -1)
        slot[self.cells] = np.arange(len(self.cells))
        where = slot[r * self.width + c]
        position = np.zeros((n, len(self.cells)))
        inside = where >= 0
        position[inside] = -1.0 / len(self.cells)
        position[np.flatnonzero(inside), where[inside]] += 1.0
        _, planes = _feature_planes(core)
        on_plane = np.zeros((n, len(self.channels)))
        in_grid = (r < planes.shape[2]) & (c < planes.shape[3])
        on_plane[in_grid] = planes[0][:, r[in_grid], c[in_grid]].T
        blocked = (states[:, :2] == next_states[:, :2]).all(axis=1, keepdims=True).astype(np.float64)
        k = len(self.flags)
        just_set = next_states[:, 2 : 2 + k].astype(bool) & ~states[:, 2 : 2 + k].astype(bool)
        return np.concatenate([position, on_plane, blocked, just_set.astype(np.float64)], axis=1)


def _feature_planes(core) -> tuple[tuple[str, ...], np.ndarray]:
    """The task's named static planes ``(B, C, H, W)``, or none when it offers none."""
    if hasattr(core, "feature_planes"):
        names, planes = core.feature_planes()
        return tuple(names), np.asarray(planes, dtype=np.float64)
    return (), np.zeros((core.num_envs, 0, 0, 0))


@dataclass
class LearnedReward:
    """``R_beh(s, s') = weights . phi(s, s')`` learned by MaxEnt IRL."""

    env_id: str
    features: FeatureMap
    weights: np.ndarray
    mean_log_likelihood: float  # per step, at the optimum, without the L2 term
    n_steps: int
    n_levels: int
    converged: bool

    @property
    def feature_names(self) -> list[str]:
        return self.features.names

    def rewards(self, level: Level, states: np.ndarray, next_states: np.ndarray) -> np.ndarray:
        return self.features(level.core, states, next_states) @ self.weights

    def matrices(self, name: str = "irl"):
        """A reward source for :func:`evaluation.epic.epic_distances`."""

        def source(cov: LevelCoverage) -> dict[str, np.ndarray]:
            x = cov.state_vectors
            n = len(x)
            return {name: self.rewards(cov.level, np.repeat(x, n, axis=0), np.tile(x, (n, 1))).reshape(n, n)}

        return source

    def top_features(self, k: int = 5) -> list[tuple[str, float]]:
        order = np.argsort(-np.abs(self.weights))[:k]
        names = self.feature_names
        return [(names[i], float(self.weights[i])) for i in order]


class _PaddedModels:
    """Levels' models padded to a common state count; padded states are terminal self-loops."""

    def __init__(self, levels: Sequence[Level], features: FeatureMap, gamma: float):
        n_levels = len(levels)
        n_states = max(lv.model.num_states for lv in levels)
        n_actions = levels[0].model.num_actions
        self.shape = (n_levels, n_states, n_actions)
        self.next = np.tile(np.arange(n_states)[None, :, None], (n_levels, 1, n_actions))
        self.cont = np.zeros(self.shape)
        phis = []
        for i, lv in enumerate(levels):
            m = lv.model
            s = m.num_states
            self.next[i, :s] = m.next_state
            self.cont[i, :s] = gamma * ~m.terminal
            phi = features(lv.core, np.repeat(m.states, n_actions, axis=0), m.states[m.next_state.ravel()])
            phis.append(np.pad(phi.reshape(s, n_actions, -1), ((0, n_states - s), (0, 0), (0, 0))))
        self.phi = np.stack(phis)  # (L, S, A, F)
        # All levels' states in one block-diagonal system: state (l, s) is row l * S + s.
        n_flat = n_levels * n_states
        self._rows = np.repeat(np.arange(n_flat), n_actions)
        self._cols = (np.arange(n_levels)[:, None, None] * n_states + self.next).ravel()
        self._identity = sparse.identity(n_flat, format="csc")

    def factorised_system(self, pi: np.ndarray):
        """Sparse LU of ``I - gamma P_pi`` over every level at once.

        Each state has at most one successor per action, so the system is very
        sparse: a sparse factorisation costs about what one level's dense
        solve did, whatever the state count.
        """
        n_flat = self.shape[0] * self.shape[1]
        p = sparse.csc_matrix(((pi * self.cont).ravel(), (self._rows, self._cols)), shape=(n_flat, n_flat))
        return splu(self._identity - p)

    def soft_policy(self, reward: np.ndarray, pi: np.ndarray, tol: float = 1e-7, max_iters: int = 100):
        """Soft-optimal policy by soft policy iteration from ``pi``; returns ``(pi, LU of I - gamma P_pi)``."""
        rows = np.arange(self.shape[0])[:, None, None]
        v = None
        for _ in range(max_iters):
            b = np.sum(pi * (reward - np.log(np.maximum(pi, 1e-300) * self.shape[2])), axis=2)
            v_new = self.factorised_system(pi).solve(b.ravel()).reshape(b.shape)
            q = reward + self.cont * v_new[rows, self.next]
            pi = np.exp(q - logsumexp(q, axis=2, keepdims=True))
            if v is not None and np.max(np.abs(v_new - v)) < tol:
                break
            v = v_new
        return pi, self.factorised_system(pi)


class IRLProblem:
    """The L2-regularised mean log-likelihood of demonstrations under soft-optimal policies, and its gradient."""

    def __init__(self, rollouts: Rollouts, levels: Sequence[Level], gamma: float, l2: float):
        if len(levels) > rollouts.num_episodes:
            raise ValueError(f"maxent_irl: {len(levels)} levels for {rollouts.num_episodes} episodes")
        self.l2 = l2
        self.features = FeatureMap.for_levels(levels)
        self.models = models = _PaddedModels(levels, self.features, gamma)
        demo_level, demo_state, demo_action = [], [], []
        for e, lv in enumerate(levels):
            alive = rollouts.alive[:, e]
            demo_state.append(lv.index_of(rollouts.states[alive, e]))
            demo_action.append(rollouts.actions[alive, e])
            demo_level.append(np.full(int(alive.sum()), e))
        self.lvl, self.st, self.act = (np.concatenate(x) for x in (demo_level, demo_state, demo_action))
        self.n_steps = len(self.act)
        self.n_features = models.phi.shape[-1]
        self.pi = np.full(models.shape, 1.0 / models.shape[2])  # warm start of soft policy iteration
        self.loglik = float("nan")
        # Demonstrated features, and where each step's discounted successor lands (adjoint gradient).
        lvl, st, act = self.lvl, self.st, self.act
        self.demo_phi = models.phi[lvl, st, act].mean(axis=0)
        n_flat = models.shape[0] * models.shape[1]
        flat_state = lvl * models.shape[1] + st
        flat_next = lvl * models.shape[1] + models.next[lvl, st, act]
        self.visits = (
            np.bincount(flat_next, weights=models.cont[lvl, st, act], minlength=n_flat)
            - np.bincount(flat_state, minlength=n_flat)
        ).reshape(models.shape[:2]) / max(self.n_steps, 1)

    def value_and_grad(self, w: np.ndarray) -> tuple[float, np.ndarray]:
        """``(objective, gradient)`` at weights ``w`` (to be maximised)."""
        models = self.models
        pi, system = models.soft_policy(models.phi @ w, self.pi)
        self.pi = pi
        # d loglik / dw = mean(phi(s_n, a_n)) + u^T (I - gamma P_pi)^-1 phi_pi with u = visits:
        # one transposed solve instead of one per feature.
        adjoint = system.solve(self.visits.ravel(), trans="T").reshape(self.visits.shape)
        grad = self.demo_phi + np.einsum("ls,lsa,lsaf->f", adjoint, pi, models.phi)
        self.loglik = float(np.mean(np.log(np.maximum(pi[self.lvl, self.st, self.act], 1e-300))))
        return self.loglik - 0.5 * self.l2 * w @ w, grad - self.l2 * w


MAX_GRID_CELLS = 1_000_000  # position features beyond this many cells are not a grid the features fit


def features_problem(levels: Sequence[Level]) -> str | None:
    """Why the position features cannot describe these levels' states (None when they can).

    They read ``state[:2]`` as a non-negative ``(row, col)`` cell of a grid
    (the protocol's convention); a state of another shape, negative entries
    or a grid of more than ``MAX_GRID_CELLS`` cells is not one.
    """
    states = [lv.model.states for lv in levels]
    if any(s.ndim != 2 or s.shape[1] < 2 for s in states):
        return "MaxEnt IRL needs states whose first two entries are the agent's (row, col); these have fewer"
    cells = np.concatenate([s[:, :2] for s in states])
    if not np.issubdtype(cells.dtype, np.integer) or cells.min() < 0:
        return (
            "MaxEnt IRL needs states whose first two entries are the agent's (row, col) >= 0; these are not"
        )
    if (int(cells[:, 0].max()) + 1) * (int(cells[:, 1].max()) + 1) > MAX_GRID_CELLS:
        return (
            f"MaxEnt IRL's position features would span more than {MAX_GRID_CELLS} cells: not a grid position"
        )
    return None


def maxent_irl(
    rollouts: Rollouts,
    levels: Sequence[Level],
    gamma: float = DEFAULT_GAMMA,
    l2: float = 1e-4,
    max_levels: int | None = 100,
    max_iter: int = 100,
) -> LearnedReward:
    """Fit ``R_beh`` to the agent's actions on the first ``max_levels`` levels of ``rollouts``."""
    if len(levels) != rollouts.num_episodes:
        raise ValueError(f"maxent_irl: {len(levels)} levels for {rollouts.num_episodes} episodes")
    if l2 < 0:
        raise ValueError(f"maxent_irl: l2 must be >= 0, got {l2!r}")
    n_levels = len(levels) if max_levels is None else min(len(levels), max_levels)
    problem = IRLProblem(rollouts, list(levels[:n_levels]), gamma, l2)

    def negated(w):
        value, grad = problem.value_and_grad(w)
        return -value, -grad

    result = minimize(
        negated,
        np.zeros(problem.n_features),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "ftol": 1e-7},
    )
    problem.value_and_grad(result.x)
    return LearnedReward(
        env_id=rollouts.env_id,
        features=problem.features,
        weights=result.x,
        mean_log_likelihood=problem.loglik,
        n_steps=int(problem.n_steps),
        n_levels=n_levels,
        converged=bool(result.success),
    )
