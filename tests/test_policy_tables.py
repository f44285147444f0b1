"""The judge's faster policy paths act exactly as the plain ones.

``SB3Policy`` acts from a table of action probabilities per distinct
observation and draws as ``torch.multinomial`` does: the same actions as
``model.predict`` from the same torch generator state. ``PlannerPolicy``
keeps its rows' levels and state indices between steps: the same values as
``LevelSolver.q_values``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import envs
from agents.planning import LevelSolver
from agents.policies import PlannerPolicy, Policy, SB3Policy
from evaluation.rollouts import rollout

COINRUN, MAZE = "GMSuite/CoinRun-v0", "GMSuite/Maze-v0"


def fresh_model(env_id, params, seed=0):
    from agents.training import AgentConfig, TrainConfig, build_model, make_training_env

    config = TrainConfig(env_id=env_id, env_params=dict(params), agent=AgentConfig(num_envs=1), seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return build_model(config.agent, make_training_env(config), seed=seed)


class Predicting(Policy):
    """The plain path: ``model.predict`` on every row at every step."""

    def __init__(self, model, deterministic=False):
        self.model, self.deterministic, self.name = model, deterministic, "predict"

    def act(self, obs):
        actions, _ = self.model.predict(obs, deterministic=self.deterministic)
        return np.asarray(actions, dtype=np.int64)


def _rollout(policy, env_id, params, n=24, torch_seed=5):
    torch.manual_seed(torch_seed)
    return rollout(policy, env_id, "test", params, n_episodes=n, seed=3)


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize(("env_id", "params"), [(COINRUN, {}), (MAZE, {"size": 7})])
def test_sb3_table_acts_exactly_as_predict(env_id, params, deterministic):
    model = fresh_model(env_id, params)
    fast = _rollout(SB3Policy(model, deterministic=deterministic), env_id, params)
    plain = _rollout(Predicting(model, deterministic), env_id, params)
    np.testing.assert_array_equal(fast.actions, plain.actions)
    np.testing.assert_array_equal(fast.lengths, plain.lengths)
    for name in plain.returns:
        np.testing.assert_array_equal(fast.returns[name], plain.returns[name])
    # the torch generator is left where predict leaves it
    torch.manual_seed(5)
    _rollout(SB3Policy(model, deterministic=deterministic), env_id, params)
    after_fast = torch.rand(3)
    torch.manual_seed(5)
    _rollout(Predicting(model, deterministic), env_id, params)
    assert torch.equal(after_fast, torch.rand(3))


def test_sb3_table_runs_the_network_only_on_new_observations():
    model = fresh_model(MAZE, {"size": 7})
    policy = SB3Policy(model)
    calls = []
    forward = model.policy.get_distribution

    def counting(obs):
        calls.append(len(obs))
        return forward(obs)

    model.policy.get_distribution = counting
    r = _rollout(policy, MAZE, {"size": 7}, n=16)
    distinct = len({o.tobytes() for o in _observations(r)})
    assert sum(calls) <= distinct <= r.alive.sum()
    assert sum(calls) < r.actions.size  # frozen finished rows and revisited cells cost nothing


def _observations(r):
    core = envs.task(r.env_id)(r.num_episodes, r.distribution, **r.params)
    core.reset_levels(np.arange(r.num_episodes), r.level_seeds.astype(np.uint64))
    out = []
    for t in range(len(r.actions)):
        core.set_states(np.arange(r.num_episodes), r.states[t])
        out += list(core.observe())
    return out


def test_sb3_table_is_reset_by_bind():
    model = fresh_model(MAZE, {"size": 7})
    policy = SB3Policy(model)
    _rollout(policy, MAZE, {"size": 7}, n=4)
    assert policy._table
    core = envs.task(MAZE)(2, "test", size=7)
    policy.bind(core)
    assert not policy._table


class CheckedPlanner(PlannerPolicy):
    """A planner that checks its kept lookups against the solver's at every step."""

    checked = 0

    def _q_values(self, t=None):
        got = super()._q_values(t)
        np.testing.assert_array_equal(got, self.solver.q_values(self.batch, self.reward, t=t))
        CheckedPlanner.checked += 1
        return got


@pytest.mark.parametrize(
    ("env_id", "reward", "beta"),
    [
        (COINRUN, "specified", None),
        (COINRUN, "reach_right_end", 30.0),
        ("GMSuite/KeysChests-v0", "collect_keys", None),
    ],
)
def test_planner_lookups_are_the_solvers(env_id, reward, beta):
    solver = LevelSolver()
    distribution = "test"
    CheckedPlanner.checked = 0
    r = rollout(CheckedPlanner(reward, beta=beta, solver=solver), env_id, distribution, n_episodes=12, seed=2)
    assert CheckedPlanner.checked == len(r.actions)
    plain = rollout(
        PlannerPolicy(reward, beta=beta, solver=solver), env_id, distribution, n_episodes=12, seed=2
    )
    np.testing.assert_array_equal(r.actions, plain.actions)
