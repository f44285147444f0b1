"""Wall time of the judge on 1000 CoinRun ``test`` episodes (target: 30 s on 2 cores).

The stand-in agent is a Boltzmann planner for ``reach_right_end`` (a
goal-misgeneralizing agent by construction). The timed work is everything the
judge does for one seed: rolling the agent out on ``train`` and ``test``,
enumerating and solving every level, the random and optimal reference
rollouts, normalised scores, candidate inference, MaxEnt IRL and EPIC, from a
cold cache. The stand-in agent's own planning (its own solver, not shared with
the judge's) is inside the total, so the figure is pessimistic for a learned
agent. The last line is the ratio of the total to the target.

    python benchmarks/evaluator_speed.py [--episodes 1000] [--target 30]
"""

from __future__ import annotations

import argparse
import time

from agents.policies import PlannerPolicy
from evaluation.judge import judge
from evaluation.levels import LevelBank, ParamsKeyedSolver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--target", type=float, default=30.0)
    parser.add_argument("--env", default="GMSuite/CoinRun-v0")
    args = parser.parse_args()

    agent_solver = ParamsKeyedSolver()
    agent = PlannerPolicy("reach_right_end", beta=300.0, seed=0, solver=agent_solver)
    bank = LevelBank()
    start = time.perf_counter()
    (judgement,) = judge(agent, args.env, n_episodes=args.episodes, seed=0, distributions=["test"], bank=bank)
    total = time.perf_counter() - start
    print(f"{args.env}: {args.episodes} episodes per distribution (train + test), 1 seed")
    print(f"verdict: {judgement.verdict} ({judgement.goal}); {judgement.reason}")
    print(f"IRL on {judgement.irl['n_levels']} levels, EPIC on up to 200 levels")
    print(f"wall time: {total:.1f} s (target {args.target:.0f} s)")
    print(f"{total / args.target:.2f}")


if __name__ == "__main__":
    main()
