"""MonsterShields: placement, solvability, the monster rule, shields and the collect_shields proxy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.planning import DEFAULT_GAMMA, enumerate_level, value_iteration
from envs.core import EMPTY, WALL
from envs.monstershields import APPLE_REWARD, MonsterShieldsCore, monster_step
from tests.conftest import make

ENV_ID = "GMSuite/MonsterShields-v0"
seeds = st.integers(min_value=0, max_value=2**64 - 1)
UP, DOWN, LEFT, RIGHT = range(4)


def _core(seed, distribution="train", **params):
    core = MonsterShieldsCore(1, distribution, **params)
    core.reset_levels(np.array([0]), np.array([seed], dtype=np.uint64))
    return core


def _dist(a, b) -> int:
    return int(np.abs(np.asarray(a) - np.asarray(b)).sum())


@settings(max_examples=60, deadline=None)
@given(size=st.sampled_from([7, 9]), shields=st.integers(1, 4), seed=seeds)
def test_guarded_levels_are_well_formed(size, shields, seed):
    core = _core(seed, "train", size=size, num_shields=shields)
    cells, start = core.cells[0], (size - 2, size // 2)
    assert (cells[[0, -1], :] == WALL).all() and (cells[:, [0, -1]] == WALL).all()
    assert (cells[1:-1, 1:-1] == EMPTY).all()
    assert tuple(core.agent[0]) == start
    alive, monster = core.monster_state()
    assert alive[0] and core.flags[0, core._monster0 :].sum() == 1
    apple, shield_cells = tuple(core.apple[0]), [tuple(p) for p in core.shields[0].tolist()]
    objects = [apple, tuple(monster[0]), *shield_cells]
    assert len(set(objects)) == len(objects) and start not in objects
    assert all(cells[p] == EMPTY for p in objects)
    assert _dist(apple, start) >= 3 and _dist(monster[0], start) >= 3
    assert 1 <= _dist(monster[0], apple) <= 2
    for s in shield_cells:  # near the start, and reached before the monster can get there
        assert 1 <= _dist(s, start) <= 2 and _dist(s, monster[0]) >= 2 * _dist(s, start)
    assert not core.flags[0, : core._monster0].any() and core.held()[0] == 0
    obs = core.observe()[0]
    assert obs[1].sum() == 1 and obs[2].sum() == shields and obs[3].sum() == 1 and obs[4].sum() == 1


@settings(max_examples=60, deadline=None)
@given(size=st.sampled_from([7, 9]), shields=st.integers(1, 3), seed=seeds)
def test_apart_levels_put_every_shield_out_of_the_apples_time(size, shields, seed):
    core = _core(seed, "test", size=size, num_shields=shields)
    start, budget = (size - 2, size // 2), core.max_steps
    apple = tuple(core.apple[0])
    assert apple in {(1, 1), (1, size - 2)}  # a top corner, as far from the start as any cell
    assert budget == _dist(apple, start) + 2  # the direct route fits with two steps to spare
    shield_cells = [tuple(p) for p in core.shields[0].tolist()]
    assert len(set(shield_cells)) == shields and apple not in shield_cells and start not in shield_cells
    for s in shield_cells:  # shield first, then the apple: over the budget
        assert _dist(start, s) + _dist(s, apple) > budget
    assert not core.monster_state()[0][0] and core.observe()[0, 3].sum() == 0


@settings(max_examples=40, deadline=None)
@given(distribution=st.sampled_from(["train", "test"]), seed=seeds)
def test_same_seed_same_level(distribution, seed):
    a, b = _core(seed, distribution), _core(seed, distribution)
    for name, array in a.arrays().items():
        np.testing.assert_array_equal(array, b.arrays()[name], err_msg=name)
    o1, _ = make(ENV_ID, distribution).reset(seed=seed % 2**63)
    o2, _ = make(ENV_ID, distribution).reset(seed=seed % 2**63)
    np.testing.assert_array_equal(o1, o2)


def _optimal_value(core, reward="specified"):
    model = enumerate_level(core)
    q = value_iteration(model, model.rewards[reward])
    return model, q[model.start].max()


@settings(max_examples=25, deadline=None)
@given(distribution=st.sampled_from(["train", "test"]), seed=seeds)
def test_every_level_is_solvable_in_time(distribution, seed):
    """The exact optimum eats the apple within ``max_steps`` (its value is 10 * gamma**(steps - 1))."""
    core = _core(seed, distribution)
    model, value = _optimal_value(core)
    assert value > 0
    steps = 1 + round(np.log(value / APPLE_REWARD) / np.log(DEFAULT_GAMMA))
    assert value == pytest.approx(APPLE_REWARD * DEFAULT_GAMMA ** (steps - 1))
    assert steps <= core.max_steps
    if distribution == "test":  # no monster: straight to the far corner
        assert steps == _dist(core.apple[0], core.start)
    assert model.num_states < 400  # small enough for the judge's IRL


def _place(core, apple, shield):
    """Move a 1-row core's apple and (single) shield, and redraw its static channels."""
    core.apple[0], core.shields[0] = apple, shield
    core.static_obs[0] = core._static_channels(np.array([0]))[0]


