"""Train-then-judge orchestration shared by the demo, the suite, the curves and the studies.

:func:`train_runs` trains several configs (resuming or skipping finished
runs) in parallel processes, one per core, or as one Slurm job each
(:func:`train_runs_slurm`); loading and judging the results is library code
(:mod:`agents.loading`, :func:`evaluation.judge.judge_agents`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from joblib import Parallel, delayed

from agents.training import TrainConfig, finished_metrics, train
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


class SlurmTrainingError(RuntimeError):
    """Slurm jobs of :func:`train_runs_slurm` that failed, each named with its state and log."""


def require_slurm() -> None:
    """Raises ``ValueError`` when this machine has no ``sbatch``: checked before any work."""
    if shutil.which("sbatch") is None:
        raise ValueError("launcher=slurm: no Slurm here (sbatch not found); use launcher=local")


def slurm_executor(folder: str | Path, params: Mapping):
    """A submitit executor for Slurm with ``params`` (submitit's names: ``timeout_min``,
    ``cpus_per_task``, ``mem_gb``, ``slurm_partition``, ``slurm_array_parallelism``, ...).

    Raises ``ValueError`` when this machine has no ``sbatch``, before any job is submitted."""
    require_slurm()
    import submitit

    executor = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
    executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return executor


def train_runs_slurm(
    jobs: Sequence[tuple[TrainConfig, Path]],
    folder: str | Path,
    params: Mapping,
    eval_episodes: int = 100,
) -> list[dict]:
    """Train every ``(config, run_dir)`` as one task of a Slurm job array and wait for all of them.

    Finished runs are not submitted (their metrics are read back), so a re-run of a study resubmits
    only what is missing; an interrupted run resumes from its checkpoint in its new job. Every task
    is awaited; then, if any failed, :class:`SlurmTrainingError` names each failed job, its state and
    its log (submitit's files under ``folder``)."""
    done, todo = {}, []
    for config, run_dir in jobs:
        metrics = finished_metrics(Path(run_dir))
        if metrics is not None:
            done[str(run_dir)] = {"run_dir": str(run_dir), **metrics}
        else:
            todo.append((config, run_dir))
    if todo:
        executor = slurm_executor(folder, params)
        submitted = executor.map_array(
            _train_one,
            [config.to_dict() for config, _ in todo],
            [str(run_dir) for _, run_dir in todo],
            [eval_episodes] * len(todo),
        )
        print(
            f"slurm: {len(submitted)} training jobs submitted ({submitted[0].job_id.split('_')[0]}); "
            f"{len(done)} finished runs reused; logs under {folder}",
            flush=True,
        )
        failures = []
        for job, (_, run_dir) in zip(submitted, todo, strict=True):
            try:
                done[str(run_dir)] = job.result()
            except Exception as error:  # noqa: BLE001 - every failure is named below, after all jobs end
                last = (str(error).strip().splitlines() or [type(error).__name__])[-1]
                failures.append(f"job {job.job_id} ({run_dir}) {job.state}, log {job.paths.stderr}: {last}")
        if failures:
            raise SlurmTrainingError(
                f"{len(failures)} of {len(todo)} Slurm training jobs failed:\n" + "\n".join(failures)
            )
    return [done[str(run_dir)] for _, run_dir in jobs]
