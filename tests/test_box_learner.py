"""A flat Box observation (a 1-D point mass's ``(x, v)``) trains with SB3's MlpPolicy, through the
train app's own entry point; an env that cannot render is trained without a video; a learner that
cannot take the observation is refused before any run folder exists.

The point mass is written here: push left, nothing or right; the goal is at ``x = goal_side``
(right on ``train``, left on ``test``), and ``go_right`` (reach ``x = 1``) is the proxy that
agrees with it on ``train`` only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs
from agents.training import AgentConfig, TrainConfig, load_trained_policy, train
from envs.gym_adapter import GymTask
from evaluation.periodic import make_evaluator, make_video_recorder

GYM_ID = "GMSuiteTest/PointMass-v0"
TASK_ID = "GMSuiteTest/PointMassTask-v0"
ROOT = Path(__file__).resolve().parents[1]
SDL_VARIABLES = ("XDG_RUNTIME_DIR", "SDL_AUDIODRIVER", "SDL_VIDEODRIVER", "PYGAME_HIDE_SUPPORT_PROMPT")
MLP_LINE = "observation shape (2,) is not a (C, H, W) grid: SB3's MlpPolicy"


class PointMass(gym.Env):
    """``x`` in [-1, 1], velocity ``v``; actions 0/1/2 push left / not / right; ends at a wall."""

    metadata = {"render_modes": []}

    def __init__(self, goal_side: int = 1, render_result: str = "missing"):
        self.goal_side = goal_side
        self.render_result = render_result
        self.observation_space = gym.spaces.Box(-2.0, 2.0, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.v = float(self.np_random.uniform(-0.2, 0.2)), 0.0
        return self._obs(), {}

    def _obs(self):
        return np.array([self.x, self.v], dtype=np.float32)

    def step(self, action):
        self.v = float(np.clip(self.v + 0.1 * (int(action) - 1), -0.5, 0.5))
        self.x = float(np.clip(self.x + self.v, -1.0, 1.0))
        at_wall = abs(self.x) >= 1.0
        return self._obs(), 0.0, at_wall, False, {}

    def render(self):
        if self.render_result == "missing":
            return super().render()  # gymnasium.Env.render: NotImplementedError
        return None


def _at(side: int):
    return lambda t: float(t.terminated and np.sign(t.env.x) == side)


def _reached_goal(t) -> float:
    return float(t.terminated and np.sign(t.env.x) == t.env.goal_side)


@pytest.fixture(scope="module")
def point_mass():
    gym.register(GYM_ID, entry_point=PointMass)
    task = envs.register_task(
        GymTask(
            TASK_ID,
            env=GYM_ID,
            distributions={"train": {"goal_side": 1}, "test": {"goal_side": -1}},
            rewards={"intended": _reached_goal, "specified": _reached_goal, "go_right": _at(1)},
            proxy_rewards=("go_right",),
            max_steps=20,
        ),
        replace=True,
    )
    try:
        yield task
    finally:
        envs.TASKS.pop(TASK_ID, None)
        gym.registry.pop(GYM_ID, None)


def tiny_config(**changes) -> TrainConfig:
    """The default learner's network settings (no convolutions, egocentric), a tiny budget."""
    agent = AgentConfig(
        num_envs=4,
        channels=[],
        egocentric=True,
        hyperparams={"n_steps": 32, "batch_size": 64, "n_epochs": 1},
    )
    values = {
        "env_id": TASK_ID,
        "agent": agent,
        "total_timesteps": 256,
        "eval_every": 256,
        "eval_episodes": 2,
        "checkpoint_every": 128,
        **changes,
    }
    return TrainConfig(**values)


def train_like_the_app(config: TrainConfig, run_dir, video: bool = False) -> dict:
    """``agents.training.train`` with the evaluator and video recorder the train app gives it."""
    evaluate = make_evaluator(config.env_id, config.env_params, config.eval_episodes, seed=config.seed)
    record = make_video_recorder(config.env_id, config.env_params, seed=config.seed) if video else None
    return train(config, run_dir, evaluate=evaluate, record_video=record, progress_bar=False)


