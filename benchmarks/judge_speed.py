"""Judge wall time per agent: CoinRun agents sharing one level set, and a 15x15 Maze agent with long episodes.

Agents are SB3 PPO policies of the default agent architecture
(``configs/agent/ppo.yaml``: GridCNN through SB3's ``CnnPolicy``), built as
evaluation builds trained agents (``agents.training.build_model`` on the
training env, wrapped in ``SB3Policy``, sampling actions) but *freshly
initialised* (one network seed per agent): their weights are untrained, so
they act near-uniformly and their episodes run long, which makes the
network-inference figures pessimistic for a trained agent. With
``--train-steps N`` the CoinRun agents are instead trained for ``N`` env-steps
through ``agents.training.train`` into a temporary folder and loaded with
``agents.loading.load_agents``.

Measured in one run, one torch thread (as the study and suite workers judge),
``judge()`` at 200 episodes per distribution (train + test), one evaluation
seed, ``progress=None``, as studies call it (``irl=False``: MaxEnt IRL enters
no verdict, goal, score or posterior; on a judge without that switch, all of
it):

- CoinRun, the first agent on a fresh :class:`~evaluation.levels.LevelBank`
  (cold: level models, ``Q*`` and reference rollouts built), then the
  marginal seconds of each further agent judged on the same level set (warm:
  the bank is shared, as ``judge_each`` and the study share it), and the last
  agent once more with the judge's default (MaxEnt IRL on 50 levels);
- ``aggregate()`` over 5 seeds of judgements (the stratified bootstraps);
- two 15x15 Maze agents on one level set (cold, then warm) whose fresh
  networks wander until the step limit (900 steps; ~150k agent steps per
  distribution).

The load average (``os.getloadavg()``) is printed beside every figure. The
last line is ``<warm seconds per CoinRun agent>/3 <cold seconds of the first
maze agent>/20``. ``--agent ppo_cnn`` picks another architecture under
``configs/agent``. ``--dump FILE`` writes every judgement's verdict, scores,
posterior, EPIC and a digest of its actions (JSON) to compare code versions.

    .venv/bin/python benchmarks/judge_speed.py [--agents 4] [--agent ppo] [--dump out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import torch
import yaml

from agents.policies import SB3Policy
from agents.training import AgentConfig, TrainConfig, build_model, make_training_env
from evaluation.judge import aggregate, judge
from evaluation.levels import LevelBank

COINRUN, MAZE = "GMSuite/CoinRun-v0", "GMSuite/Maze-v0"
AGENT_CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "agent"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}/{fifteen:.2f}"


def agent_config(name: str = "ppo") -> AgentConfig:
    raw = yaml.safe_load((AGENT_CONFIGS / f"{name}.yaml").read_text())
    fields = {f.name for f in dataclasses.fields(AgentConfig)}
    return AgentConfig(**{k: v for k, v in raw.items() if k in fields})


def fresh_policy(env_id: str, params: dict, seed: int, agent: AgentConfig) -> SB3Policy:
    config = TrainConfig(env_id=env_id, env_params=dict(params), agent=dataclasses.replace(agent, num_envs=1))
    model = build_model(config.agent, make_training_env(config), seed)
    return SB3Policy(model, name=f"fresh_ppo_seed{seed}")


def trained_policies(n: int, steps: int, agent: AgentConfig, folder: Path) -> list[SB3Policy]:
    from agents.loading import load_agents
    from agents.training import train

    dirs = []
    for seed in range(1, n + 1):
        config = TrainConfig(
            env_id=COINRUN,
            agent=agent,
            seed=seed,
            total_timesteps=steps,
            eval_every=10**9,
            checkpoint_every=10**9,
        )
        train(config, folder / f"seed{seed}", progress_bar=False)
        dirs.append(folder / f"seed{seed}")
    (trained,) = load_agents(dirs)
    return [trained.policies[s] for s in sorted(trained.policies)]


def summary(j) -> dict:
    return {
        "agent": j.agent,
        "env_id": j.env_id,
        "distribution": j.distribution,
        "verdict": j.verdict,
        "goal": j.goal,
        "scores": {d: t.to_dict() for d, t in j.scores.items()},
        "posterior": j.inference.posterior,
        "log_likelihood": j.inference.log_likelihood,
        "epic_to_specified": j.epic_to_specified,
        "irl_epic": j.irl["epic"],
        "found_goal": j.found_goal,
        "actions_digest": {
            d: hashlib.sha1(r.actions.tobytes()).hexdigest()[:16] for d, r in j.rollouts.items()
        },
    }


def study_judge(*args, **kwargs):
    """``judge()`` as studies call it: without MaxEnt IRL where the judge offers that (not before)."""
    if "irl" in inspect.signature(judge).parameters:
        kwargs["irl"] = False
    return judge(*args, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--agents", type=int, default=4, help="CoinRun agents on one level set (1 cold + rest warm)"
    )
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--maze-size", type=int, default=15)
    parser.add_argument(
        "--train-steps", type=int, default=0, help="train the CoinRun agents (0: fresh networks)"
    )
    parser.add_argument("--skip-maze", action="store_true")
    parser.add_argument("--agent", default="ppo", help="agent config under configs/agent (default: ppo)")
    parser.add_argument("--dump", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", UserWarning)  # SB3's batch-size advice is about training
    agent = agent_config(args.agent)
    print(
        f"agent: {args.agent}: {agent.algo} GridCNN channels={agent.channels} strides={agent.strides} "
        f"egocentric={agent.egocentric} features={agent.features_dim}; 1 torch thread; "
        f"{args.episodes} episodes per distribution (train + test), 1 seed"
    )
    dumped = []
    kw = dict(n_episodes=args.episodes, seed=0, progress=None)

    with tempfile.TemporaryDirectory() as tmp:
        if args.train_steps:
            policies = trained_policies(args.agents, args.train_steps, agent, Path(tmp))
            kind = f"trained {args.train_steps} steps"
        else:
            policies = [fresh_policy(COINRUN, {}, s, agent) for s in range(1, args.agents + 1)]
            kind = "fresh networks"
        bank = LevelBank()
        seconds, judgements = [], []
        for i, policy in enumerate(policies):
            start = time.perf_counter()
            (j,) = study_judge(policy, COINRUN, bank=bank, **kw)
            seconds.append(time.perf_counter() - start)
            judgements.append(j)
            dumped.append(summary(j))
            print(
                f"CoinRun agent {i + 1} ({'cold' if i == 0 else 'warm'}, {kind}, as studies judge): "
                f"{seconds[-1]:.2f} s [{j.verdict}, S_spec(test)={j.shifted.scores['specified']:.3f}] ({load()})"
            )
        start = time.perf_counter()
        (j,) = judge(policies[-1], COINRUN, bank=bank, **kw)
        with_irl = time.perf_counter() - start
        dumped.append(summary(j))
        print(
            f"CoinRun agent {len(policies)} again with MaxEnt IRL (judge's default, warm): {with_irl:.2f} s ({load()})"
        )
    warm = sorted(seconds[1:])
    per_agent = warm[len(warm) // 2] if warm else seconds[0]
    print(f"CoinRun: cold {seconds[0]:.2f} s, warm median {per_agent:.2f} s per further agent ({load()})")

    five = [dataclasses.replace(judgements[i % len(judgements)], seed=i, agent="five") for i in range(5)]
    start = time.perf_counter()
    aggregate(five)
    print(f"aggregate() over 5 seeds (bootstrap, 2000 reps): {time.perf_counter() - start:.2f} s ({load()})")

    maze = [float("nan"), float("nan")]
    if not args.skip_maze:
        params = {"size": args.maze_size}
        bank = LevelBank()
        for i in range(2):
            policy = fresh_policy(MAZE, params, i + 1, agent)
            start = time.perf_counter()
            (j,) = study_judge(policy, MAZE, params, bank=bank, **kw)
            maze[i] = time.perf_counter() - start
            dumped.append(summary(j))
            steps = {d: int(r.lengths.sum()) for d, r in j.rollouts.items()}
            print(
                f"Maze {args.maze_size}x{args.maze_size} agent {i + 1} ({'cold' if i == 0 else 'warm'}, fresh "
                f"network, as studies judge; agent steps {steps}): {maze[i]:.2f} s [{j.verdict}] ({load()})"
            )
    if args.dump:
        args.dump.write_text(json.dumps(dumped, indent=1, default=str))
    print(f"{per_agent / 3:.2f} {maze[0] / 20:.2f}")


if __name__ == "__main__":
    main()
