"""The batch of a :class:`~envs.gym_adapter.GymTask`: ``num_envs`` Gymnasium envs stepped in a loop.

Row ``i`` holds one env instance (the *unwrapped* env: the batch keeps its own
step limit ``max_steps`` instead of the registration's ``TimeLimit``).
``reset_levels`` resets row ``i`` with ``env.reset(seed=fold_seed(level_seed))``,
so a level is a function of its seed as far as the env's own seeding goes.
Envs are stepped one by one: a generic env offers no batched step. A row
whose episode has ended is *frozen* until ``reset_levels`` or ``set_states``:
``step`` leaves it alone and reports zero rewards, ``terminated`` and
``truncated`` False, so a rollout can keep stepping the whole batch until
every row is done.

**Snapshots.** ``arrays()`` holds ``level_seed`` and ``steps`` only: a generic
env's state cannot be written into arrays. A batch restored from it
(``load_arrays``, e.g. a resumed training run) resets every row to its level,
so episodes in progress restart from their first step.

Time is not part of the exact state: ``set_states`` leaves the step counter as
it is and un-freezes the row (an explicit state is a new starting point).
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from envs import rng
from envs.gym_types import Transition


class GymBatch:
    """``num_envs`` Gymnasium envs of one task's distribution, stepped in a loop (a :class:`LevelBatch`).

    A batch made by :meth:`replicate` is a *model* batch (``model=True``): its rows are exact
    states, stepped through the task's memo of transitions (:class:`envs.gym_exact.ExactModel`)
    instead of envs. The exact path (level enumeration) steps hundreds of copies of one level;
    a model batch makes that cost one env step per distinct transition instead of one per row
    and search step. A model row gets a real env only when it is observed or rendered. Model
    batches rely on what the determinism probe checks: the env is deterministic and its state
    is all of it.
    """

    def __init__(self, task, num_envs: int, distribution: str, params: dict, model: bool = False):
        """``task``: the :class:`~envs.gym_adapter.GymTask`; ``params``: resolved (``task.resolve_params``)."""
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"{task.env_id}: num_envs must be a positive integer, got {num_envs!r}")
        self.task = task
        self.env_id = task.env_id
        self.distribution = distribution
        self.params = dict(params)
        self.num_envs = int(num_envs)
        self.reward_names = task.reward_names
        self.flag_names = task.flag_names
        self.model = model
        self._pkey = task.params_key(self.params)
        facts = task.facts(self.params)
        self._actions = np.array(facts["actions"], dtype=np.int64)
        self._access = facts["access"]
        self.max_steps = facts["max_steps"]
        n = self.num_envs
        self.envs = [None] * n if model else [task.make_env(self.params) for _ in range(n)]
        self.level_seed = np.zeros(n, dtype=np.uint64)
        self.steps = np.zeros(n, dtype=np.int64)
        self.frozen = np.zeros(n, dtype=bool)
        self._ready = np.zeros(n, dtype=bool)
        self._obs: list[Any] = [None] * n
        self._obs_known = np.ones(n, dtype=bool)
        self._planes: list[np.ndarray | None] = [None] * n
        self._plane_names: tuple[str, ...] = ()
        if model:
            self._states = np.zeros((n, facts["state_dim"]), dtype=np.int64)
            self._synced = np.zeros(n, dtype=bool)  # the row's env holds its state
            self._env_seed: list[int | None] = [None] * n
        if task.feature_planes_of is not None:
            self.feature_planes = self._stacked_feature_planes

    # ----------------------------------------------------------- protocol
    @property
    def exact_unavailable(self) -> str | None:
        """Why this batch cannot take the exact path (runs the determinism probe once per params)."""
        return self.task.exact.problem(self.distribution, self.params)

    def check_exact(self) -> str | None:
        """Same as :attr:`exact_unavailable`: None, or what stops the exact path."""
        return self.exact_unavailable

    @property
    def state_dim(self) -> int:
        return self.task.facts(self.params).get("state_dim", 0)

    def single_observation_space(self) -> gymnasium.spaces.Box:
        return self.task.facts(self.params)["observation_space"]

    def single_action_space(self) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(len(self._actions))

    def reset_levels(self, idx: np.ndarray, seeds: np.ndarray, _planes: bool = True) -> None:
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        seeds = rng.as_seed_array(seeds).reshape(-1)
        if len(seeds) != len(idx):
            raise ValueError(f"{self.env_id}: {len(seeds)} seeds for {len(idx)} rows")
        task = self.task
        for i, seed in zip(idx.tolist(), seeds.tolist(), strict=True):
            self.level_seed[i] = seed
            if self.model:
                start, names, planes = task.exact.start(self.params, self._pkey, seed)
                self._states[i] = start
                self._synced[i] = False
            else:
                env = self.envs[i]
                self._obs[i] = task.reset_env(env, seed)
                if _planes and task.feature_planes_of is not None:
                    names, planes = task.feature_planes_of(env)
            if _planes and task.feature_planes_of is not None:
                self._plane_names = tuple(names)
                self._planes[i] = np.asarray(planes)
        self.steps[idx] = 0
        self.frozen[idx] = False
        self._ready[idx] = True
        self._obs_known[idx] = True

    def _require_ready(self, what: str) -> None:
        if not self._ready.all():
            raise ValueError(
                f"{self.env_id}: {what} before reset_levels on row {int(np.flatnonzero(~self._ready)[0])}"
            )

    def _materialize(self, i: int) -> None:
        """Model batches: give row ``i`` a real env in its state (for observing and rendering)."""
        if not self.model or self._synced[i]:
            return
        task, seed = self.task, int(self.level_seed[i])
        env = self.envs[i]
        if env is None or self._env_seed[i] != seed:
            env = task.make_env(self.params)
            task.reset_env(env, seed)
        vector = tuple(self._states[i].tolist())
        self.envs[i] = task.exact.restore(env, self._access, self._pkey, seed, vector)
        self._env_seed[i] = seed
        self._obs[i] = task.exact.raw_obs.get((self._pkey, seed, vector))
        self._obs_known[i] = task.observation is not None or self._obs[i] is not None
        self._synced[i] = True

    def observe(self) -> np.ndarray:
        self._require_ready("observe")
        for i in range(self.num_envs):
            self._materialize(i)
        if not self._obs_known.all():
            row = int(np.flatnonzero(~self._obs_known)[0])
            raise ValueError(
                f"{self.env_id}: row {row}'s observation is unknown after set_states (the env's own "
                "observation of that state was never seen); give GymTask observation=(env, obs) that "
                "reads the env"
            )
        observation = self.task.observation
        if observation is None:
            obs = np.stack([np.asarray(o) for o in self._obs])
        else:
            obs = np.stack([np.asarray(observation(e, o)) for e, o in zip(self.envs, self._obs, strict=True)])
        return obs.astype(np.uint8) if obs.dtype == bool else obs  # as the inferred space says

    def step(self, actions: np.ndarray):
        """Advance every live row by one action; frozen rows stay put with zero rewards."""
        actions = np.asarray(actions).reshape(-1)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"{self.env_id}: {actions.shape[0]} actions for {self.num_envs} envs")
        return self.step_rows(np.arange(self.num_envs), actions)

    def step_rows(self, idx: np.ndarray, actions: np.ndarray):
        """:meth:`step` for rows ``idx`` only (the others are untouched); arrays are full-batch."""
        self._require_ready("step")
        rewards = {name: np.zeros(self.num_envs) for name in self.reward_names}
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        n = len(self._actions)
        task = self.task
        readers = task.readers
        for i, a in zip(np.asarray(idx).tolist(), np.asarray(actions).tolist(), strict=True):
            if self.frozen[i]:
                continue
            if not 0 <= a < n:
                raise ValueError(f"{self.env_id}: action {a} outside Discrete({n})")
            env_action = int(self._actions[a])
            if self.model:
                seed = int(self.level_seed[i])
                succ, values, term = task.exact.transition(
                    self.params, self._pkey, seed, tuple(self._states[i].tolist()), env_action
                )
                self._states[i] = succ
                self._synced[i] = False
                for name, value in zip(self.reward_names, values, strict=True):
                    rewards[name][i] = value
                trunc = False  # the model is time-free: only the batch's step limit truncates
            else:
                env = self.envs[i]
                obs = self._obs[i]
                next_obs, reward, term, trunc, info = task.step_env(env, env_action)
                transition = Transition(
                    env, obs, env_action, float(reward), next_obs, bool(term), bool(trunc), info
                )
                for name, read in readers.items():
                    rewards[name][i] = float(read(transition))
                self._obs[i] = next_obs
            self.steps[i] += 1
            terminated[i] = bool(term)
            truncated[i] = (bool(trunc) or self.steps[i] >= self.max_steps) and not term
            if terminated[i] or truncated[i]:
                self.frozen[i] = True
        return rewards, terminated, truncated

    def render_rgb(self, i: int) -> np.ndarray:
        self._materialize(i)
        env = self.envs[i]
        image = self.task.render(env) if self.task.render is not None else env.render()
        if image is None:
            raise ValueError(
                f"{self.env_id}: {self.params['id']} renders no rgb_array; give GymTask render=(env) -> image"
            )
        return np.asarray(image, dtype=np.uint8)

    # ----------------------------------------------------------- snapshots
    def arrays(self) -> dict[str, np.ndarray]:
        """``level_seed`` and ``steps``: restoring them restarts every row's episode (module docstring)."""
        return {"level_seed": self.level_seed, "steps": self.steps}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        for name, current in self.arrays().items():
            if name not in arrays or np.shape(arrays[name]) != current.shape:
                raise ValueError(f"{self.env_id}: snapshot array {name!r} is missing or has the wrong shape")
        self.reset_levels(np.arange(self.num_envs), np.asarray(arrays["level_seed"], dtype=np.uint64))

    def close(self) -> None:
        for env in self.envs:
            if env is not None:
                env.close()

    # ----------------------------------------------------------- exact access
    def _require_access(self) -> None:
        if self._access is None:
            raise ValueError(self.task.exact.problem(self.distribution, self.params))

    def level_key(self, row: int):
        """The level's identity for the planners' caches.

        Its start state when the task says its states identify levels
        (``states_identify_levels``: the Minigrid codec holds the whole grid),
        so levels that differ only in their seed are solved once; else the seed.
        """
        seed = int(self.level_seed[row])
        if not getattr(self.task, "states_identify_levels", False):
            return seed
        return tuple(int(v) for v in self.task.exact.start(self.params, self._pkey, seed)[0])

    def get_states(self) -> np.ndarray:
        self._require_access()
        self._require_ready("get_states")
        if self.model:
            return self._states.copy()
        task = self.task
        vectors = []
        for i, env in enumerate(self.envs):
            seed = int(self.level_seed[i])
            vector = task.exact.state_vector(env, self._access, self._pkey, seed)
            if task.observation is None and self._obs_known[i]:
                task.exact.raw_obs.setdefault((self._pkey, seed, vector), self._obs[i])
            vectors.append(vector)
        lengths = {len(v) for v in vectors}
        if len(lengths) > 1:
            raise ValueError(f"{self.env_id}: states of different lengths {sorted(lengths)} in one batch")
        return np.array(vectors, dtype=np.int64).reshape(self.num_envs, -1)

    def set_states(self, idx: np.ndarray, states: np.ndarray) -> None:
        """Put rows ``idx`` in ``states`` (live again: an explicit state is a new starting point)."""
        self._require_access()
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        states = np.asarray(states, dtype=np.int64).reshape(len(idx), self.state_dim)
        if self.model:
            self._states[idx] = states
            self._synced[idx] = False
        else:
            task = self.task
            for i, state in zip(idx.tolist(), states.tolist(), strict=True):
                seed = int(self.level_seed[i])
                vector = tuple(state)
                self.envs[i] = task.exact.restore(self.envs[i], self._access, self._pkey, seed, vector)
                if task.observation is None:
                    obs = task.exact.raw_obs.get((self._pkey, seed, vector))
                    self._obs[i] = obs
                    self._obs_known[i] = obs is not None
        self.frozen[idx] = False

    def replicate(self, row: int, n: int) -> GymBatch:
        """A model batch of ``n`` copies of ``row``'s level in its current state (see the class doc)."""
        self._require_access()
        self._require_ready("replicate")
        state = self.get_states()[row]
        clone = GymBatch(self.task, n, self.distribution, self.params, model=True)
        clone.level_seed[:] = self.level_seed[row]
        clone._states[:] = state
        clone.steps[:] = self.steps[row]
        clone.frozen[:] = self.frozen[row]
        clone._ready[:] = True
        if self.task.feature_planes_of is not None:  # the same level: its planes are the row's
            clone._plane_names = self._plane_names
            clone._planes = [self._planes[row]] * n
        return clone

    def _stacked_feature_planes(self) -> tuple[tuple[str, ...], np.ndarray]:
        """Named static planes of every row's level, from its first state: ``(B, C, H, W)``."""
        self._require_ready("feature_planes")
        return self._plane_names, np.stack(self._planes)
