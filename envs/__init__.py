"""Shift environments of the goal-misgeneralization suite.

``import envs`` registers every environment of :data:`ENVIRONMENTS` under the
``GMSuite/`` namespace, with a single-env entry point (``gymnasium.make``) and
a batched one (``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")``).
The tasks of :data:`TASK_MODULES` (the Minigrid ones: minigrid is an optional
extra) are registered the same two ways, and their module is imported the
first time one of them is made or asked for (:mod:`envs.registry`).

Environments from users' own packages are found three ways, all without
editing this repo: an entry point in the group ``gmsuite.envs`` (loaded on
``import envs``), a module named by an env config's ``module:`` key, and the
modules listed in the environment variable ``GMSUITE_ENV_MODULES``
(comma-separated; the apps set it, so worker processes and Slurm jobs import
them too). Each such module registers its envs when imported
(:func:`register` or :func:`register_task`); a package may instead name the
module of an id with :func:`register_task_module`, to be imported when the id
is first asked for, as the suite does for its Minigrid tasks.
"""

from __future__ import annotations

import importlib
import os
from importlib import metadata

import gymnasium

from envs.core import GridCore, ShiftEnv, ShiftVectorEnv
from envs.registry import TASKS, register_gym_id_package, register_task, register_task_module, task
from envs.task import VERDICTS, ExactAccess, LevelBatch, Task

# id -> (module, single-env class, vector-env class); one row per environment.
ENVIRONMENTS: dict[str, tuple[str, str, str]] = {
    "GMSuite/CoinRun-v0": ("envs.coinrun", "CoinRun", "CoinRunVector"),
    "GMSuite/Maze-v0": ("envs.maze", "Maze", "MazeVector"),
    "GMSuite/TomatoWatering-v0": ("envs.tomato", "TomatoWatering", "TomatoWateringVector"),
    "GMSuite/BoatRace-v0": ("envs.boatrace", "BoatRace", "BoatRaceVector"),
    "GMSuite/LavaShift-v0": ("envs.lavashift", "LavaShift", "LavaShiftVector"),
    "GMSuite/GoalShift-v0": ("envs.goalshift", "GoalShift", "GoalShiftVector"),
    "GMSuite/KeysChests-v0": ("envs.keyschests", "KeysChests", "KeysChestsVector"),
    "GMSuite/KeysChestsMany-v0": ("envs.keyschests", "KeysChestsMany", "KeysChestsManyVector"),
    "GMSuite/FollowPartner-v0": ("envs.followpartner", "FollowPartner", "FollowPartnerVector"),
    "GMSuite/MonsterShields-v0": ("envs.monstershields", "MonsterShields", "MonsterShieldsVector"),
    "GMSuite/ColourShape-v0": ("envs.colourshape", "ColourShape", "ColourShapeVector"),
}


# id -> module that registers the task when imported (imported on first use: Minigrid needs an extra,
# and the Gymnasium-adapter tasks register Gymnasium ids of their own).
TASK_MODULES: dict[str, str] = {
    "GMSuite/MiniGrid-DistShift-v0": "envs.minigrid_tasks",
    "GMSuite/MiniGrid-LavaGap-v0": "envs.minigrid_tasks",
    "GMSuite/PointMass-v0": "envs.pointmass",
    "GMSuite/FrozenShift-v0": "envs.frozenlake",
}


def register(env_id: str, module: str, env_class: str, vector_class: str) -> None:
    """Register one shift environment (idempotent, so re-imports are harmless)."""
    if env_id in gymnasium.registry:
        return
    gymnasium.register(
        id=env_id,
        entry_point=f"{module}:{env_class}",
        vector_entry_point=f"{module}:{vector_class}",
        disable_env_checker=True,
    )
    ENVIRONMENTS.setdefault(env_id, (module, env_class, vector_class))


def core_class(env_id: str) -> Task:
    """Old name of :func:`envs.task.task` (the task behind an env id); kept for existing code."""
    return task(env_id)


for _env_id, _row in list(ENVIRONMENTS.items()):
    register(_env_id, *_row)
for _env_id, _module in TASK_MODULES.items():
    register_task_module(_env_id, _module)
register_gym_id_package("minigrid")  # its MiniGrid-* ids are named as plain envs, not as unknown

ENV_MODULES_VARIABLE = "GMSUITE_ENV_MODULES"


def import_env_module(module: str) -> None:
    """Import a user's env module (it registers its envs) and remember it for worker processes."""
    if not isinstance(module, str) or not module:
        raise ValueError(f"env module must be a module name, got {module!r}")
    try:
        importlib.import_module(module)
    except ImportError as err:
        raise ValueError(f"cannot import env module {module!r}: {err}") from None
    known = [m for m in os.environ.get(ENV_MODULES_VARIABLE, "").split(",") if m]
    if module not in known:
        os.environ[ENV_MODULES_VARIABLE] = ",".join([*known, module])


def _load_user_envs() -> None:
    for entry in metadata.entry_points(group="gmsuite.envs"):
        entry.load()
    for module in filter(None, os.environ.get(ENV_MODULES_VARIABLE, "").split(",")):
        importlib.import_module(module)


_load_user_envs()

__all__ = [
    "ENVIRONMENTS",
    "TASKS",
    "VERDICTS",
    "ExactAccess",
    "GridCore",
    "LevelBatch",
    "ShiftEnv",
    "ShiftVectorEnv",
    "TASK_MODULES",
    "Task",
    "core_class",
    "import_env_module",
    "register",
    "register_task",
    "register_task_module",
    "task",
]
