"""Finding a task by its env id: registered tasks, lazily imported task modules, Gymnasium ids.

:func:`task` is how every app gets from an env id to its task
(:class:`envs.task.Task`), in this order:

1. a task registered with :func:`register_task` (a Gymnasium adapter, a
   user's own implementation);
2. an id in :data:`TASK_MODULES`: its module is imported (it registers the
   task) the first time the id is asked for. This is how the suite's
   optional tasks are found (their module needs an extra package), and a
   user's package can do the same with :func:`register_task_module`;
3. a Gymnasium id whose env class carries its task as ``core_cls`` (the
   GridCore envs of :data:`envs.ENVIRONMENTS`).

The registry knows no implementation and no id: the tables are filled by
whoever defines the tasks (``envs/__init__.py`` for the suite).

Every registered task is also a Gymnasium id (unless Gymnasium already knows
the id): ``gymnasium.make(id, distribution=...)`` and ``gymnasium.make_vec(id,
num_envs=n, vectorization_mode="vector_entry_point", distribution=...)`` give
the task's levels as :mod:`envs.task_env` envs, which look the task up here by
id when they are made.
"""

from __future__ import annotations

import importlib

import gymnasium

from envs.task import Task, check_declarations

# Gymnasium entry points of a task's id (envs.task_env); the env looks the task up by `task_id`.
TASK_ENV_ENTRY = "envs.task_env:TaskEnv"
TASK_VECTOR_ENV_ENTRY = "envs.task_env:TaskVectorEnv"

# Tasks that are not GridCore classes (Gymnasium adapters, users' own), by env id.
TASKS: dict[str, Task] = {}
# env id -> module that registers its task when imported; imported on the first lookup of the id.
TASK_MODULES: dict[str, str] = {}
# Packages whose import registers Gymnasium ids: imported, when installed, before an id is
# called unknown, so that a plain env of theirs is named as such.
GYM_ID_PACKAGES: list[str] = []


def register_gym_id(env_id: str) -> None:
    """Register ``env_id`` with Gymnasium as a task env, unless Gymnasium already knows the id."""
    if env_id in gymnasium.registry:
        return
    try:
        gymnasium.register(
            id=env_id,
            entry_point=TASK_ENV_ENTRY,
            vector_entry_point=TASK_VECTOR_ENV_ENTRY,
            kwargs={"task_id": env_id},
            disable_env_checker=True,  # as for the GridCore envs: the contract tests check them
        )
    except gymnasium.error.Error as err:
        raise ValueError(f"{env_id}: a task's id must be a valid Gymnasium id: {err}") from None


def register_task(task: Task, *, replace: bool = False) -> Task:
    """Make ``task`` known to every app under ``task.env_id`` and to Gymnasium under the same id.

    ``envs.task(env_id)`` finds it; ``gymnasium.make(env_id, distribution=...)`` makes one level
    of it. Registering an id twice keeps the first task unless ``replace``.
    """
    missing = [
        name
        for name in ("env_id", "distributions", "reward_names", "resolve_params", "shared_params")
        if not hasattr(task, name)
    ]
    if missing or not callable(task):
        raise ValueError(f"{task!r} is not a task: it lacks {missing or ['__call__']} (envs.task.Task)")
    check_declarations(task)
    if task.env_id in TASKS and not replace:
        return TASKS[task.env_id]
    register_gym_id(task.env_id)
    TASKS[task.env_id] = task
    return task


def register_task_module(env_id: str, module: str) -> None:
    """Find ``env_id``'s task by importing ``module`` the first time it is asked for.

    The id is registered with Gymnasium at once, so ``gymnasium.make(env_id)`` works before the
    module is imported. An ImportError of the module (an optional package missing) is reported,
    with its message, when the task is asked for.
    """
    if not isinstance(module, str) or not module:
        raise ValueError(f"{env_id}: the task module must be a module name, got {module!r}")
    TASK_MODULES.setdefault(env_id, module)
    register_gym_id(env_id)


def register_gym_id_package(package: str) -> None:
    """Import ``package`` (when installed) before calling an id unknown: its import registers ids."""
    if package not in GYM_ID_PACKAGES:
        GYM_ID_PACKAGES.append(package)


def _import_task_module(env_id: str) -> None:
    module = TASK_MODULES[env_id]
    try:
        importlib.import_module(module)
    except ImportError as err:
        raise ValueError(f"{env_id} is defined in {module}, which cannot be imported: {err}") from None
    if env_id not in TASKS:
        raise ValueError(f"{env_id}: importing {module} did not register it (envs.register_task)")


def _import_gym_id_packages() -> None:
    for package in GYM_ID_PACKAGES:
        try:
            importlib.import_module(package)
        except ImportError:
            continue  # not installed: its ids are unknown here


def task(env_id: str) -> Task:
    """The task behind an env id (module docstring: where it is looked for, in order).

    A Gymnasium env that declares no distributions and rewards is not a task;
    the message says what to add.
    """
    if env_id in TASKS:
        return TASKS[env_id]
    if env_id in TASK_MODULES:
        _import_task_module(env_id)
        return TASKS[env_id]
    if env_id not in gymnasium.registry:
        _import_gym_id_packages()
    if env_id not in gymnasium.registry:
        namespace = env_id.split("/", 1)[0] + "/" if "/" in env_id else None
        neighbours = {k for k in gymnasium.registry if namespace and k.startswith(namespace)}
        known = sorted(set(TASKS) | set(TASK_MODULES) | neighbours)
        raise ValueError(f"unknown environment {env_id!r}; registered tasks: {known}")
    spec = gymnasium.registry[env_id]
    if spec.entry_point == TASK_ENV_ENTRY:
        raise ValueError(
            f"{env_id} is registered as a task env, but no task is registered under it in this process: "
            "import the module that registers it first (an env config's module:, or GMSUITE_ENV_MODULES)"
        )
    entry = spec.entry_point
    env_cls = gymnasium.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
    core = getattr(env_cls, "core_cls", None)
    if core is not None:
        return core
    raise ValueError(
        f"{env_id} is a Gymnasium env but not a shift task: it declares no distributions and no "
        "rewards (intended, specified, proxies). Wrap it with envs.gym_adapter.GymTask(env_id, "
        "distributions={'train': {...}, 'test': {...}}, rewards={...}) and envs.register_task(...)"
    )
