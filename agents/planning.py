"""The exact path, in one place: level models by search, value iteration, and the level cache.

A deterministic task exposes its dynamic state (:class:`envs.task.ExactAccess`:
``get_states`` / ``set_states`` / ``replicate`` on a batch).
:func:`enumerate_level` builds a level's tabular model generically:
breadth-first search from the start state, expanding a whole frontier times
every action in one batched ``step``. Value iteration on that model gives
``Q*`` for every declared reward at once, which the optimal planner, the
normalised score and reward inference all share. :class:`LevelSolver` keeps
each solved :class:`Level`, keyed by ``(env, resolved params, level seed)``.

Scores normalise *undiscounted* returns within the env's step limit, so the
reference optimum is that quantity's optimum, not the discounted one's:
:func:`finite_horizon_values` computes it by backward induction over the
``max_steps`` steps from the level's start. Where the discounted greedy plan
already reaches it (the limit cannot bind), the planner keeps that cheap,
stationary plan; where it does not (a hoarder's keys, a shield detour that
runs out of time), the level keeps its time-indexed values and the planner
acts on them (:meth:`Level.q_at`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import splu

from envs.task import LevelBatch, require_exact

DEFAULT_GAMMA = 0.99


@dataclass
class TabularModel:
    """Deterministic model of one level: ``S`` states, ``A`` actions.

    ``next_state[s, a]`` is the successor's index; where ``terminal[s, a]`` the
    episode ends on that transition and the successor is never expanded.
    """

    states: np.ndarray  # (S, state_dim) int
    next_state: np.ndarray  # (S, A) int
    terminal: np.ndarray  # (S, A) bool
    rewards: dict[str, np.ndarray]  # name -> (S, A) float
    start: int = 0

    @property
    def num_states(self) -> int:
        return len(self.states)

    @property
    def num_actions(self) -> int:
        return self.next_state.shape[1]

    def index_of(self, states: np.ndarray) -> np.ndarray:
        """Row indices of ``states`` (each must be in the model)."""
        lookup = {tuple(s): i for i, s in enumerate(self.states.tolist())}
        try:
            return np.array([lookup[tuple(s)] for s in np.asarray(states).tolist()], dtype=np.int64)
        except KeyError as err:
            raise ValueError(f"state {err.args[0]} is not in the level model") from None


class LevelTooLarge(ValueError):
    """A level with more states than the exact path enumerates; the judge's sampled path takes it instead."""


def enumerate_level(core: LevelBatch, row: int = 0, max_states: int = 200_000) -> TabularModel:
    """Tabular model of the level in ``core``'s ``row``, from its current state.

    An env whose levels are too big to enumerate may provide the model itself
    as ``core.tabular_model(row) -> TabularModel``; it is then used as is.
    A task without exact access stops here with what it lacks.

    States reached only by an episode-ending transition are kept (their
    features matter to reward comparisons) but not expanded: they get
    absorbing rows (self-loops, terminal, zero reward).
    """
    if hasattr(core, "tabular_model"):
        return core.tabular_model(row)
    require_exact(core)
    n_actions = core.single_action_space().n
    start = core.get_states()[row]
    chunk = 256
    search = core.replicate(row, chunk * n_actions)
    index = {tuple(start.tolist()): 0}
    states = [start]
    queue, queued = [0], {0}
    rows_of: dict[int, tuple] = {}
    while queue:
        batch, queue = queue[:chunk], queue[chunk:]
        frontier = np.array([states[i] for i in batch])
        k = len(frontier) * n_actions
        search.set_states(np.arange(k), np.repeat(frontier, n_actions, axis=0))
        actions = np.tile(np.arange(n_actions), chunk)
        if hasattr(search, "step_rows"):  # a batch stepped row by row: step the frontier's rows only
            rewards, terminated, _ = search.step_rows(np.arange(k), actions[:k])
        else:
            rewards, terminated, _ = search.step(actions)
        successors = search.get_states()[:k].tolist()
        terminated = terminated[:k]
        succ_index = np.empty(k, dtype=np.int64)
        for j, succ in enumerate(successors):
            key = tuple(succ)
            if key not in index:
                index[key] = len(states)
                states.append(np.array(succ))
            succ_index[j] = index[key]
            if not terminated[j] and succ_index[j] not in queued:
                queued.add(succ_index[j])
                queue.append(succ_index[j])
        for n, s in enumerate(batch):
            sl = slice(n * n_actions, (n + 1) * n_actions)
            rows_of[s] = (succ_index[sl], terminated[sl], {name: r[:k][sl] for name, r in rewards.items()})
        if len(states) > max_states:
            raise LevelTooLarge(
                f"{core.env_id}: level has more than {max_states} states; "
                "give the core a tabular_model(row) method"
            )
    num = len(states)
    next_state = np.repeat(np.arange(num)[:, None], n_actions, axis=1)
    terminal = np.ones((num, n_actions), dtype=bool)
    reward_tables = {name: np.zeros((num, n_actions)) for name in core.reward_names}
    for s, (succ, term, rew) in rows_of.items():
        next_state[s], terminal[s] = succ, term
        for name, table in reward_tables.items():
            table[s] = rew[name]
    return TabularModel(
        states=np.array(states), next_state=next_state, terminal=terminal, rewards=reward_tables
    )


