"""GymTask / GymBatch on tiny Gymnasium envs defined here: protocol, exact access, probe, messages.

The envs are small enough that every expected value (reachable states, rewards,
the shortest path) is computed independently in the test.
"""

from __future__ import annotations

import re
from collections import deque

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envs
from agents.planning import enumerate_level
from agents.policies import PlannerPolicy, UniformRandomPolicy
from envs.core import ShiftVectorEnv
from envs.gym_adapter import GymBatch, GymTask, Transition, fold_seed
from envs.task import ExactAccess, LevelBatch, exact_problem, require_exact
from evaluation.rollouts import rollout

MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right
MAX_STEPS = 30


class TinyRoom(gym.Env):
    """An open ``size x (size+1)`` room: start top-left, a goal and a lava cell placed from the seed.

    Reward 1 on entering the goal (ends the episode); lava ends it with 0;
    ``info["rewards"]["corner"]`` is 1 on every entry to the top-right corner.
    ``slip`` > 0 makes a move fail with that probability (drawn from ``np_random``).
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, size: int = 4, slip: float = 0.0, render_mode: str | None = None):
        self.size, self.width, self.slip = size, size + 1, slip
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0, 1, (3, size, size + 1), np.uint8)
        self.action_space = gym.spaces.Discrete(4)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        cells = [(r, c) for r in range(self.size) for c in range(self.width) if (r, c) != (0, 0)]
        goal, lava = self.np_random.choice(len(cells), size=2, replace=False)
        self.goal, self.lava = cells[int(goal)], cells[int(lava)]
        self.pos = (0, 0)
        return self._obs(), {}

    def _obs(self):
        obs = np.zeros((3, self.size, self.width), dtype=np.uint8)
        obs[(0, *self.pos)] = 1
        obs[(1, *self.goal)] = 1
        obs[(2, *self.lava)] = 1
        return obs

    def step(self, action):
        dr, dc = MOVES[int(action)]
        if self.slip and self.np_random.random() < self.slip:
            dr, dc = 0, 0
        r = min(max(self.pos[0] + dr, 0), self.size - 1)
        c = min(max(self.pos[1] + dc, 0), self.width - 1)
        self.pos = (r, c)
        at_goal = self.pos == self.goal
        info = {"rewards": {"corner": float(self.pos == (0, self.width - 1))}}
        return self._obs(), float(at_goal), at_goal or self.pos == self.lava, False, info

    def render(self):
        return np.kron(self._obs().max(axis=0)[:, :, None] * 255, np.ones((2, 2, 3), dtype=np.uint8))


class TinyRoomWithState(TinyRoom):
    def get_state(self):
        return self.pos

    def set_state(self, state):
        self.pos = (int(state[0]), int(state[1]))


class TinyRoomStringState(TinyRoom):
    """State access through a non-integer hashable (interned by the adapter)."""

    def get_state(self):
        return f"{self.pos[0]},{self.pos[1]}"

    def set_state(self, state):
        self.pos = tuple(int(v) for v in state.split(","))


for _name, _cls in {
    "GMSuiteTest/TinyRoom-v0": TinyRoom,
    "GMSuiteTest/TinyRoomState-v0": TinyRoomWithState,
    "GMSuiteTest/TinyRoomString-v0": TinyRoomStringState,
}.items():
    if _name not in gym.registry:
        gym.register(_name, entry_point=_cls, max_episode_steps=MAX_STEPS)


def lava_reward(t: Transition) -> float:
    return float(t.terminated and t.env.pos == t.env.lava)


REWARDS = {"intended": "reward", "specified": "reward", "corner": "info:rewards.corner", "lava": lava_reward}


class PosCodec:
    def get(self, env):
        return env.pos

    def set(self, env, state):
        env.pos = (int(state[0]), int(state[1]))


def make_task(gym_id="GMSuiteTest/TinyRoomState-v0", env_id="GMSuiteTest/Tiny-v0", **kwargs) -> GymTask:
    kwargs.setdefault("proxy_rewards", ("corner",))
    kwargs.setdefault("expected_verdicts", {"test": "robust"})
    return GymTask(
        env_id,
        {"train": {"size": 3}, "test": {"size": 4}},
        REWARDS,
        env=gym_id,
        action_names=("up", "down", "left", "right"),
        **kwargs,
    )


TASK = make_task()


def level(batch: GymBatch, row: int) -> tuple[tuple[int, int], tuple[int, int], int, int]:
    env = batch.envs[row]
    return env.goal, env.lava, env.size, env.width


def reference_model(goal, lava, height, width):
    """Independent BFS: states reachable from (0, 0) without crossing goal or lava, plus those."""
    start = (0, 0)
    seen, queue, transitions = {start}, deque([start]), {}
    while queue:
        s = queue.popleft()
        for a, (dr, dc) in enumerate(MOVES):
            n = (min(max(s[0] + dr, 0), height - 1), min(max(s[1] + dc, 0), width - 1))
            terminal = n in (goal, lava)
            transitions[(s, a)] = (n, float(n == goal), terminal)
            if n not in seen:
                seen.add(n)
                if not terminal:
                    queue.append(n)
    return seen, transitions


# ----------------------------------------------------------------- protocol
def test_protocol_conformance_and_declarations():
    batch = TASK(3, "test")
    assert isinstance(batch, LevelBatch) and isinstance(batch, ExactAccess)
    assert batch.params == {"size": 4, "id": "GMSuiteTest/TinyRoomState-v0"}
    assert batch.reward_names == ("intended", "specified", "corner", "lava")
    assert batch.max_steps == MAX_STEPS
    assert batch.single_action_space() == gym.spaces.Discrete(4)
    assert batch.single_observation_space().shape == (3, 4, 5)
    assert TASK.distribution_params == ("size",)
    assert TASK.shared_params({"size": 9, "id": "x", "other": 1}) == {"other": 1}
    batch.reset_levels(np.arange(3), np.array([5, 6, 7]))
    obs = batch.observe()
    assert obs.shape == (3, 3, 4, 5) and obs.dtype == np.uint8
    assert batch.level_seed.tolist() == [5, 6, 7]
    np.testing.assert_array_equal(batch.get_states(), np.zeros((3, 2), dtype=np.int64))
    assert batch.render_rgb(0).shape == (8, 10, 3) and batch.render_rgb(0).dtype == np.uint8


def test_a_level_is_a_function_of_its_seed():
    a, b = TASK(2, "test"), TASK(3, "test")
    a.reset_levels(np.arange(2), np.array([11, 2**63 - 5]))
    b.reset_levels(np.array([2, 0]), np.array([11, 2**63 - 5]))
    assert level(a, 0) == level(b, 2) and level(a, 1) == level(b, 0)
    assert fold_seed(2**63 - 5) < 2**31 and fold_seed(11) == 11


def test_rewards_termination_and_frozen_rows():
    batch = make_task(env_id="GMSuiteTest/TinyEdited-v0")(2, "train")  # levels edited: own task
    batch.reset_levels(np.arange(2), np.array([0, 1]))
    env = batch.envs[0]
    env.goal, env.lava = (0, 1), (2, 2)  # row 0: the goal is one step to the right
    batch.envs[1].goal, batch.envs[1].lava = (2, 2), (0, 1)  # row 1: lava there
    rewards, terminated, truncated = batch.step(np.array([3, 3]))
    assert rewards["intended"].tolist() == [1.0, 0.0] and rewards["specified"].tolist() == [1.0, 0.0]
    assert rewards["lava"].tolist() == [0.0, 1.0]
    assert terminated.tolist() == [True, True] and truncated.tolist() == [False, False]
    # both rows are frozen: stepping them again changes nothing and reports nothing
    rewards, terminated, truncated = batch.step(np.array([1, 1]))
    assert all(r.tolist() == [0.0, 0.0] for r in rewards.values())
    assert terminated.tolist() == [False, False] and truncated.tolist() == [False, False]
    assert batch.get_states().tolist() == [[0, 1], [0, 1]]
    assert batch.steps.tolist() == [1, 1]
    batch.reset_levels(np.array([0]), np.array([0]))
    assert batch.steps.tolist() == [0, 1] and not batch.frozen[0] and batch.frozen[1]


def test_corner_reward_from_info_and_truncation_at_max_steps():
    batch = make_task(env_id="GMSuiteTest/TinyEdited-v0")(1, "train")
    batch.reset_levels(np.array([0]), np.array([3]))
    batch.envs[0].goal, batch.envs[0].lava = (2, 0), (2, 1)
    corner = []
    for t in range(MAX_STEPS):
        rewards, terminated, truncated = batch.step(np.array([3]))  # right, into the corner, then stay
        corner.append(rewards["corner"][0])
        assert not terminated[0]
        assert truncated[0] == (t == MAX_STEPS - 1)
    assert corner[:3] == [0.0, 0.0, 1.0] and all(c == 1.0 for c in corner[2:])
    assert batch.frozen[0]


def test_missing_info_key_is_named():
    task = GymTask(
        "GMSuiteTest/TinyInfo-v0",
        {"train": {"size": 3}, "test": {"size": 4}},
        {"intended": "reward", "specified": "info:rewards.nope"},
        env="GMSuiteTest/TinyRoomState-v0",
    )
    batch = task(1)
    batch.reset_levels(np.array([0]), np.array([0]))
    with pytest.raises(ValueError, match="'nope'"):
        batch.step(np.array([1]))


# ----------------------------------------------------------------- bad declarations
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rewards": {"specified": "reward"}}, "must include 'intended'"),
        ({"rewards": {"intended": "reward"}}, "must include 'specified'"),
        ({"proxy_rewards": ("nope",)}, "proxy 'nope' is not a declared reward"),
        ({"distributions": {"train": {"id": "NoSuchEnv-v9"}, "test": {}}}, "'NoSuchEnv-v9'"),
        ({"distributions": {"train": {}}}, "at least one shifted"),
        ({"rewards": {"intended": "reward", "specified": 3}}, "reward 'specified' must be"),
        ({"expected_verdicts": {"test": "great"}}, "'great'"),
        ({"expected_verdicts": {"tset": "robust"}}, "unknown distribution 'tset'"),
        ({"expected_goals": {"test": "corners"}}, "expected goal 'corners'"),
    ],
)
def test_bad_declarations_fail_at_construction(kwargs, message):
    args = {
        "env_id": "GMSuiteTest/Bad-v0",
        "distributions": {"train": {"size": 3}, "test": {"size": 4}},
        "rewards": {"intended": "reward", "specified": "reward", "corner": "info:rewards.corner"},
        "env": "GMSuiteTest/TinyRoomState-v0",
    }
    args.update(kwargs)
    env_id, dists, rewards = args.pop("env_id"), args.pop("distributions"), args.pop("rewards")
    with pytest.raises(ValueError, match=message):
        GymTask(env_id, dists, rewards, **args)


def test_an_expected_goal_may_be_one_nobody_declared_named_as_the_judge_names_found_goals():
    task = GymTask(
        "GMSuiteTest/FoundGoalExpected-v0",
        {"train": {"size": 3}, "test": {"size": 4}},
        {"intended": "reward", "specified": "reward"},
        env="GMSuiteTest/TinyRoomState-v0",
        expected_verdicts={"test": "goal_misgeneralization"},
        expected_goals={"test": "reach:right_border"},
    )
    assert task.expected_goals == {"test": "reach:right_border"}


def test_unknown_distribution_and_parameter_are_named():
    with pytest.raises(ValueError, match=r"unknown distribution 'tset'; known: \['test', 'train'\]"):
        TASK(2, "tset")
    with pytest.raises(ValueError, match="does not take parameters"):
        TASK(2, "train", colour="red")
    with pytest.raises(ValueError, match="num_envs"):
        TASK(0, "train")


def test_unregistered_gym_env_is_not_a_task_until_wrapped():
    with pytest.raises(ValueError, match="not a shift task"):
        envs.task("GMSuiteTest/TinyRoomState-v0")
    task = envs.register_task(make_task(env_id="GMSuiteTest/TinyRegistered-v0"))
    assert envs.task("GMSuiteTest/TinyRegistered-v0") is task


# ----------------------------------------------------------------- exact access
def test_enumerate_level_matches_an_independent_bfs():
    batch = TASK(4, "test")
    batch.reset_levels(np.arange(4), np.arange(4) + 100)
    for row in range(4):
        goal, lava, height, width = level(batch, row)
        states, transitions = reference_model(goal, lava, height, width)
        model = enumerate_level(batch, row)
        assert {tuple(s) for s in model.states.tolist()} == states
        for (s, a), (succ, reward, terminal) in transitions.items():
            i = model.index_of(np.array([s]))[0]
            assert tuple(model.states[model.next_state[i, a]]) == succ
            assert model.rewards["intended"][i, a] == reward
            assert model.terminal[i, a] == terminal
            assert model.rewards["lava"][i, a] == float(succ == lava)


@settings(max_examples=25, deadline=None)
@given(
    seeds=st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=3),
    actions=st.lists(st.integers(0, 3), min_size=1, max_size=12),
)
def test_state_round_trip_and_replicas_follow_the_original(seeds, actions):
    batch = TASK(len(seeds), "test")
    rows = np.arange(len(seeds))
    batch.reset_levels(rows, np.array(seeds, dtype=np.uint64))
    replicas = [batch.replicate(r, 2) for r in rows]
    for a in actions:
        states = batch.get_states()
        live = np.flatnonzero(~batch.frozen)
        batch.set_states(live, states[live])  # round trip: set what get gave, get it back
        np.testing.assert_array_equal(batch.get_states(), states)
        frozen = batch.frozen.copy()
        rewards, terminated, truncated = batch.step(np.full(len(seeds), a))
        for r, replica in zip(rows, replicas, strict=True):
            if frozen[r]:
                continue
            rep_rewards, rep_term, rep_trunc = replica.step(np.array([a, a]))
            assert (replica.get_states() == batch.get_states()[r]).all()
            assert rep_term.tolist() == [terminated[r]] * 2 and rep_trunc.tolist() == [truncated[r]] * 2
            for name in batch.reward_names:
                assert rep_rewards[name].tolist() == [rewards[name][r]] * 2
            np.testing.assert_array_equal(replica.observe()[0], batch.observe()[r])


def test_replicate_is_a_copy_in_the_current_state():
    batch = TASK(2, "test")
    batch.reset_levels(np.arange(2), np.array([8, 9]))
    batch.step(np.array([1, 3]))
    clone = batch.replicate(1, 3)
    assert clone.num_envs == 3 and clone.level_seed.tolist() == [9, 9, 9]
    assert clone.get_states().tolist() == [batch.get_states()[1].tolist()] * 3
    assert clone.steps.tolist() == [1, 1, 1]
    np.testing.assert_array_equal(clone.observe()[2], batch.observe()[1])
    assert clone.envs[0].goal == batch.envs[1].goal


def test_stochastic_env_is_named_with_the_action():
    task = GymTask(
        "GMSuiteTest/TinySlip-v0",
        {"train": {"size": 3, "slip": 0.5}, "test": {"size": 4, "slip": 0.5}},
        REWARDS,
        env="GMSuiteTest/TinyRoomState-v0",
        action_names=("up", "down", "left", "right"),
    )
    batch = task(2)
    problem = exact_problem(batch)
    assert problem is not None and "GMSuiteTest/TinyRoomState-v0 is stochastic" in problem
    assert re.search(r"action \d \((up|down|left|right)\) from the start state", problem)
    with pytest.raises(ValueError, match="stochastic"):
        require_exact(batch)
    assert task.check_exact("test") == task.check_exact("test", size=4)
    assert make_task().check_exact("train") is None


def test_env_without_state_access_says_what_to_add():
    task = make_task("GMSuiteTest/TinyRoom-v0", env_id="GMSuiteTest/TinyNoState-v0")
    batch = task(2)
    batch.reset_levels(np.arange(2), np.arange(2))
    problem = exact_problem(batch)
    for needed in ("get_state()/set_state()", "state_codec", "state_key"):
        assert needed in problem
    with pytest.raises(ValueError, match="state_codec"):
        batch.get_states()
    envs.register_task(make_task("GMSuiteTest/TinyRoom-v0", env_id="GMSuiteTest/TinyNoStateRegistered-v0"))
    with pytest.raises(ValueError, match="state_key"):
        rollout(PlannerPolicy("specified"), "GMSuiteTest/TinyNoStateRegistered-v0", "train", n_episodes=1)
    # rollouts of observation-only policies still work, without states
    result = rollout(UniformRandomPolicy(0), "GMSuiteTest/TinyNoStateRegistered-v0", "train", n_episodes=4)
    assert result.states.shape[2] == 0 and result.num_episodes == 4


@pytest.mark.parametrize(
    "access",
    [
        {"gym_id": "GMSuiteTest/TinyRoom-v0", "state_codec": PosCodec()},
        {"gym_id": "GMSuiteTest/TinyRoom-v0", "state_key": lambda env: env.pos},
        {"gym_id": "GMSuiteTest/TinyRoom-v0", "state_key": lambda env: f"at {env.pos}"},
        {"gym_id": "GMSuiteTest/TinyRoomString-v0"},
    ],
    ids=["codec", "deepcopy-int-key", "deepcopy-interned-key", "interned-get-state"],
)
def test_every_kind_of_state_access_gives_the_same_model(access):
    access = dict(access)
    task = make_task(access.pop("gym_id"), env_id="GMSuiteTest/TinyAccess-v0", **access)
    batch = task(3, "test")
    batch.reset_levels(np.arange(3), np.array([4, 5, 6]))
    assert exact_problem(batch) is None
    for row in range(3):
        goal, lava, height, width = level(batch, row)
        states, transitions = reference_model(goal, lava, height, width)
        model = enumerate_level(batch, row)
        assert model.num_states == len(states)
        expanded = {s for s, _ in transitions}
        if model.states.shape[1] == 2:  # states are positions (not interned ids): check every successor
            for (s, a), (succ, _, _) in transitions.items():
                i = model.index_of(np.array([s]))[0]
                assert tuple(model.states[model.next_state[i, a]]) == succ
        assert model.rewards["intended"].sum() == sum(t[1] for t in transitions.values())
        absorbing = model.num_states - len(expanded)  # reached only by ending the episode
        assert model.terminal.sum() == 4 * absorbing + sum(t[2] for t in transitions.values())


def test_observation_after_set_states_without_an_observation_function():
    batch = make_task(env_id="GMSuiteTest/TinyObs-v0")(1, "test")
    batch.reset_levels(np.array([0]), np.array([1]))
    batch.get_states()  # the start state's observation is now known
    first = batch.observe()
    batch.step(np.array([1]))
    batch.set_states(np.array([0]), np.array([[0, 0]]))
    np.testing.assert_array_equal(batch.observe(), first)
    batch.set_states(np.array([0]), np.array([[3, 4]]))  # never seen: the message says what to do
    with pytest.raises(ValueError, match="observation=\\(env, obs\\)"):
        batch.observe()


# ----------------------------------------------------------------- snapshots, vector env, rollouts
def test_load_arrays_restarts_the_episodes_in_progress():
    batch = TASK(2, "test")
    batch.reset_levels(np.arange(2), np.array([21, 22]))
    start = batch.observe()
    batch.step(np.array([1, 3]))
    snapshot = {k: v.copy() for k, v in batch.arrays().items()}
    other = TASK(2, "test")
    other.load_arrays(snapshot)
    assert other.level_seed.tolist() == [21, 22] and other.steps.tolist() == [0, 0]
    np.testing.assert_array_equal(other.observe(), start)
    with pytest.raises(ValueError, match="'steps'"):
        other.load_arrays({"level_seed": snapshot["level_seed"]})


def test_shift_vector_env_trains_on_a_gym_task():
    vec = ShiftVectorEnv(4, "train", task=TASK)
    obs, info = vec.reset(seed=3)
    assert obs.shape == (4, 3, 3, 4) and len(info["level_seed"]) == 4
    seeds = info["level_seed"].copy()
    done_any = False
    rng = np.random.default_rng(0)
    for _ in range(2 * MAX_STEPS):
        obs, reward, terminated, truncated, info = vec.step(rng.integers(0, 4, 4))
        assert set(info["rewards"]) == set(REWARDS)
        done_any |= bool((terminated | truncated).any())
    assert done_any and not (vec.core.level_seed == seeds).all()  # rows were reset to new levels
    state = vec.snapshot()
    vec.restore(state)


def test_planner_rollout_reaches_every_goal():
    task = envs.register_task(make_task(env_id="GMSuiteTest/TinyPlanned-v0"))
    result = rollout(PlannerPolicy("specified"), task.env_id, "test", n_episodes=8)
    assert result.returns["intended"].tolist() == [1.0] * 8
    assert result.states.shape[2] == 2
    batch = task(8, "test")
    batch.reset_levels(np.arange(8), result.level_seeds.astype(np.uint64))
    for row in range(8):  # each episode is a shortest path (BFS over the room, avoiding lava)
        goal, lava, height, width = level(batch, row)
        dist, queue = {(0, 0): 0}, deque([(0, 0)])
        while queue:
            s = queue.popleft()
            for dr, dc in MOVES:
                n = (min(max(s[0] + dr, 0), height - 1), min(max(s[1] + dc, 0), width - 1))
                if n not in dist and n != lava:
                    dist[n] = dist[s] + 1
                    if n != goal:
                        queue.append(n)
        assert result.lengths[row] == dist[goal]


def test_declared_channel_names_give_the_goal_library_the_observed_objects():
    """TinyRoom has no feature planes; naming its observation's channels lets the goal library read
    the goal and the lava off it, and "enters the cell where `goal` is" pays where the declared
    reward does, on every transition of the level's exact model."""
    from evaluation.goals import Goal, goal_table, observed_objects
    from evaluation.levels import LevelBank

    task = envs.register_task(
        make_task(env_id="GMSuiteTest/TinyChannels-v0", channel_names=("agent", "goal", "lava"))
    )
    played = rollout(PlannerPolicy("specified"), task.env_id, "test", n_episodes=3)
    for level in LevelBank().levels_of(played):
        assert set(observed_objects(level)) == {"goal", "lava"}  # the agent's own plane is never a goal
        np.testing.assert_array_equal(
            goal_table(Goal("reach", "object=goal"), level) > 0, level.model.rewards["specified"] > 0
        )


def test_an_observation_not_indexed_like_the_state_gives_no_objects():
    """An agent-centred view (here: the grid rolled so the agent sits at the origin) has no channel
    marking the state's agent cell: the library reads nothing off it rather than misplace objects."""
    from evaluation.goals import observed_objects
    from evaluation.levels import LevelBank

    def agent_centred(env, obs):
        return np.roll(env._obs(), (-env.pos[0], -env.pos[1]), axis=(1, 2))

    task = envs.register_task(
        make_task(
            env_id="GMSuiteTest/TinyCentred-v0",
            channel_names=("agent", "goal", "lava"),
            observation=agent_centred,
            observation_space=gym.spaces.Box(0, 1, (3, 4, 5), np.uint8),
        )
    )
    played = rollout(PlannerPolicy("specified"), task.env_id, "test", n_episodes=2)
    assert all(observed_objects(level) == {} for level in LevelBank().levels_of(played))
