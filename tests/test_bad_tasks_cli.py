"""Bad tasks from the command line: one message naming the problem, exit code 2, before any work.

The user's module (outside the repo) declares a plain Gymnasium env with no
shift declarations, a stochastic task and a task without state access; each
app refuses it with the message that says what to add.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

USER_MODULE = textwrap.dedent(
    '''
    import gymnasium as gym
    import numpy as np

    from envs.gym_adapter import GymTask
    from envs.task import register_task


    class Corridor(gym.Env):
        """A 1x6 corridor; the goal is the right end; slip > 0 makes moves fail at random."""

        def __init__(self, slip=0.0):
            self.slip = slip
            self.observation_space = gym.spaces.Box(0, 1, (1, 1, 6), np.uint8)
            self.action_space = gym.spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.pos = 0
            return self._obs(), {}

        def _obs(self):
            obs = np.zeros((1, 1, 6), np.uint8)
            obs[0, 0, self.pos] = 1
            return obs

        def step(self, action):
            if not (self.slip and self.np_random.random() < self.slip):
                self.pos = min(max(self.pos + (1 if action else -1), 0), 5)
            return self._obs(), float(self.pos == 5), self.pos == 5, False, {}

        def get_state(self):
            return (0, self.pos)

        def set_state(self, state):
            self.pos = state[1]


    class CorridorNoState(Corridor):
        get_state = set_state = None


    gym.register("User/Corridor-v0", entry_point=Corridor, max_episode_steps=20)
    gym.register("User/CorridorNoState-v0", entry_point=CorridorNoState, max_episode_steps=20)
    for name, env, train, test in [
        ("Slippery", "User/Corridor-v0", {"slip": 0.3}, {"slip": 0.5}),
        ("NoState", "User/CorridorNoState-v0", {}, {}),
    ]:
        register_task(
            GymTask(
                f"User/{name}-v0",
                {"train": {"id": env, **train}, "test": {"id": env, **test}},
                {"intended": "reward", "specified": "reward"},
            )
        )
    '''
)


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("user")
    (root / "user_tasks.py").write_text(USER_MODULE)
    env_dir = root / "configs" / "env"
    env_dir.mkdir(parents=True)
    for name, env_id in [
        ("plain", "MiniGrid-Empty-5x5-v0"),
        ("slippery", "User/Slippery-v0"),
        ("nostate", "User/NoState-v0"),
        ("corridor_ok", "User/Slippery-v0"),
    ]:
        extra = "slip: 0.0\n" if name == "corridor_ok" else ""
        (env_dir / f"{name}.yaml").write_text(
            f"name: {name}\nid: {env_id}\nmodule: user_tasks\ntag: {name}\ntotal_timesteps: 1000\n{extra}"
        )
    return root


def run_app(root: Path, app: str, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{REPO}", "WANDB_MODE": "disabled"}
    env.pop("GMSUITE_ENV_MODULES", None)
    cmd = [
        sys.executable,
        "-m",
        f"experiments.{app}",
        f"hydra.searchpath=[file://{root / 'configs'}]",
        *overrides,
    ]
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)


CASES = [
    ("plain", [], "MiniGrid-Empty-5x5-v0 is a Gymnasium env but not a shift task"),
    # on the default judge_path=auto these two are judged on the sampled path (tests/test_sampled_path.py);
    # asked for the exact path, they are refused with what it lacks
    ("slippery", ["judge_path=exact"], "User/Corridor-v0 is stochastic"),
    ("nostate", ["judge_path=exact"], "needs state access"),
    ("corridor_ok", ["distributions=[tset]"], "unknown shifted distribution 'tset'"),
]


@pytest.mark.parametrize("name,extra,message", CASES, ids=[c[0] for c in CASES])
def test_evaluate_refuses_before_any_work(user_dir, tmp_path, name, extra, message):
    out = tmp_path / "report"
    done = run_app(
        user_dir, "evaluate", f"env={name}", "policy=python:numpy:zeros_like", f"out_dir={out}", *extra
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (out / "results.json").exists()


def test_train_refuses_an_env_without_declarations(user_dir, tmp_path):
    done = run_app(user_dir, "train", "env=plain", f"run_dir={tmp_path / 'run'}")
    assert done.returncode == 2 and "not a shift task" in done.stderr
    assert not (tmp_path / "run" / "final").exists()
