"""Any registered Gymnasium env as a shift task: :class:`GymTask` and its batch :class:`GymBatch`.

A Gymnasium env becomes a task (:mod:`envs.task`) once it names its
distributions and its declared rewards::

    task = GymTask(
        "MyOrg/DistShift-v0",
        distributions={"train": {"id": "MiniGrid-DistShift1-v0"}, "test": {"id": "MiniGrid-DistShift2-v0"}},
        rewards={"intended": reached_goal, "specified": reached_goal, "proxy": "info:rewards.proxy"},
        proxy_rewards=("proxy",),
        state_codec=MyCodec(),
    )
    envs.register_task(task)

Registering makes the task known to every app under its id
(``envs.task("MyOrg/DistShift-v0")``) and, unless Gymnasium already knows that
id, registers it with Gymnasium too: ``gymnasium.make(id, distribution="train")``
gives one level of the task as a Gymnasium env, ``gymnasium.make_vec(id,
num_envs=n, vectorization_mode="vector_entry_point")`` the batch
(:mod:`envs.task_env`). The ids the task wraps keep their own registrations.

**Distributions.** Each distribution is a mapping of parameters: an optional
``id`` (the Gymnasium env id; default: the task's ``env``) and keyword
arguments for ``gymnasium.make``. A user's params overlay the distribution's
(:meth:`GymTask.resolve_params`); the keys any distribution sets are the
``distribution_params`` that :meth:`GymTask.shared_params` drops.

**Rewards.** Each declared reward is ``"reward"`` (the env's own reward),
``"info:a.b"`` (``info["a"]["b"]`` of the step; a missing key is an error
naming it) or a function of a :class:`Transition`. ``intended`` and
``specified`` must be declared explicitly: the env's own reward is used only
where the user writes ``"reward"``.

**Levels.** Row ``i`` of a batch holds one unwrapped env, reset with
``env.reset(seed=fold_seed(level_seed))``; the batch keeps its own step limit,
so envs registered with wrappers other than ``TimeLimit`` are refused, naming
them (:mod:`envs.gym_batch`).

**Observations.** ``observation(env, obs) -> np.ndarray`` (``env`` is the
unwrapped env, ``obs`` the env's own observation) or, without it, the env's
observation when it is already an array.

**Exact access** (planners, normalised scores, goal inference): the env's own
``get_state()``/``set_state()``, a ``state_codec``, or a ``state_key`` for the
deepcopy fallback, checked by a determinism probe before first use
(:mod:`envs.gym_exact`). Convention: ``state[:2]`` is the agent's ``(row, col)``
cell when there is one. An env with no state access gets a message naming what
to add.

This module is the adapter's public face; the code lives in :mod:`envs.gym_task`
(declarations and envs), :mod:`envs.gym_batch` (the batch), :mod:`envs.gym_exact`
(exact access and the probe) and :mod:`envs.gym_types` (what user code sees).
"""

from __future__ import annotations

from envs.gym_batch import GymBatch
from envs.gym_exact import MEMO_LIMIT, PROBE_DEPTH, PROBE_SEED, SCRATCH_ENVS, ExactModel
from envs.gym_task import GymTask, reward_reader
from envs.gym_types import SEED_BITS, RewardSpec, StateCodec, Transition, fold_seed

__all__ = [
    "MEMO_LIMIT",
    "PROBE_DEPTH",
    "PROBE_SEED",
    "SCRATCH_ENVS",
    "SEED_BITS",
    "ExactModel",
    "GymBatch",
    "GymTask",
    "RewardSpec",
    "StateCodec",
    "Transition",
    "fold_seed",
    "reward_reader",
]
