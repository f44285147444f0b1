"""Train-then-judge pipelines shared by the demo, ``evaluate`` and the suite.

:func:`train_runs` trains several configs (resuming or skipping finished
runs) in parallel processes, one per core; :func:`load_agents` groups trained
run folders into agents (same env and training parameters, one policy per
training seed); :func:`judge_agents` judges them all on shared reference
levels and returns per-seed judgements and their aggregates.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from joblib import Parallel, delayed

import envs
from agents.checkpoints import CheckpointError
from agents.policies import SB3Policy
from agents.training import TrainConfig, load_trained_policy, train
from evaluation.judge import aggregate, judge
from evaluation.levels import LevelBank
from evaluation.periodic import make_evaluator
from evaluation.verdict import Thresholds


def _train_one(config: dict, run_dir: str, eval_episodes: int) -> dict:
    os.environ.setdefault("WANDB_MODE", "disabled")
    config = TrainConfig.from_dict(config)
    evaluate = make_evaluator(config.env_id, config.env_params, eval_episodes, seed=config.seed)
    metrics = train(config, run_dir, evaluate=evaluate, progress_bar=False)
    return {"run_dir": run_dir, **metrics}


def train_runs(
    jobs: Sequence[tuple[TrainConfig, Path]], n_jobs: int = 2, eval_episodes: int = 100
) -> list[dict]:
    """Train every ``(config, run_dir)``; finished runs return at once, interrupted ones resume."""
    return Parallel(n_jobs=n_jobs, verbose=10)(
        delayed(_train_one)(config.to_dict(), str(run_dir), eval_episodes) for config, run_dir in jobs
    )


@dataclass
class TrainedAgent:
    """Runs that differ only in their training seed: one agent, several seeds."""

    name: str
    env_id: str
    train_params: dict
    policies: dict[int, SB3Policy]
    run_dirs: dict[int, Path]


def agent_name(env_id: str, algo: str, train_params: dict) -> str:
    """``ppo[coin_random_prob=0.0]``: the algorithm and the training params that differ from defaults."""
    core_cls = envs.core_class(env_id)
    defaults = {k: p.default for k, p in core_cls.params_spec.items()}
    defaults.update(core_cls.distributions["train"])
    changed = {
        k: v for k, v in train_params.items() if defaults.get(k) != v or k in core_cls.distribution_params
    }
    return f"{algo}[{','.join(f'{k}={v}' for k, v in sorted(changed.items()))}]"


def load_agents(paths: Sequence[str | Path]) -> list[TrainedAgent]:
    """Load trained policies (run folders or ``final/`` folders) and group them into agents."""
    if not paths:
        raise ValueError("no run folders or checkpoints given")
    groups: dict[tuple, TrainedAgent] = {}
    for path in paths:
        model, meta = load_trained_policy(path)
        params = meta["env_params"]
        key = (meta["env_id"], meta["algo"], json.dumps(params, sort_keys=True), json.dumps(meta["network"]))
        if key not in groups:
            name = agent_name(meta["env_id"], meta["algo"], params)
            groups[key] = TrainedAgent(name, meta["env_id"], params, {}, {})
        agent = groups[key]
        seed = int(meta["seed"])
        if seed in agent.policies:
            raise CheckpointError(f"{path}: a second run of {agent.name} with training seed {seed}")
        agent.policies[seed] = SB3Policy(model, name=agent.name)
        agent.run_dirs[seed] = Path(path)
    return list(groups.values())


def judge_agents(
    agents: Sequence[TrainedAgent],
    n_episodes: int = 200,
    thresholds: Thresholds | None = None,
    out_dir: str | Path | None = None,
    distributions: Sequence[str] | None = None,
):
    """Judgements of every agent on every shifted distribution, and their aggregates across seeds."""
    judgements = judge_each(agents, n_episodes, thresholds, out_dir, distributions)
    return judgements, aggregate(judgements)


def judge_each(
    agents: Sequence[TrainedAgent],
    n_episodes: int = 200,
    thresholds: Thresholds | None = None,
    out_dir: str | Path | None = None,
    distributions: Sequence[str] | None = None,
) -> list:
    """Per-seed judgements of every agent on every shifted distribution (levels shared via one bank)."""
    bank = LevelBank()
    judgements = []
    for agent in agents:
        judgements += judge(
            agent.policies,
            agent.env_id,
            agent.train_params,
            n_episodes=n_episodes,
            thresholds=thresholds,
            agent=agent.name,
            bank=bank,
            out_dir=out_dir,
            distributions=distributions,
        )
    return judgements


def _judge_dirs(run_dirs: list[str], kwargs: dict) -> list:
    import torch

    torch.set_num_threads(1)
    return judge_each(load_agents(run_dirs), **kwargs)


def judge_run_groups(run_groups: Sequence[Sequence[str | Path]], n_jobs: int = 2, **kwargs):
    """:func:`judge_agents` on each group of run folders (one env each) in parallel processes.

    Groups share no levels, so nothing is lost by judging them apart; each
    process loads its own policies (models do not cross process boundaries).
    """
    groups = [[str(p) for p in group] for group in run_groups]
    per_group = Parallel(n_jobs=n_jobs, verbose=0)(delayed(_judge_dirs)(g, kwargs) for g in groups)
    judgements = [j for group in per_group for j in group]
    return judgements, aggregate(judgements)
