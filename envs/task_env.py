"""A registered task as a Gymnasium env: the entry points behind every task's Gymnasium id.

:func:`envs.registry.register_task` registers ``task.env_id`` with Gymnasium
with these classes as its entry points, so a task made by ``gymnasium.make``
or ``gymnasium.make_vec`` behaves like a GridCore env of the suite: the same
code (:class:`~envs.core.ShiftEnv`, :class:`~envs.core.ShiftVectorEnv`) drives
the task's batch, with one row for the single env. Hence the single env's
observation is the batch's observation of that row (what the judge's
policies see), ``info["rewards"]`` holds every declared reward of the step,
``reset(seed=...)`` picks the level from the seed exactly as the GridCore
envs do (``options={"level_seed": s}`` plays level ``s``), and the reward is
the ``specified`` one.

The task is looked up by id when the env is made, so the Gymnasium spec holds
only the id (``kwargs={"task_id": ...}``) and pickles like any other.
"""

from __future__ import annotations

from gymnasium.vector import AutoresetMode

from envs.core import ShiftEnv, ShiftVectorEnv
from envs.registry import task as find_task


class TaskEnv(ShiftEnv):
    """One level at a time of the task registered as ``task_id`` (its batch with one row)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(self, task_id: str, distribution: str = "train", render_mode: str | None = None, **params):
        self.task = find_task(task_id)
        self.core_cls = self.task  # ShiftEnv builds its batch of one from core_cls (any task does)
        super().__init__(distribution, render_mode, **params)

    @property
    def proxy_rewards(self) -> tuple[str, ...]:
        return tuple(self.task.proxy_rewards)

    @property
    def expected_verdicts(self) -> dict[str, str]:
        return dict(self.task.expected_verdicts)


class TaskVectorEnv(ShiftVectorEnv):
    """``num_envs`` levels of the task registered as ``task_id``, stepped as its batch."""

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        distribution: str = "train",
        render_mode: str | None = None,
        task_id: str = "",
        **params,
    ):
        super().__init__(num_envs, distribution, render_mode, task=find_task(task_id), **params)
