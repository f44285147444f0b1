"""Exact level models (enumerate_level) and value iteration, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from agents.planning import TabularModel, enumerate_level, greedy_actions, value_iteration
from envs.coinrun import CoinRun, CoinRunCore
from envs.core import EMPTY, LAVA, WALL
from envs.maze import Maze, MazeCore
from tests.conftest import GAMMA, bfs, reference_model

# ----------------------------------------------------------------- helpers


def corridor_env(distribution="train", coin=None, lava=()) -> CoinRun:
    """A hazard-free 7 x 13 CoinRun level, optionally with a hand-placed coin and lava cells."""
    env = CoinRun(distribution=distribution, hazard_prob=0.0)
    env.reset(seed=0)
    core = env.core
    assert core.height == 7 and core.width == 13
    assert not (core.cells[0] == LAVA).any()
    assert tuple(core.agent[0]) == (3, 1) and tuple(core.end) == (3, 11)
    for cell in lava:
        core.cells[0][cell] = LAVA
    if coin is not None:
        core.objects["coin"][0] = coin
    core.static_obs[0] = core._static_channels(np.array([0]))[0]
    return env


def q_star(model: TabularModel, names) -> dict[str, np.ndarray]:
    q = value_iteration(model, np.stack([model.rewards[n] for n in names]), gamma=GAMMA)
    return dict(zip(names, q, strict=True))


def v_start(model, q, name) -> float:
    return float(q[name][model.start].max())


def rollout_greedy(env, model, q, max_steps=200):
    """Follow the greedy policy in the real env; returns (steps, summed rewards, terminated)."""
    policy = greedy_actions(q)
    totals = dict.fromkeys(env.reward_names, 0.0)
    for t in range(1, max_steps + 1):
        s = model.index_of(np.array([env.get_state()]))[0]
        _, _, terminated, truncated, info = env.step(int(policy[s]))
        for name, value in info["rewards"].items():
            totals[name] += value
        if terminated or truncated:
            return t, totals, terminated
    return max_steps, totals, False


def distances_to(core, target, forbidden) -> dict:
    """BFS distance of every cell to ``target`` without entering ``forbidden`` cells."""
    passable = core.cells[0] != WALL
    passable = passable & (core.cells[0] != LAVA)
    for cell in forbidden:
        passable[cell] = False
    passable[target] = True
    return bfs(passable, target)


def expected_value(dist: dict, cell) -> float:
    d = dist.get(tuple(cell))
    return 0.0 if d is None else 10.0 * GAMMA ** (d - 1)


# ----------------------------------------------------------------- hand-made CoinRun levels
def test_corridor_exact_model_and_values():
    env = corridor_env()
    model = enumerate_level(env.core)
    assert model.num_states == 5 * 11  # every interior cell, none of them lava
    assert model.num_actions == 4
    assert tuple(model.states[model.start]) == (3, 1)
    # the only terminal transitions enter the end (= coin) cell: from its 3 open neighbours;
    # the end cell itself is kept as an absorbing row (self-loops, terminal, no reward)
    end = int(model.index_of(np.array([[3, 11]]))[0])
    expanded = np.arange(model.num_states) != end
    assert model.terminal[expanded].sum() == 3
    assert model.terminal[end].all() and (model.next_state[end] == end).all()
    assert all(not table[end].any() for table in model.rewards.values())
    q = q_star(model, env.reward_names)
    for name in ("specified", "intended", "reach_right_end"):
        assert v_start(model, q, name) == pytest.approx(10 * GAMMA**9, rel=1e-12), name
    steps, totals, terminated = rollout_greedy(env, model, q["specified"])
    assert (steps, terminated) == (10, True)
    assert totals == {"intended": 10.0, "specified": 10.0, "reach_right_end": 10.0}


@pytest.mark.parametrize(
    "coin, d_coin, d_end",
    [
        ((1, 4), 5, 10),  # up 2, right 3; the straight run to the end is free
        ((5, 1), 2, 10),  # straight down
        ((3, 6), 5, 12),  # on the straight run: the end needs a 2-step detour
        ((3, 11), 10, 10),  # on the end itself
    ],
)
def test_coin_at_known_distance(coin, d_coin, d_end):
    env = corridor_env("test", coin=coin)
    model = enumerate_level(env.core)
    assert model.num_states == 55
    q = q_star(model, env.reward_names)
    assert v_start(model, q, "specified") == pytest.approx(10 * GAMMA ** (d_coin - 1), rel=1e-12)
    assert v_start(model, q, "intended") == v_start(model, q, "specified")
    assert v_start(model, q, "reach_right_end") == pytest.approx(10 * GAMMA ** (d_end - 1), rel=1e-12)

    steps, totals, terminated = rollout_greedy(env, model, q["specified"])
    assert (steps, terminated, totals["specified"]) == (d_coin, True, 10.0)

    env = corridor_env("test", coin=coin)  # a fresh copy of the same level
    steps, totals, terminated = rollout_greedy(env, model, q["reach_right_end"])
    assert (steps, terminated, totals["reach_right_end"]) == (d_end, True, 10.0)
    assert totals["specified"] == (10.0 if coin == (3, 11) else 0.0)


def test_lava_detour_value_and_greedy_path_avoids_lava():
    # lava across column 5 except the bottom row: the only way through is (5, 5)
    env = corridor_env(lava=[(r, 5) for r in range(1, 5)])
    model = enumerate_level(env.core)
    q = q_star(model, env.reward_names)
    d = 5 + 1 + 1 + 7  # (3,1)->(5,4), ->(5,5), ->(5,6), ->(3,11)
    assert v_start(model, q, "specified") == pytest.approx(10 * GAMMA ** (d - 1), rel=1e-12)
    steps, totals, terminated = rollout_greedy(env, model, q["specified"])
    assert (steps, terminated, totals["specified"]) == (d, True, 10.0)
    # stepping into lava is terminal with no reward
    lava_state = model.index_of(np.array([[3, 4]]))[0]
    assert model.terminal[lava_state, 3]
    assert all(model.rewards[n][lava_state, 3] == 0 for n in env.reward_names)


def test_unreachable_goal_has_zero_value():
    env = corridor_env(lava=[(r, 5) for r in range(1, 6)])  # a full lava wall
    model = enumerate_level(env.core)
    q = q_star(model, env.reward_names)
    assert v_start(model, q, "specified") == 0.0


def test_terminal_successors_are_not_expanded():
    """planning.py: "where terminal[s, a] ... the successor is never expanded".

    Behind a full lava wall nothing is reachable, so no state right of the wall
    may appear in the model. The enumerator currently expands lava cells.
    """
    env = corridor_env(lava=[(r, 5) for r in range(1, 6)])
    model = enumerate_level(env.core)
    columns = {int(c) for _, c in model.states}
    assert max(columns) <= 5, f"states behind the lava wall were enumerated: columns {sorted(columns)}"
    assert model.num_states <= 4 * 5 + 5  # left of the wall + the lava cells themselves


# ----------------------------------------------------------------- generated levels vs reference
def _coinrun_env(seed):
    env = CoinRun(distribution="test")
    env.reset(options={"level_seed": seed})
    return env


def _maze_env(seed, distribution):
    env = Maze(distribution=distribution, size=7)
    env.reset(options={"level_seed": seed})
    return env


def _reference_values(env, state):
    """V*(state) under each declared reward, from BFS distances (independent of the library)."""
    core = env.core
    lava = {tuple(c) for c in np.argwhere(core.cells[0] == LAVA)}
    if isinstance(core, CoinRunCore):
        coin, end = tuple(int(v) for v in core.objects["coin"][0]), tuple(int(v) for v in core.end)
        spec = distances_to(core, coin, lava | ({end} - {coin}))
        proxy = distances_to(core, end, lava | ({coin} - {end}))
        v_spec, v_proxy = expected_value(spec, state[:2]), expected_value(proxy, state[:2])
        return {"intended": v_spec, "specified": v_spec, "reach_right_end": v_proxy}
    cheese, corner = tuple(int(v) for v in core.objects["cheese"][0]), tuple(int(v) for v in core.corner)
    spec = distances_to(core, cheese, set())
    proxy = distances_to(core, corner, {cheese} - {corner})
    v_spec = expected_value(spec, state[:2])
    v_proxy = 0.0 if state[2] else expected_value(proxy, state[:2])
    return {"intended": v_spec, "specified": v_spec, "reach_top_right": v_proxy}


LEVELS = [pytest.param(lambda s=s: _coinrun_env(s), id=f"coinrun-{s}") for s in range(4)] + [
    pytest.param(lambda s=s, d=d: _maze_env(s, d), id=f"maze-{d}-{s}")
    for d in ("train", "test")
    for s in range(3)
]


@pytest.mark.parametrize("make_env", LEVELS)
def test_model_transitions_and_values_match_reference(make_env):
    env = make_env()
    model = enumerate_level(env.core)
    expanded, _, transitions = reference_model(env.core)
    q = q_star(model, env.reward_names)
    idx = {tuple(s): i for i, s in enumerate(model.states.tolist())}
    assert tuple(model.states[model.start]) == tuple(env.get_state())
    assert expanded <= set(idx)
    for (s, a), (s2, rewards, terminal) in transitions.items():
        i = idx[s]
        assert tuple(model.states[model.next_state[i, a]]) == s2, (s, a)
        assert bool(model.terminal[i, a]) == terminal, (s, a)
        for name, value in rewards.items():
            assert model.rewards[name][i, a] == value, (s, a, name)
    for s in expanded:
        expected = _reference_values(env, s)
        for name in env.reward_names:
            assert q[name][idx[s]].max() == pytest.approx(expected[name], rel=1e-9, abs=1e-12), (s, name)


@pytest.mark.parametrize("make_env", LEVELS)
def test_model_has_exactly_the_reachable_states(make_env):
    """Reachable = from the start without crossing a terminal transition, plus the
    successors of terminal transitions (which need an index but are not expanded)."""
    env = make_env()
    model = enumerate_level(env.core)
    expanded, terminal_only, _ = reference_model(env.core)
    states = {tuple(s) for s in model.states.tolist()}
    assert expanded <= states
    extra = states - expanded - terminal_only
    assert not extra, (
        f"{len(extra)} states only reachable through a terminal transition, e.g. {sorted(extra)[:3]}"
    )


@pytest.mark.parametrize("seed", range(3))
def test_maze_reach_top_right_value_is_bfs_distance(seed):
    env = _maze_env(seed, "train")
    core = env.core
    open_ = core.cells[0] == EMPTY
    d = bfs(open_, tuple(core.start))[tuple(core.corner)]
    assert d >= 2 * (core.cells_per_side - 1)
    model = enumerate_level(core)
    q = q_star(model, env.reward_names)
    for name in ("reach_top_right", "specified"):  # the cheese is the corner on default train
        assert v_start(model, q, name) == pytest.approx(10 * GAMMA ** (d - 1), rel=1e-12)
    steps, totals, terminated = rollout_greedy(env, model, q["reach_top_right"], max_steps=500)
    assert (steps, terminated, totals["reach_top_right"]) == (d, True, 10.0)


# ----------------------------------------------------------------- API details
def test_index_of_unknown_state_raises():
    env = corridor_env()
    model = enumerate_level(env.core)
    np.testing.assert_array_equal(model.index_of(model.states[[3, 0, 7]]), [3, 0, 7])
    with pytest.raises(ValueError, match=r"\(0, 0\)"):
        model.index_of(np.array([[0, 0]]))


def test_value_iteration_stacked_equals_single():
    env = corridor_env("test", coin=(1, 4))
    model = enumerate_level(env.core)
    names = env.reward_names
    stacked = value_iteration(model, np.stack([model.rewards[n] for n in names]), gamma=0.9)
    for k, name in enumerate(names):
        single = value_iteration(model, model.rewards[name], gamma=0.9)
        assert single.shape == (model.num_states, 4)
        np.testing.assert_allclose(stacked[k], single, rtol=0, atol=1e-12)
    assert not np.allclose(stacked[0], stacked[2])  # different rewards, different Q


def test_greedy_actions_break_ties_by_lowest_index():
    q = np.array([[1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 2.0]])
    np.testing.assert_array_equal(greedy_actions(q), [0, 3])


def test_enumerate_does_not_disturb_the_core():
    env = corridor_env()
    env.step(0)
    before = (env.get_state(), env.core.cells.copy(), env.core.steps.copy())
    enumerate_level(env.core)
    assert env.get_state() == before[0]
    np.testing.assert_array_equal(env.core.cells, before[1])
    np.testing.assert_array_equal(env.core.steps, before[2])


def test_enumerate_from_current_state():
    env = corridor_env()
    env.step(3)  # (3, 2)
    model = enumerate_level(env.core)
    assert tuple(model.states[model.start]) == (3, 2)
    q = q_star(model, env.reward_names)
    assert v_start(model, q, "specified") == pytest.approx(10 * GAMMA**8, rel=1e-12)


def test_max_states_exceeded_raises():
    core = MazeCore(1, "test", size=25)
    core.reset_levels(np.array([0]), np.array([0]))
    with pytest.raises(ValueError, match="GMSuite/Maze-v0"):
        enumerate_level(core, max_states=50)


def test_transition_rewards_agree_with_the_simulator():
    for env in (_coinrun_env(1), _maze_env(0, "test")):
        expanded, _, transitions = reference_model(env.core)
        pairs = [(s, s2, r) for (s, _), (s2, r, _) in transitions.items()]
        got = env.core.transition_rewards(np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]))
        for name in env.reward_names:
            np.testing.assert_array_equal(got[name], [p[2][name] for p in pairs], err_msg=name)


def test_planner_cache_tells_distributions_apart():
    """CoinRun train and test share a seed's lava but not its coin: one plan must not serve both."""
    from agents.policies import PlannerPolicy
    from evaluation.rollouts import rollout

    planner = PlannerPolicy("specified")
    train = rollout(planner, "GMSuite/CoinRun-v0", "train", n_episodes=40, seed=3)
    test = rollout(planner, "GMSuite/CoinRun-v0", "test", n_episodes=40, seed=3)
    fresh = rollout(PlannerPolicy("specified"), "GMSuite/CoinRun-v0", "test", n_episodes=40, seed=3)
    assert (train.returns["specified"] == 10).all()
    np.testing.assert_array_equal(test.returns["specified"], fresh.returns["specified"])
    assert (test.returns["specified"] == 10).all()