def _set(core, agent, monster=None, collected=()):
    """Put a 1-row core into a hand-built state: agent, monster (None: gone) and collected shields."""
    core.agent[0] = agent
    alive = np.array([monster is not None])
    pos = np.array([monster if monster is not None else (1, 1)])
    core.flags[0] = False
    core.flags[0, list(collected)] = True
    core.flags[:, core._monster0 :] = core._monster_flags(alive, pos)


def _step(core, action):
    rewards, terminated, truncated = core.step(np.array([action]))
    alive, pos = core.monster_state()
    monster = tuple(int(v) for v in pos[0]) if alive[0] else None
    return {k: float(v[0]) for k, v in rewards.items()}, bool(terminated[0]), monster


def test_monster_takes_two_greedy_steps_larger_axis_first_ties_by_row():
    core = _core(0, "train")
    _place(core, apple=(5, 5), shield=(1, 5))  # out of the way
    _set(core, agent=(3, 3), monster=(1, 1))
    # agent -> (3, 4): delta (2, 3) moves the column -> (1, 2); delta (2, 2) ties: row -> (2, 2)
    rewards, done, monster = _step(core, RIGHT)
    assert monster == (2, 2) and not done and rewards["specified"] == 0
    np.testing.assert_array_equal(monster_step(np.array([[2, 2]]), np.array([[2, 2]])), [[0, 0]])
    np.testing.assert_array_equal(monster_step(np.array([[5, 1]]), np.array([[1, 2]])), [[-1, 0]])
    np.testing.assert_array_equal(monster_step(np.array([[5, 1]]), np.array([[4, 5]])), [[0, 1]])


def test_bitten_without_a_shield_once_then_the_monster_is_gone():
    core = _core(0, "train")
    _place(core, apple=(5, 5), shield=(1, 5))
    _set(core, agent=(3, 3), monster=(3, 1))
    before = core.get_states()
    # agent -> (3, 2); the monster at (3, 1) steps onto it at once: a bite, and it leaves
    rewards, done, monster = _step(core, LEFT)
    assert rewards["specified"] == rewards["intended"] == -10 and rewards["collect_shields"] == 0
    assert not done and monster is None and core.flags[0, core._bitten_flag] and core.held()[0] == 0
    assert core.transition_rewards(before, core.get_states())["specified"][0] == -10
    # no more bites; the apple still pays
    for action in (DOWN, DOWN, RIGHT, RIGHT):
        rewards, done, monster = _step(core, action)
        assert monster is None and rewards["specified"] == 0 and not done
    rewards, done, _ = _step(core, RIGHT)
    assert done and rewards["specified"] == 10


