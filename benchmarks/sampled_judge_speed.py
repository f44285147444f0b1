"""Judging one agent on the sampled path against the exact path, on the CoinRun analog.

One CoinRun agent is trained (``--train-steps``, the default learner
``configs/agent/ppo.yaml``) into a temporary folder, and the sampled path's
references are trained once by :class:`evaluation.sampled.ReferenceTrainer`
(the env config's budget, or ``--reference-steps``); each reference's
training time is printed. Then, in the same process and one torch thread,
the agent is judged at ``--episodes`` levels per distribution (train +
test, one evaluation seed, no MaxEnt IRL on either path: the sampled path has
none, and the exact path's IRL enters no verdict):

- exact: a fresh :class:`~evaluation.levels.LevelBank` (level models, ``Q*``,
  planner rollouts built);
- sampled: a fresh :class:`~evaluation.sampled.SampledBank` over the cached
  references (their rollouts, the agent watched by each, sampled EPIC).

Each is timed ``--repeats`` times (median). The verdicts of both are
printed. The last line is ``sampled/exact <ratio>``.

    .venv/bin/python benchmarks/sampled_judge_speed.py [--train-steps 60000] [--episodes 200]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
import yaml

import envs
from agents.loading import load_agents
from agents.training import AgentConfig, TrainConfig, train
from evaluation.judge import judge
from evaluation.levels import LevelBank
from evaluation.sampled import ReferenceTrainer, SampledBank, SampledReferences

COINRUN = "GMSuite/CoinRun-v0"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def agent_config(name: str) -> AgentConfig:
    raw = yaml.safe_load((CONFIGS / "agent" / f"{name}.yaml").read_text())
    fields = {f.name for f in dataclasses.fields(AgentConfig)}
    return AgentConfig(**{k: v for k, v in raw.items() if k in fields})


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}/{fifteen:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-steps", type=int, default=60_000)
    parser.add_argument("--reference-steps", type=int, default=None, help="default: the env config's budget")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--agent", default="ppo")
    parser.add_argument("--folder", type=Path, default=None, help="keep runs and references here (reused)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", UserWarning)
    agent = agent_config(args.agent)
    budget = (
        args.reference_steps
        or yaml.safe_load((CONFIGS / "env" / "coinrun.yaml").read_text())["total_timesteps"]
    )
    folder = args.folder or Path(tempfile.mkdtemp(prefix="sampled_judge_speed_"))
    run_dir = folder / "agent-seed1"
    config = TrainConfig(env_id=COINRUN, agent=agent, seed=1, total_timesteps=args.train_steps)
    started = time.perf_counter()
    train(config, run_dir, progress_bar=False)
    print(
        f"agent: {args.agent}, {args.train_steps} env-steps, {time.perf_counter() - started:.0f} s ({load()})"
    )
    (trained,) = load_agents([run_dir])
    policy = trained.policies[1]

    lines: list[str] = []
    trainer = ReferenceTrainer(folder, agent, budget, log=lines.append)
    task = envs.task(COINRUN)
    for d in ("train", "test"):
        for reward in task.reward_names:
            started = time.perf_counter()
            trainer.policy(COINRUN, {}, reward, d)
            print(f"reference {reward}@{d}: {time.perf_counter() - started:.1f} s ({lines[-1]})")

    kw = dict(n_episodes=args.episodes, seed=0, progress=None, irl=False)
    times: dict[str, list[float]] = {"exact": [], "sampled": []}
    verdicts = {}
    for _ in range(args.repeats):
        for path in ("exact", "sampled"):
            started = time.perf_counter()
            if path == "exact":
                result = judge(policy, COINRUN, judge_path="exact", bank=LevelBank(), **kw)
            else:
                bank = SampledBank(SampledReferences(trainer=trainer))
                result = judge(policy, COINRUN, judge_path="sampled", sampled_bank=bank, **kw)
            times[path].append(time.perf_counter() - started)
            verdicts[path] = (result[0].verdict, result[0].goal, result[0].shifted.scores)
    for path, values in times.items():
        verdict, goal, scores = verdicts[path]
        rounded = {k: round(v, 3) for k, v in scores.items()}
        print(
            f"{path}: median {statistics.median(values):.2f} s of {values} ({load()}); {verdict} {goal} {rounded}"
        )
    print(f"sampled/exact {statistics.median(times['sampled']) / statistics.median(times['exact']):.2f}")


if __name__ == "__main__":
    main()