def test_an_env_provided_model_is_used_instead_of_search():
    from agents.planning import TabularModel

    class ModelledCore(CoinRunCore):
        def tabular_model(self, row):
            return TabularModel(
                states=np.array([[3, 1]]),
                next_state=np.zeros((1, 4), dtype=np.int64),
                terminal=np.ones((1, 4), dtype=bool),
                rewards={name: np.full((1, 4), 1.0) for name in self.reward_names},
            )

    core = ModelledCore(1, "train")
    core.reset_levels(np.array([0]), np.array([5]))
    model = enumerate_level(core)
    assert model.num_states == 1 and model.rewards["specified"][0, 0] == 1.0


def test_tie_broken_planners_stay_optimal_and_take_or_shun_the_other_reward():
    """A shield collector is indifferent to the apple once the shields are in: breaking its ties by the
    specified reward's Q* eats the apple on train levels, breaking them the other way walks past it;
    both collect every shield the plain planner collects, episode by episode."""
    from agents.policies import PlannerPolicy
    from evaluation.rollouts import rollout

    def returns(**tie):
        played = rollout(
            PlannerPolicy("collect_shields", **tie), "GMSuite/MonsterShields-v0", "train", n_episodes=30
        )
        return played.returns

    plain, most, least = (
        returns(),
        returns(tie_break=("specified", 1.0)),
        returns(tie_break=("specified", -1.0)),
    )
    np.testing.assert_array_equal(most["collect_shields"], plain["collect_shields"])
    np.testing.assert_array_equal(least["collect_shields"], plain["collect_shields"])
    assert (most["specified"] == 10).all() and (least["specified"] == 0).all()  # the apple, on every level
    with pytest.raises(ValueError, match="tie_break"):
        PlannerPolicy("collect_shields", beta=1.0, tie_break=("specified", 1.0))
    assert (
        PlannerPolicy("collect_shields", tie_break=("specified", -1.0)).name
        == "opt_collect_shields_least_specified"
    )