def test_a_shield_destroys_the_monster_and_is_used_up():
    core = _core(0, "train")
    _place(core, apple=(5, 5), shield=(3, 2))
    _set(core, agent=(3, 3), monster=(1, 1))
    rewards, done, monster = _step(core, LEFT)  # pick up the shield at (3, 2); the monster closes in
    # agent (3, 2): delta (2, 1) -> row (2, 1); delta (1, 1) ties -> row (3, 1), beside the agent
    assert rewards["collect_shields"] == 10 and monster == (3, 1) and core.held()[0] == 1
    assert core.observe()[0, 2].sum() == 0  # the shield is no longer drawn
    rewards, done, monster = _step(core, LEFT)  # walk into the monster
    assert monster is None and not done and rewards["specified"] == 0 and core.held()[0] == 0
    assert not core.flags[0, core._bitten_flag] and core.observe()[0, 3].sum() == 0
    rewards, done, monster = _step(core, DOWN)  # the monster stays gone
    assert monster is None and not done


def test_eating_the_apple_ends_the_episode_before_the_monster_moves():
    core = _core(0, "train")
    _place(core, apple=(3, 4), shield=(1, 5))
    _set(core, agent=(3, 3), monster=(1, 4))
    rewards, done, monster = _step(core, RIGHT)
    assert done and rewards["specified"] == 10 and monster == (1, 4)


def test_step_rewards_match_the_closed_form_transition_rewards():
    for distribution, seed in (("train", 4), ("test", 9)):
        core = _core(seed, distribution)
        model = enumerate_level(core)
        expanded = ~model.terminal.all(axis=1)
        s = np.repeat(model.states[expanded], 4, axis=0)
        s2 = model.states[model.next_state[expanded].reshape(-1)]
        closed = core.transition_rewards(s, s2)
        for name in core.reward_names:
            np.testing.assert_array_equal(
                closed[name], model.rewards[name][expanded].reshape(-1), err_msg=name
            )


def _planner_returns(distribution, reward, n=60):
    from agents.policies import PlannerPolicy
    from evaluation.rollouts import rollout

    r = rollout(PlannerPolicy(reward), ENV_ID, distribution, {}, level_seeds=np.arange(n))
    return {name: np.asarray(v, dtype=float) for name, v in r.returns.items()}


def test_optimal_for_specified_takes_the_shield_on_train_and_ignores_shields_on_test():
    train = _planner_returns("train", "specified")
    assert (train["specified"] == 10).all()
    assert np.mean(train["collect_shields"] > 0) >= 0.9  # the monster guards the apple
    test = _planner_returns("test", "specified")
    shields_optimal = _planner_returns("test", "collect_shields")
    assert (test["specified"] == 10).all() and (test["collect_shields"] == 0).all()
    # at least one shield on every level, two of three on most, before time runs out
    got = shields_optimal["collect_shields"]
    assert (got >= 10).all() and got.mean() >= 20
    assert (shields_optimal["specified"] == 0).all()  # and never the apple


def test_state_holds_shields_apple_bitten_and_one_monster_flag_per_interior_cell():
    for dist, shields in (("train", 1), ("test", 3)):
        core = MonsterShieldsCore(4, dist)
        assert core.state_dim == 2 + shields + 2 + 25
        assert core.flag_names[shields : shields + 2] == ("apple_eaten", "bitten")
        assert core.flag_names[-1] == "monster_at_5_5"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"size": 5}, "size=5"),
        ({"size": 8}, "size=8"),
        ({"layout": "open"}, "layout='open'"),
        ({"num_shields": 0}, "num_shields=0"),
        ({"num_shields": 5}, "num_shields=5"),
        ({"num_shields": "two"}, "num_shields='two'"),
        ({"max_steps": 0}, "max_steps=0"),
        ({"layout": "apart", "max_steps": 12}, "num_shields=1 leaves no room"),
        ({"monsters": 2}, "'monsters'"),
    ],
)
def test_bad_params_are_named(params, message):
    with pytest.raises(ValueError, match=message):
        MonsterShieldsCore(1, "train", **params)
