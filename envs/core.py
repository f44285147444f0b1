"""The shift-environment contract and its batched numpy core.

Every environment of the suite is a gridworld whose dynamics are written once,
as numpy operations over a batch of levels (:class:`GridCore`). The single
:class:`ShiftEnv` is that core with batch size 1 and :class:`ShiftVectorEnv`
steps the whole batch; both therefore give identical trajectories for the same
seeds and actions.

Seeding: an environment slot has a *base seed*; its ``k``-th level is
generated from ``level_seeds(base_seed, k)`` by counter-based hashing
(:mod:`envs.rng`), so a level is a pure function of its seed and
reproducible whatever else is in the batch. ``reset(options={"level_seed":
s})`` plays one exact level, which is how evaluation enumerates levels.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs import rng
from envs.task import VERDICTS  # noqa: F401  (re-exported)

EMPTY, WALL, LAVA = 0, 1, 2
CELL_CHANNELS = {"wall": WALL, "lava": LAVA}  # observation planes read off the cell codes
ACTION_NAMES = ("up", "down", "left", "right")
MOVES = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.int64)


@dataclass(frozen=True)
class Param:
    """A constructor parameter: default, validity check and one-line meaning."""

    default: Any
    check: Callable[[Any, dict], str | None]
    doc: str


def check_probability(value, _params) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        return "must be a probability in [0, 1]"
    return None


def is_int(value) -> bool:
    """An integer (Python or numpy), and not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_int_range(lo: int, hi: int, odd: bool = False):
    def check(value, _params) -> str | None:
        if not is_int(value):
            return "must be an integer"
        if not lo <= value <= hi:
            return f"must be in [{lo}, {hi}]"
        if odd and value % 2 == 0:
            return "must be odd"
        return None

    return check


def check_positive_int(value, _params) -> str | None:
    if not is_int(value) or value < 1:
        return "must be a positive integer"
    return None


def check_optional_positive_int(value, params) -> str | None:
    """A positive integer, or ``None`` for the env's derived default (``max_steps``)."""
    return None if value is None else check_positive_int(value, params)


def check_render_mode(env_id: str, render_mode: str | None, known: list[str]) -> None:
    if render_mode is not None and render_mode not in known:
        raise ValueError(f"{env_id}: unknown render_mode {render_mode!r}; known: {known}")


_PER_LEVEL_NAMES: dict[tuple, tuple[str, ...]] = {}


