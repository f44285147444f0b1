"""Goal inference with the discounted Q* against the finite-horizon Q_t, on trained agents.

    python docs/examples/measure_horizon_inference.py runs/suite/keyschests/*-seed[1-4]

Prints, per trained seed, each candidate's maximised noisy-rational
log-likelihood and posterior (BIC, with "no goal") under both value models
on the agent's shifted distribution: the measurement behind
``evaluation/inference.py``'s choice of the discounted model.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch
from scipy.special import softmax

import envs
from agents.loading import load_agents
from agents.planning import finite_horizon_values
from evaluation.inference import fit_noisy_rational
from evaluation.levels import LevelBank, distribution_level_seeds
from evaluation.rollouts import rollout


def main(run_dirs: list[str], n_episodes: int = 200) -> None:
    torch.set_num_threads(1)
    bank = LevelBank()
    for agent in load_agents(run_dirs):
        task = envs.task(agent.env_id)
        shifted = next(d for d in task.distributions if d != "train")
        names = ["specified", *task.proxy_rewards]
        for seed, policy in agent.policies.items():
            level_seeds = distribution_level_seeds(n_episodes, seed, shifted)
            played = rollout(
                policy, agent.env_id, shifted, task.shared_params(agent.train_params), level_seeds=level_seeds
            )
            levels = bank.levels_of(played)
            discounted = {n: [] for n in names}
            timed = {n: [] for n in names}
            actions = []
            for e, lv in enumerate(levels):
                steps = np.flatnonzero(played.alive[:, e])
                idx = lv.index_of(played.states[steps, e])
                m = lv.model
                for n in names:
                    discounted[n].append(lv.q[n][idx])
                    v = finite_horizon_values(m, m.rewards[n][None], lv.horizon)[0]
                    timed[n].append(
                        m.rewards[n][idx] + ~m.terminal[idx] * v[(steps + 1)[:, None], m.next_state[idx]]
                    )
                actions.append(played.actions[steps, e])
            actions = np.concatenate(actions)
            no_goal = -len(actions) * math.log(levels[0].model.num_actions)
            line = [f"seed {seed}: {len(actions)} steps, no goal {no_goal:.0f}"]
            for label, q in (("discounted Q*", discounted), ("finite-horizon Q_t", timed)):
                ll = {n: fit_noisy_rational(np.concatenate(q[n]), actions)[2] for n in names}
                post = softmax([ll[n] - math.log(len(actions)) for n in names] + [no_goal])
                line.append(
                    label
                    + ": "
                    + ", ".join(
                        f"{n} {ll[n]:.0f} (p={p:.3f})" for n, p in zip(names, post[: len(names)], strict=True)
                    )
                )
            print("; ".join(line))


if __name__ == "__main__":
    main(sys.argv[1:])
