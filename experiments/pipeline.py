"""Train-then-judge orchestration shared by the demo, the suite and the curves.

:func:`train_runs` trains several configs (resuming or skipping finished
runs) in parallel processes, one per core; loading and judging the results is
library code (:mod:`agents.loading`, :func:`evaluation.judge.judge_agents`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from joblib import Parallel, delayed

from agents.training import TrainConfig, train
from evaluation.periodic import make_evaluator


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