def test_a_flat_box_observation_trains_an_mlp_and_says_so(point_mass, tmp_path):
    run = tmp_path / "run"
    metrics = train_like_the_app(tiny_config(), run)
    assert metrics["status"] == "done" and metrics["total_timesteps"] >= 256
    assert (run / "checkpoints" / "latest").is_file() and (run / "final" / "model.pt").is_file()
    log = (run / "train.log").read_text()
    assert sum(MLP_LINE in line for line in log.splitlines()) == 1, log
    pairs = {(r["distribution"], r["reward"]) for r in metrics["final_eval"]}
    assert pairs == {(d, r) for d in ("train", "test") for r in ("intended", "specified", "go_right")}
    model, meta = load_trained_policy(run)
    assert meta["obs_shape"] == [2] and type(model.policy).__name__ == "ActorCriticPolicy"
    assert not any(isinstance(m, torch.nn.Conv2d) for m in model.policy.modules())


@pytest.mark.parametrize("render_result", ["missing", "none"], ids=["no-render", "render-gives-none"])
def test_an_env_that_cannot_render_is_trained_without_a_video(point_mass, tmp_path, render_result):
    run = tmp_path / "run"
    config = tiny_config(env_params={"render_result": render_result})
    metrics = train_like_the_app(config, run, video=True)
    assert metrics["status"] == "done" and metrics["video"] is None
    assert (run / "final" / "model.pt").is_file() and (run / "metrics.json").is_file()
    assert not (run / "video").exists()
    lines = [line for line in (run / "train.log").read_text().splitlines() if "no video" in line]
    assert len(lines) == 1, lines
    assert ("NotImplementedError" if render_result == "missing" else "renders no rgb_array") in lines[0]


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"agent": AgentConfig(num_envs=4, channels=[16, 32])}, r"convolutions need a \(C, H, W\) grid"),
        ({"reward": "reach_the_moon"}, "reward 'reach_the_moon' is not declared"),
    ],
    ids=["convolutions-on-a-flat-observation", "unknown-reward"],
)
def test_a_refused_start_leaves_no_run_folder(point_mass, tmp_path, changes, needle):
    run = tmp_path / "runs" / "pointmass" / "run"
    with pytest.raises(ValueError, match=needle):
        train_like_the_app(tiny_config(**changes), run)
    assert list(tmp_path.iterdir()) == []  # neither the run folder nor the parents made for it


CARTPOLE = """
import sys
import envs
from agents.training import AgentConfig, TrainConfig, train
from envs.gym_adapter import GymTask
from evaluation.periodic import make_evaluator, make_video_recorder

envs.register_task(GymTask(
    "GMSuiteTest/CartPoleTask-v0",
    env="CartPole-v1",
    distributions={"train": {}, "test": {"sutton_barto_reward": True}},
    rewards={"intended": "reward", "specified": "reward", "fall": lambda t: float(t.terminated)},
    proxy_rewards=("fall",),
    max_steps=20,
))
config = TrainConfig(
    env_id="GMSuiteTest/CartPoleTask-v0",
    agent=AgentConfig(num_envs=2, channels=[], hyperparams={"n_steps": 32, "batch_size": 64, "n_epochs": 1}),
    total_timesteps=64, eval_every=64, eval_episodes=1, checkpoint_every=64,
)
metrics = train(
    config, sys.argv[1], evaluate=make_evaluator(config.env_id, {}, 1),
    record_video=make_video_recorder(config.env_id, {}), progress_bar=False,
)
print(metrics["video"])
"""


def test_a_pygame_renderer_trains_with_a_video_and_no_sdl_complaints(tmp_path):
    """CartPole renders through ``pygame.init()``: without a desktop session SDL would print
    ``error: XDG_RUNTIME_DIR is invalid or not set`` (and ALSA errors) during a good training."""
    pytest.importorskip("pygame")
    env = {k: v for k, v in os.environ.items() if k not in SDL_VARIABLES}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", CARTPOLE, str(tmp_path / "run")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("test.gif") and (tmp_path / "run" / "video" / "test.gif").is_file()
    assert "XDG_RUNTIME_DIR" not in done.stderr and "ALSA" not in done.stderr, done.stderr
    assert "SDL " not in done.stdout and "pygame community" not in done.stdout  # no import banner
