"""Judging in parallel processes: the one driver behind the suite's, the validations' and the study's judging.

Each work item is judged in a joblib process of its own: the process loads
its agents itself (``load(*item)``: models do not cross process boundaries),
runs on one torch thread (the processes share the cores) and judges them with
:func:`evaluation.judge.judge_each`, sharing one level bank within the item.
Items should share no levels (one env, or one set of seeds, each), so nothing
is lost by judging them apart. ``load``, each item and a ``progress=`` hook
must be picklable (top-level functions; the default log lines are).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from joblib import Parallel, delayed

from agents.loading import TrainedAgent
from evaluation.judge import Judgement, judge_each


def judge_in_processes(
    load: Callable[..., Sequence[TrainedAgent]],
    work: Sequence[tuple],
    n_jobs: int = 2,
    keep_rollouts: bool = True,
    **judge_kwargs,
) -> list[list[Judgement]]:
    """Per work item, in ``work``'s order: :func:`~evaluation.judge.judge_each` of ``load(*item)``.

    ``judge_kwargs`` go to ``judge_each``. Without ``keep_rollouts`` each
    judgement's rollouts are dropped in its process: they are most of what
    would be sent back, and a caller that reads only the verdicts and scores
    need not wait for them.
    """
    return Parallel(n_jobs=n_jobs, verbose=0)(
        delayed(_judge_item)(load, tuple(item), keep_rollouts, judge_kwargs) for item in work
    )


def _judge_item(load, item: tuple, keep_rollouts: bool, kwargs: dict) -> list[Judgement]:
    import torch

    torch.set_num_threads(1)
    agents = load(*item)
    judgements = judge_each(agents, **kwargs) if agents else []
    if not keep_rollouts:
        for j in judgements:
            j.rollouts = {}
    return judgements