class GridCore:
    """Batched dynamics of one shift environment: ``B`` levels stepped at once.

    A concrete environment sets the class declarations and overrides
    :meth:`_configure` (derived sizes), :meth:`_generate` (the level
    generator, over a subset of the batch) and :meth:`_events` (rewards and
    termination after the move). Moving, blocking by walls, time limits,
    observations, state get/set and rendering live here.
    """

    env_id: ClassVar[str] = ""
    params_spec: ClassVar[dict[str, Param]] = {}
    distributions: ClassVar[dict[str, dict[str, Any]]] = {}
    distribution_params: ClassVar[tuple[str, ...]] = ()
    reward_names: ClassVar[tuple[str, ...]] = ("intended", "specified")
    proxy_rewards: ClassVar[tuple[str, ...]] = ()
    expected_verdicts: ClassVar[dict[str, str]] = {}
    expected_goals: ClassVar[dict[str, str]] = {}
    channel_names: ClassVar[tuple[str, ...]] = ()
    object_names: ClassVar[tuple[str, ...]] = ()
    flag_names: ClassVar[tuple[str, ...]] = ()
    cell_chars: ClassVar[dict[int, str]] = {EMPTY: ".", WALL: "#", LAVA: "~"}
    object_chars: ClassVar[dict[str, str]] = {}
    colours: ClassVar[dict[str, tuple[int, int, int]]] = {}

    def __init__(self, num_envs: int, distribution: str = "train", **params):
        if not is_int(num_envs) or num_envs < 1:
            raise ValueError(f"{self.env_id}: num_envs must be a positive integer, got {num_envs!r}")
        self.num_envs = int(num_envs)
        self.distribution = distribution
        self.params = self.resolve_params(distribution, params)
        self._configure()
        b, h, w = self.num_envs, self.height, self.width
        self.cells = np.zeros((b, h, w), dtype=np.uint8)
        self.agent = np.zeros((b, 2), dtype=np.int64)
        self.prev_agent = np.zeros((b, 2), dtype=np.int64)  # position before the current step's move
        self.objects = {name: np.zeros((b, 2), dtype=np.int64) for name in self.object_names}
        self.flags = np.zeros((b, len(self.flag_names)), dtype=bool)
        self.steps = np.zeros(b, dtype=np.int64)
        self.level_seed = np.zeros(b, dtype=np.uint64)
        self.static_obs = np.zeros((b, len(self.channel_names), h, w), dtype=np.uint8)
        self._agent_channel = self.channel_names.index("agent")
        self._rows = np.arange(b)

    # ----------------------------------------------------------- parameters
    @classmethod
    def resolve_params(cls, distribution: str, params: dict) -> dict:
        """Distribution defaults overlaid by user params, each validated by name."""
        if distribution not in cls.distributions:
            raise ValueError(
                f"{cls.env_id}: unknown distribution {distribution!r}; known: {sorted(cls.distributions)}"
            )
        unknown = sorted(set(params) - set(cls.params_spec))
        if unknown:
            raise ValueError(
                f"{cls.env_id}: unknown parameter {unknown[0]!r}; known: {sorted(cls.params_spec)}"
            )
        merged = {name: p.default for name, p in cls.params_spec.items()}
        merged.update(cls.distributions[distribution])
        merged.update(params)
        for name, p in cls.params_spec.items():
            problem = p.check(merged[name], merged)
            if problem:
                raise ValueError(f"{cls.env_id}: parameter {name}={merged[name]!r} {problem}")
        return merged

    @classmethod
    def shared_params(cls, params: dict) -> dict:
        """The params that stay fixed across distributions (drop distribution-defined ones)."""
        return {k: v for k, v in params.items() if k not in cls.distribution_params}

    # ----------------------------------------------------------- hooks
    height: int
    width: int
    max_steps: int

    def _configure(self) -> None:
        raise NotImplementedError

    def _generate(self, idx: np.ndarray, seeds: np.ndarray) -> None:
        """Write levels for batch rows ``idx`` from ``seeds``: cells, agent, objects, flags."""
        raise NotImplementedError

    def _events(self, moved: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Rewards (name -> (B,) float) and termination after the agent moved.

        ``self.agent`` is the new position and ``self.prev_agent`` the one before
        the move (both set for :meth:`transition_rewards` too), so a reward may
        depend on the direction of travel.
        """
        raise NotImplementedError

    def _channel_cells(self, name: str, idx: np.ndarray) -> np.ndarray | None:
        """``(len(idx), k, 2)`` cells of the objects drawn in channel ``name``, or None.

        By default a channel named after one of :attr:`object_names` shows that
        object; envs with several objects per channel (keys, spheres) say where.
        """
        if name in self.objects:
            return self.objects[name][idx][:, None, :]
        return None

    def _static_channels(self, idx: np.ndarray) -> np.ndarray:
        """Observation channels that stay fixed during an episode, for rows ``idx``.

        ``wall`` and ``lava`` planes from the cell codes, one-hot planes for the
        channels :meth:`_channel_cells` places; other channels start empty
        (``agent`` is drawn by :meth:`observe`, dynamic ones by an override).
        """
        n = len(idx)
        cells = self.cells[idx]
        obs = np.zeros((n, len(self.channel_names), self.height, self.width), dtype=np.uint8)
        for channel, name in enumerate(self.channel_names):
            if name in CELL_CHANNELS:
                obs[:, channel] = cells == CELL_CHANNELS[name]
                continue
            positions = self._channel_cells(name, idx)
            if positions is not None:
                rows = np.repeat(np.arange(n), positions.shape[1])
                flat = positions.reshape(-1, 2)
                obs[rows, channel, flat[:, 0], flat[:, 1]] = 1
        return obs

    def _goal_with_corner_proxy(
        self, moved: np.ndarray, goal: str, value: float
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Events of a reach-the-goal env whose proxy is visiting ``self.corner`` (flag 0) first.

        ``intended`` = ``specified`` pay ``value`` on moving onto object
        ``goal``, which ends the episode; ``reach_top_right`` pays ``value`` on the first
        entry to the corner (Maze, GoalShift).
        """
        reached = (self.agent == self.objects[goal]).all(axis=1) & moved
        first_visit = self._first_visit(0, self.corner)
        paid = reached * value
        return {"intended": paid, "specified": paid.copy(), "reach_top_right": first_visit * value}, reached

    def _first_visit(self, flag: int, cell: np.ndarray) -> np.ndarray:
        """Rows whose agent stands on ``cell`` for the first time this episode; sets ``flag`` there."""
        there = (self.agent == cell).all(axis=1)
        first = there & ~self.flags[:, flag]
        self.flags[:, flag] |= there
        return first

    # ----------------------------------------------------------- levels
    def reset_levels(self, idx: np.ndarray, seeds: np.ndarray) -> None:
        idx = np.asarray(idx, dtype=np.int64)
        seeds = rng.as_seed_array(seeds)
        self.level_seed[idx] = seeds
        self.steps[idx] = 0
        self.flags[idx] = False
        self._generate(idx, seeds)
        self.static_obs[idx] = self._static_channels(idx)

    # ----------------------------------------------------------- dynamics
    def step(self, actions: np.ndarray):
        """Advance every row by one action; returns ``(rewards, terminated, truncated)``."""
        actions = np.asarray(actions, dtype=np.int64)
        self.prev_agent = self.agent.copy()  # _events may read where the agent came from
        move = MOVES[actions]
        target = self.agent + move
        blocked = self.cells[self._rows, target[:, 0], target[:, 1]] == WALL
        moved = ~blocked
        self.agent = np.where(blocked[:, None], self.agent, target)
        rewards, terminated = self._events(moved)
        self.steps += 1
        truncated = (self.steps >= self.max_steps) & ~terminated
        return rewards, terminated, truncated

    def observe(self) -> np.ndarray:
        obs = self.static_obs.copy()
        obs[self._rows, self._agent_channel, self.agent[:, 0], self.agent[:, 1]] = 1
        return obs

    def cell_at(self, pos: np.ndarray) -> np.ndarray:
        return self.cells[self._rows, pos[:, 0], pos[:, 1]]

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array that defines the batch's levels and states (for snapshots and copies).

        Found, not listed: every public ndarray attribute that has one row per
        level (its leading axis follows ``num_envs``: checked on two probe cores
        of different sizes, so a constant that happens to have ``num_envs``
        entries is not mistaken for one), and every object's positions. An
        env's extra level arrays (keys, the partner, the monster) are therefore
        copied without being named, so a copy of a level cannot miss one.
        """
        named = {name: getattr(self, name) for name in self._per_level_names()}
        named.update({f"object_{name}": array for name, array in self.objects.items()})
        return named

    def _per_level_names(self) -> tuple[str, ...]:
        key = (type(self), json.dumps(self.params, sort_keys=True, default=str), self.distribution)
        if key not in _PER_LEVEL_NAMES:
            sizes = (3, 5)
            probes = [type(self)(n, self.distribution, **self.params) for n in sizes]
            names = [
                name
                for name in vars(probes[0])
                if not name.startswith("_")
                and name != "objects"
                and all(
                    isinstance(getattr(p, name, None), np.ndarray)
                    and getattr(p, name).ndim >= 1
                    and getattr(p, name).shape[0] == n
                    for p, n in zip(probes, sizes, strict=True)
                )
            ]
            _PER_LEVEL_NAMES[key] = tuple(names)
        return _PER_LEVEL_NAMES[key]

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        for name, current in self.arrays().items():
            if name not in arrays or arrays[name].shape != current.shape:
                raise ValueError(f"{self.env_id}: snapshot array {name!r} is missing or has the wrong shape")
            current[...] = arrays[name]

    def replicate(self, row: int, n: int) -> GridCore:
        """A core of ``n`` copies of this core's level in ``row`` (for batched search)."""
        clone = type(self)(n, self.distribution, **self.params)
        source = self.arrays()
        for name, array in clone.arrays().items():
            array[:] = source[name][row]
        return clone

    # ----------------------------------------------------------- exact state
    @property
    def state_dim(self) -> int:
        return 2 + len(self.flag_names)

    def get_states(self) -> np.ndarray:
        """Dynamic state of every row as ``(B, state_dim)`` ints.

        The level is fixed and time is not part of the state (planners work in
        the discounted, time-free model): ``set_states`` leaves the episode's
        step counter as it is.
        """
        return np.concatenate([self.agent, self.flags.astype(np.int64)], axis=1)

    def set_states(self, idx: np.ndarray, states: np.ndarray) -> None:
        states = np.asarray(states, dtype=np.int64).reshape(len(idx), self.state_dim)
        self.agent[idx] = states[:, :2]
        self.flags[idx] = states[:, 2:].astype(bool)

    def transition_rewards(self, states: np.ndarray, next_states: np.ndarray) -> dict[str, np.ndarray]:
        """Every declared reward for arbitrary transitions ``s -> s'`` of row 0's level.

        EPIC canonicalisation evaluates rewards on transitions the simulator may
        never produce; the suite's rewards depend on ``(s, s')`` only, so the
        event hook is run with the flags of ``s`` and the agent placed at ``s'``.
        """
        states, next_states = np.atleast_2d(states), np.atleast_2d(next_states)
        probe = self.replicate(0, len(states))
        probe.set_states(np.arange(len(states)), states)
        probe.prev_agent = states[:, :2].astype(np.int64).copy()
        probe.agent = next_states[:, :2].astype(np.int64).copy()
        moved = (states[:, :2] != next_states[:, :2]).any(axis=1)
        rewards, _ = probe._events(moved)
        return {name: np.asarray(value, dtype=np.float64) for name, value in rewards.items()}

    def feature_planes(self) -> tuple[tuple[str, ...], np.ndarray]:
        """Named static per-cell planes of every row's level ``(B, C, H, W)``: IRL's object features."""
        keep = [i for i, name in enumerate(self.channel_names) if name != "agent"]
        return tuple(self.channel_names[i] for i in keep), self.static_obs[:, keep]

    # ----------------------------------------------------------- rendering
    def render_ansi(self, i: int) -> str:
        chars = np.vectorize(lambda c: self.cell_chars.get(int(c), "?"))(self.cells[i])
        chars = chars.astype("<U1")
        for name in self.object_names:
            r, c = self.objects[name][i]
            if r >= 0:
                chars[r, c] = self.object_chars.get(name, name[:1].upper())
        r, c = self.agent[i]
        chars[r, c] = "@"
        return "\n".join("".join(row) for row in chars) + "\n"

    def render_rgb(self, i: int, tile: int = 16) -> np.ndarray:
        obs = self.observe()[i]
        image = np.full((self.height, self.width, 3), 24, dtype=np.uint8)
        for ch, name in enumerate(self.channel_names):
            image[obs[ch].astype(bool)] = self.colours.get(name, (200, 200, 200))
        return np.kron(image, np.ones((tile, tile, 1), dtype=np.uint8))

    # ----------------------------------------------------------- spaces
    @property
    def obs_shape(self) -> tuple[int, int, int]:
        return (len(self.channel_names), self.height, self.width)

    def single_observation_space(self) -> gym.spaces.Box:
        return gym.spaces.Box(0, 1, shape=self.obs_shape, dtype=np.uint8)

    def single_action_space(self) -> gym.spaces.Discrete:
        return gym.spaces.Discrete(len(ACTION_NAMES))


class ShiftEnv(gym.Env):
    """A shift environment: the batched core with batch size 1.

    ``step`` returns the ``specified`` reward; ``info["rewards"]`` holds every
    declared reward for the step.
    """

    core_cls: ClassVar[type[GridCore]]
    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 8}

    def __init__(self, distribution: str = "train", render_mode: str | None = None, **params):
        check_render_mode(self.core_cls.env_id, render_mode, self.metadata["render_modes"])
        self.core = self.core_cls(1, distribution, **params)
        self.distribution = distribution
        self.render_mode = render_mode
        self.observation_space = self.core.single_observation_space()
        self.action_space = self.core.single_action_space()
        self._base_seed: int | None = None
        self._episode = 0

    @property
    def reward_names(self) -> tuple[str, ...]:
        return self.core.reward_names

    @property
    def proxy_rewards(self) -> tuple[str, ...]:
        return self.core.proxy_rewards

    @property
    def expected_verdicts(self) -> dict[str, str]:
        return dict(self.core.expected_verdicts)

    @property
    def params(self) -> dict:
        return dict(self.core.params)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._base_seed, self._episode = int(seed), 0
        elif self._base_seed is None:
            self._base_seed = int(self.np_random.integers(2**63))
        if options and "level_seed" in options:
            level_seed = rng.as_seed_array([options["level_seed"]])
        else:
            level_seed = rng.level_seeds(np.array([self._base_seed]), np.array([self._episode]))
            self._episode += 1
        self.core.reset_levels(np.array([0]), level_seed)
        return self.core.observe()[0], {"level_seed": int(level_seed[0])}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"{self.core.env_id}: invalid action {action!r}")
        rewards, terminated, truncated = self.core.step(np.array([action]))
        info = {"rewards": {name: float(value[0]) for name, value in rewards.items()}}
        return (
            self.core.observe()[0],
            info["rewards"]["specified"],
            bool(terminated[0]),
            bool(truncated[0]),
            info,
        )

    def get_state(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.core.get_states()[0])

    def set_state(self, state) -> None:
        self.core.set_states(np.array([0]), np.array([state]))

    def render(self):
        if self.render_mode == "ansi":
            return self.core.render_ansi(0)
        if self.render_mode == "rgb_array":
            return self.core.render_rgb(0)
        return None


