"""Policies brought from outside: plain SB3 code, a torch module, a plain function, from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers the envs)
from agents.external import CallablePolicy, TorchPolicy, as_policy, policy_from_spec
from agents.policies import SB3Policy
from evaluation.rollouts import rollout

REPO = Path(__file__).resolve().parents[1]
ENV_ID = "GMSuite/GoalShift-v0"

POLICY_MODULE = textwrap.dedent(
    """
    import numpy as np
    import torch

    RIGHT = 3

    def always_right(obs):
        return np.full(len(obs), RIGHT)

    def one_at_a_time(obs):
        assert obs.ndim == 3, "called per observation"
        return RIGHT

    def out_of_space(obs):
        return np.full(len(obs), 7)

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(4))

        def forward(self, obs):
            return self.bias.expand(obs.shape[0], 4)
    """
)


@pytest.fixture(scope="module")
def user_package(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("user")
    (root / "my_policies.py").write_text(POLICY_MODULE)
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))


def run_evaluate(root: Path, out: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{REPO}", "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "experiments.evaluate", f"out_dir={out}", "n_episodes=4", *overrides]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_plain_function_batched_and_per_observation(user_package):
    import my_policies

    batched = as_policy(my_policies.always_right, "f")
    single = as_policy(my_policies.one_at_a_time, "g")
    assert isinstance(batched, CallablePolicy) and isinstance(single, CallablePolicy)
    a = rollout(batched, ENV_ID, "test", n_episodes=3)
    b = rollout(single, ENV_ID, "test", n_episodes=3)
    np.testing.assert_array_equal(a.actions, b.actions)
    assert (a.actions[a.alive] == 3).all()


def test_action_outside_the_space_is_named(user_package):
    with pytest.raises(ValueError, match=r"returned action 7, outside Discrete\(4\)"):
        rollout(policy_from_spec("python:my_policies:out_of_space"), ENV_ID, "test", n_episodes=2)


def test_torch_module_with_weights_file(user_package, tmp_path):
    import my_policies

    module = my_policies.Logits()
    with torch.no_grad():
        module.bias[:] = torch.tensor([-50.0, -50.0, -50.0, 50.0])  # all but certainly "right"
    weights = tmp_path / "logits.pt"
    torch.save(module.state_dict(), weights)
    policy = policy_from_spec(f"torch:my_policies:Logits:{weights}")
    assert isinstance(policy, TorchPolicy)
    r = rollout(policy, ENV_ID, "test", n_episodes=3)
    assert (r.actions[r.alive] == 3).all()


def test_bad_specs_are_named(tmp_path):
    with pytest.raises(ValueError, match="unknown kind 'pickle'"):
        policy_from_spec("pickle:x")
    with pytest.raises(ValueError, match="no such file"):
        policy_from_spec(f"sb3:{tmp_path / 'missing.zip'}")
    with pytest.raises(ValueError, match="cannot import 'no_such_module_xyz'"):
        policy_from_spec("python:no_such_module_xyz:f")


@pytest.fixture(scope="module")
def plain_sb3_zip(tmp_path_factory) -> Path:
    """A model trained by plain SB3 code on the registered env, as a user would, not by our train app."""
    from stable_baselines3 import PPO

    path = tmp_path_factory.mktemp("sb3") / "plain_ppo.zip"
    model = PPO("MlpPolicy", gym.make(ENV_ID), n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(128)
    model.save(path)
    return path


def test_plain_sb3_zip_loads(plain_sb3_zip):
    policy = policy_from_spec(f"sb3:{plain_sb3_zip}")
    assert isinstance(policy, SB3Policy)
    r = rollout(policy, ENV_ID, "test", n_episodes=3)
    assert r.num_episodes == 3


def test_each_kind_judged_from_the_command_line(user_package, plain_sb3_zip, tmp_path):
    weights = tmp_path / "logits.pt"
    torch.save(__import__("my_policies").Logits().state_dict(), weights)
    for i, spec in enumerate(
        [f"sb3:{plain_sb3_zip}", f"torch:my_policies:Logits:{weights}", "python:my_policies:always_right"]
    ):
        out = tmp_path / f"report{i}"
        done = run_evaluate(user_package, out, "env=goalshift", f"policy={spec}")
        assert done.returncode == 0, done.stderr[-2000:]
        results = json.loads((out / "results.json").read_text())
        assert [a["agent"] for a in results["aggregates"]] == [spec]
        assert results["aggregates"][0]["verdict"] in envs.VERDICTS


def test_several_policies_are_several_seeds(user_package, tmp_path):
    out = tmp_path / "report"
    done = run_evaluate(
        user_package,
        out,
        "env=goalshift",
        "policy=[python:my_policies:always_right,python:my_policies:one_at_a_time]",
        "agent_name=right",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    aggregate = json.loads((out / "results.json").read_text())["aggregates"][0]
    assert aggregate["agent"] == "right" and aggregate["seeds"] == [1, 2]


def test_bad_policy_input_is_one_message(user_package, tmp_path):
    done = run_evaluate(
        user_package, tmp_path / "r1", "env=goalshift", "policy=python:my_policies:out_of_space"
    )
    assert done.returncode == 2 and "returned action 7, outside Discrete(4)" in done.stderr
    assert "Traceback" not in done.stderr
    done = run_evaluate(user_package, tmp_path / "r2", "policy=python:my_policies:always_right")
    assert done.returncode == 2 and "policy= needs env=" in done.stderr