def value_iteration(
    model: TabularModel,
    rewards: np.ndarray,
    gamma: float = DEFAULT_GAMMA,
    tol: float = 1e-8,
    max_iters: int = 10_000,
    terminal: np.ndarray | None = None,
) -> np.ndarray:
    """``Q*`` for a stack of rewards ``(K, S, A)`` on one model; returns ``(K, S, A)``.

    ``terminal`` (``(S, A)`` or one per reward, ``(K, S, A)``) replaces the
    model's episode ends: a goal that is over once reached ends there.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim == 2:
        one = None if terminal is None else np.asarray(terminal)[None]
        return value_iteration(model, rewards[None], gamma, tol, max_iters, one)[0]
    ends = model.terminal if terminal is None else np.asarray(terminal, dtype=bool)
    cont = np.broadcast_to(gamma * ~ends, rewards.shape)
    v = np.zeros(rewards.shape[:2])
    for it in range(max_iters):
        q = rewards + cont * v[:, model.next_state]
        v_new = q.max(axis=2)
        if np.max(np.abs(v_new - v)) < tol:
            return q
        v = v_new
        if it + 1 >= EXACT_EVALUATION_AFTER and model.num_states <= EXACT_EVALUATION_MAX_STATES:
            v = _greedy_policy_values(model, rewards, cont, q)
    return q


# Levels without terminal states (tasks that go on until truncation) need thousands of sweeps at
# gamma = 0.99; after this many sweeps, each sweep jumps to the exact values of the current
# greedy policy (policy iteration), which converges in a few more. Levels that converge sooner
# (episodic goals) are untouched.
EXACT_EVALUATION_AFTER = 200
EXACT_EVALUATION_MAX_STATES = 200_000


def _greedy_policy_values(
    model: TabularModel, rewards: np.ndarray, cont: np.ndarray, q: np.ndarray
) -> np.ndarray:
    """``V`` of the greedy policy of each ``q[k]``, by one exact sparse solve per reward: ``(K, S)``.

    Each state has one successor under a policy, so ``I - gamma P_pi`` has at
    most two entries per row and a sparse LU costs little at any state count.
    """
    n = model.num_states
    rows = np.arange(n)
    identity = sparse.identity(n, format="csc")
    values = np.empty(rewards.shape[:2])
    for k, pi in enumerate(q.argmax(axis=2)):
        transition = sparse.csc_matrix((cont[k, rows, pi], (rows, model.next_state[rows, pi])), shape=(n, n))
        values[k] = splu(identity - transition).solve(rewards[k, rows, pi])
    return values


def finite_horizon_values(
    model: TabularModel, rewards: np.ndarray, horizon: int, terminal: np.ndarray | None = None
) -> np.ndarray:
    """``V_t(s)`` for ``t = 0..horizon``: the best undiscounted return in ``horizon - t`` steps; ``(K, T+1, S)``.

    ``V_T = 0``; ``V_t(s) = max_a r(s, a) + [not terminal] V_{t+1}(s')``
    (``terminal`` as in :func:`value_iteration`). ``V_t = B(V_{t+1})`` with
    one time-free operator ``B``: once a sweep leaves every value
    bit-for-bit unchanged, every earlier ``V_t`` is that same array, so the
    rest is filled in without sweeping (episodic goals on levels far shorter
    than the step limit, e.g. a 15x15 maze: paths of ~100 steps, a limit of
    900, stop long before ``t = 0``).
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    cont = np.broadcast_to(
        ~(model.terminal if terminal is None else np.asarray(terminal, dtype=bool)), rewards.shape
    )
    values = np.zeros((rewards.shape[0], horizon + 1, model.num_states))
    for t in range(horizon - 1, -1, -1):
        values[:, t] = (rewards + cont * values[:, t + 1][:, model.next_state]).max(axis=2)
        if np.array_equal(values[:, t], values[:, t + 1]):
            values[:, :t] = values[:, t : t + 1]
            break
    return values


def stationary_return(model: TabularModel, reward: np.ndarray, actions: np.ndarray, horizon: int) -> float:
    """Undiscounted return within ``horizon`` steps from the start of the plan ``actions[s]``."""
    s, total = model.start, 0.0
    for _ in range(horizon):
        a = actions[s]
        total += reward[s, a]
        if model.terminal[s, a]:
            break
        s = model.next_state[s, a]
    return float(total)


# Relative tolerance under which a stationary plan counts as reaching the finite-horizon optimum.
OPTIMUM_TOLERANCE = 1e-9


def greedy_actions(q: np.ndarray) -> np.ndarray:
    """Optimal action per state (lowest index among ties, so plans are reproducible)."""
    return q.argmax(axis=-1)


def params_key(env_id: str, params: dict) -> str:
    """A stable text key for an env's resolved parameters."""
    return env_id + json.dumps(params, sort_keys=True, default=str)


@dataclass
class Level:
    """One solved level: a 1-row batch holding it, its model, ``Q*`` per reward, a state index.

    ``q`` is the discounted, time-free ``Q*`` (goal inference, IRL and EPIC
    use it); ``optimum`` the best undiscounted return within ``horizon``
    steps from the start, per reward; ``horizon_values`` the time-indexed
    values ``V_t`` of the rewards whose discounted plan falls short of it.
    """

    core: LevelBatch
    model: TabularModel
    q: dict[str, np.ndarray]  # reward -> (S, A)
    codes: np.ndarray  # sorted mixed-radix codes of model states
    order: np.ndarray  # model index of each sorted code
    radix: np.ndarray
    low: np.ndarray
    horizon: int = 0
    optimum: dict[str, float] = field(default_factory=dict)
    horizon_values: dict[str, np.ndarray] = field(default_factory=dict)  # reward -> (T+1, S)

    def q_at(self, reward: str, index: int, t: int) -> np.ndarray:
        """Action values ``(A,)`` of the optimal plan for the scored return, in state ``index`` at step ``t``.

        Where the limit binds, the actions optimal for the steps left come
        first and ``Q*`` orders them (ties broken as the discounted planner
        would); elsewhere it is ``Q*`` itself.
        """
        q = self.q[reward][index]
        values = self.horizon_values.get(reward)
        if values is None:
            return q
        t = min(max(int(t), 0), self.horizon - 1)
        model = self.model
        left = model.rewards[reward][index] + ~model.terminal[index] * values[t + 1][model.next_state[index]]
        best = left >= left.max() - OPTIMUM_TOLERANCE * max(1.0, abs(left.max()))
        spread = float(q.max() - q.min()) + 1.0
        return np.where(best, q, q - 2.0 * spread)

    def index_of(self, states: np.ndarray) -> np.ndarray:
        """Model indices of ``states`` (n, state_dim), vectorised; every state must be in the model."""
        states = np.asarray(states, dtype=np.int64).reshape(-1, self.model.states.shape[1])
        codes = (states - self.low) @ self.radix
        pos = np.clip(np.searchsorted(self.codes, codes), 0, len(self.codes) - 1)
        idx = self.order[pos]
        bad = (self.model.states[idx] != states).any(axis=1)
        if bad.any():
            raise ValueError(f"state {states[bad][0].tolist()} is not in the level model")
        return idx


def solve_level(core: LevelBatch, row: int, gamma: float) -> Level:
    require_exact(core)
    single = core.replicate(row, 1)
    single.reset_levels(np.array([0]), core.level_seed[row : row + 1])
    model = enumerate_level(single)
    names = list(model.rewards)
    q = value_iteration(model, np.stack([model.rewards[n] for n in names]), gamma)
    low = model.states.min(axis=0)
    span = model.states.max(axis=0) - low + 1
    radix = np.concatenate([np.cumprod(span[::-1])[::-1][1:], [1]]).astype(np.int64)
    codes = (model.states - low) @ radix
    order = np.argsort(codes)
    horizon = int(core.max_steps)
    rewards = np.stack([model.rewards[n] for n in names])
    values = finite_horizon_values(model, rewards, horizon)
    optimum, horizon_values = {}, {}
    for k, name in enumerate(names):
        optimum[name] = float(values[k, 0, model.start])
        reached = stationary_return(model, rewards[k], greedy_actions(q[k]), horizon)
        if reached < optimum[name] - OPTIMUM_TOLERANCE * max(1.0, abs(optimum[name])):
            horizon_values[name] = values[k]
    return Level(
        single,
        model,
        dict(zip(names, q, strict=True)),
        codes[order],
        order,
        radix,
        low,
        horizon=horizon,
        optimum=optimum,
        horizon_values=horizon_values,
    )


class LevelSolver:
    """Solved :class:`Level` objects, keyed by ``(env, resolved params, level seed)``.

    A level is its env, resolved params and seed: the same seed under another
    distribution (CoinRun ``train`` vs ``test``) is another level. Planner
    agents and the judge share one solver so each level is solved once.
    """

    def __init__(self, gamma: float = DEFAULT_GAMMA):
        self.gamma = gamma
        self.levels: dict[tuple, Level] = {}

    def level(self, core: LevelBatch, row: int, key: str | None = None) -> Level:
        """Row ``row``'s solved level; a batch's ``level_key(row)`` (if any) replaces the seed as its identity."""
        key = params_key(core.env_id, core.params) if key is None else key
        level = core.level_key(row) if hasattr(core, "level_key") else int(core.level_seed[row])
        if (key, level) not in self.levels:
            self.levels[(key, level)] = solve_level(core, row, self.gamma)
        return self.levels[(key, level)]

    def row_levels(self, core: LevelBatch) -> list[Level]:
        key = params_key(core.env_id, core.params)
        return [self.level(core, i, key) for i in range(core.num_envs)]

    def state_indices(self, core: LevelBatch) -> np.ndarray:
        states = core.get_states()
        return np.array([lv.index_of(states[i : i + 1])[0] for i, lv in enumerate(self.row_levels(core))])

    def q_values(self, core: LevelBatch, reward: str, t: int | np.ndarray | None = None) -> np.ndarray:
        """``(B, A)`` action values of every row's current state under ``reward``.

        ``t=None``: the discounted ``Q*``. With the episode's step ``t`` (one
        for all rows, or one per row): values whose argmax is optimal for the
        scored, time-limited return (:meth:`Level.q_at`).
        """
        states = core.get_states()
        levels = self.row_levels(core)
        index = [lv.index_of(states[i : i + 1])[0] for i, lv in enumerate(levels)]
        if t is None:
            return np.stack([lv.q[reward][s] for lv, s in zip(levels, index, strict=True)])
        steps = np.broadcast_to(np.asarray(t), (len(levels),))
        return np.stack([lv.q_at(reward, s, k) for lv, s, k in zip(levels, index, steps, strict=True)])


ParamsKeyedSolver = LevelSolver  # old name, kept for existing code