class ShiftVectorEnv(VectorEnv):
    """``num_envs`` levels stepped as one numpy batch, with same-step autoreset.

    On an episode's end the row is reset within the same ``step``: the returned
    observation is the next level's first, and the last one is in
    ``info["final_obs"]`` (a dense array, valid where ``info["_final_obs"]``).
    """

    core_cls: ClassVar[type[GridCore]]
    metadata = {"render_modes": ["ansi", "rgb_array"], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        distribution: str = "train",
        render_mode: str | None = None,
        task=None,
        **params,
    ):
        """``task``: any :class:`envs.task.Task` (default: the class's ``core_cls``)."""
        task = self.core_cls if task is None else task
        check_render_mode(task.env_id, render_mode, self.metadata["render_modes"])
        self.core = task(num_envs, distribution, **params)
        self.num_envs = self.core.num_envs
        self.distribution = distribution
        self.render_mode = render_mode
        self.single_observation_space = self.core.single_observation_space()
        self.single_action_space = self.core.single_action_space()
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._base_seed = np.zeros(self.num_envs, dtype=np.uint64)
        self._episode = np.zeros(self.num_envs, dtype=np.uint64)
        self._np_random_seed = None
        self._seeded = False

    def reset(self, *, seed=None, options: dict | None = None):
        if seed is None and not self._seeded:
            seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
        if seed is not None:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else seed
            if len(seeds) != self.num_envs:
                raise ValueError(f"reset: {len(seeds)} seeds for {self.num_envs} envs")
            self._base_seed = rng.as_seed_array(seeds)
            self._episode[:] = 0
            self._seeded = True
        all_rows = np.arange(self.num_envs)
        if options and "level_seeds" in options:
            level_seeds = rng.as_seed_array(options["level_seeds"])
            if level_seeds.shape != (self.num_envs,):
                raise ValueError(f"reset: {level_seeds.size} level_seeds for {self.num_envs} envs")
        else:
            level_seeds = rng.level_seeds(self._base_seed, self._episode)
            self._episode += np.uint64(1)
        self.core.reset_levels(all_rows, level_seeds)
        return self.core.observe(), {"level_seed": self.core.level_seed.copy()}

    def step(self, actions):
        actions = np.asarray(actions)
        n_actions = self.single_action_space.n
        if actions.shape != (self.num_envs,) or not np.all((actions >= 0) & (actions < n_actions)):
            raise ValueError(
                f"{self.core.env_id}: expected {self.num_envs} actions in [0, {n_actions}), got {actions!r}"
            )
        rewards, terminated, truncated = self.core.step(actions)
        done = terminated | truncated
        info: dict[str, Any] = {"rewards": rewards}
        if done.any():
            rows = np.flatnonzero(done)
            info["final_obs"] = self.core.observe()
            info["_final_obs"] = done
            seeds = rng.level_seeds(self._base_seed[rows], self._episode[rows])
            self._episode[rows] += np.uint64(1)
            self.core.reset_levels(rows, seeds)
        return (
            self.core.observe(),
            rewards["specified"].astype(np.float32),
            terminated,
            truncated,
            info,
        )

    def snapshot(self) -> dict[str, np.ndarray]:
        """The whole batch's state (levels, positions, seeds, episode counters), as arrays."""
        state = {f"core_{k}": v.copy() for k, v in self.core.arrays().items()}
        state.update(
            base_seed=self._base_seed.copy(), episode=self._episode.copy(), seeded=np.array(self._seeded)
        )
        return state

    def restore(self, state: dict[str, np.ndarray]) -> None:
        self.core.load_arrays({k[len("core_") :]: v for k, v in state.items() if k.startswith("core_")})
        self._base_seed = np.asarray(state["base_seed"], dtype=np.uint64).copy()
        self._episode = np.asarray(state["episode"], dtype=np.uint64).copy()
        self._seeded = bool(state["seeded"])

    def render(self):
        if self.render_mode == "ansi":
            return [self.core.render_ansi(i) for i in range(self.num_envs)]
        if self.render_mode == "rgb_array":
            return [self.core.render_rgb(i) for i in range(self.num_envs)]
        return None
