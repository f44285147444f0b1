"""Trained agents from run folders: one agent per training config, one policy per training seed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import envs
from agents.checkpoints import CheckpointError
from agents.policies import Policy, SB3Policy
from agents.training import canonical_json, load_trained_policy


@dataclass
class TrainedAgent:
    """Runs that differ only in their training seed: one agent, several seeds."""

    name: str
    env_id: str
    train_params: dict
    policies: dict[int, Policy]
    run_dirs: dict[int, Path]


def agent_name(env_id: str, algo: str, train_params: dict) -> str:
    """``ppo[coin_random_prob=0.0]``: the algorithm and the training params that differ from the task's train
    ones (a distribution parameter is always named); ``ppo`` when there are none."""
    task = envs.task(env_id)
    declared = task.resolve_params("train", {})
    changed = {k: v for k, v in train_params.items() if declared.get(k) != v or k in task.distribution_params}
    return f"{algo}[{','.join(f'{k}={v}' for k, v in sorted(changed.items()))}]" if changed else algo


def load_agents(paths: Sequence[str | Path]) -> list[TrainedAgent]:
    """Load trained policies (run folders or ``final/`` folders) and group them into agents."""
    if not paths:
        raise ValueError("no run folders or checkpoints given")
    groups: dict[tuple, TrainedAgent] = {}
    for path in paths:
        model, meta = load_trained_policy(path)
        params = meta["env_params"]
        # numbers by value, as in run folder names: coin_random_prob 0 and 0.0 are one agent
        reward, mixture = meta.get("reward", "specified"), meta.get("distributions", ["train"])
        key = (
            meta["env_id"],
            meta["algo"],
            canonical_json(params),
            canonical_json(meta["network"]),
            reward,
            canonical_json(mixture),
        )
        if key not in groups:
            name = agent_name(meta["env_id"], meta["algo"], params)
            if reward != "specified" or mixture != ["train"]:  # an agent of known goal
                name += f"@{reward}" + (f" on {'+'.join(mixture)}" if mixture != ["train"] else "")
            groups[key] = TrainedAgent(name, meta["env_id"], params, {}, {})
        agent = groups[key]
        seed = int(meta["seed"])
        if seed in agent.policies:
            raise CheckpointError(f"{path}: a second run of {agent.name} with training seed {seed}")
        agent.policies[seed] = SB3Policy(model, name=agent.name)
        agent.run_dirs[seed] = Path(path)
    return list(groups.values())
