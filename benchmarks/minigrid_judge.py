"""Seconds per agent for the judge on Minigrid levels, beside the CoinRun analog in the same run.

Minigrid tasks go through the Gymnasium adapter (one Python env per level,
stepped in a loop; exact state by Minigrid's grid encoding), the suite's own
envs through the batched numpy core. The stand-in agent is the exact planner
for ``specified`` (its own solver, not shared with the judge's, so the figure
is pessimistic for a learned agent). Timed: everything the judge does for one
agent and one seed from a cold cache (rollouts on ``train`` and ``test``,
level models, references, scores, goal inference, MaxEnt IRL, EPIC).

    python benchmarks/minigrid_judge.py [--episodes 200]

The last line is the ratio of the Minigrid 8x8 time to the CoinRun time.
"""

from __future__ import annotations

import argparse
import time

import envs
from agents.planning import LevelSolver
from agents.policies import PlannerPolicy
from envs.minigrid_tasks import minigrid_task
from evaluation.judge import judge
from evaluation.levels import LevelBank

EMPTY_8X8 = "Bench/MiniGrid-Empty8x8-Shift-v0"


def seconds_per_agent(env_id: str, episodes: int) -> tuple[float, str]:
    agent = PlannerPolicy("specified", seed=0, solver=LevelSolver())
    start = time.perf_counter()
    (judgement,) = judge(agent, env_id, n_episodes=episodes, seed=0, distributions=["test"], bank=LevelBank())
    return time.perf_counter() - start, f"{judgement.verdict}; {judgement.reason}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    args = parser.parse_args()
    # An 8x8 room: the agent starts in the top-left corner (train) or anywhere (test, 6x6 interior).
    minigrid_task(
        EMPTY_8X8,
        {"train": "MiniGrid-Empty-8x8-v0", "test": {"id": "MiniGrid-Empty-8x8-v0", "agent_start_pos": None}},
        expected_verdicts={"test": "robust"},
    )
    rows = []
    for env_id in (EMPTY_8X8, "GMSuite/MiniGrid-DistShift-v0", "GMSuite/CoinRun-v0"):
        envs.task(env_id)
        seconds, outcome = seconds_per_agent(env_id, args.episodes)
        rows.append((env_id, seconds))
        print(f"{env_id}: {seconds:.1f} s per agent ({args.episodes} episodes per distribution): {outcome}")
    print(f"{rows[0][1] / rows[-1][1]:.2f}")


if __name__ == "__main__":
    main()
