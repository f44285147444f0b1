"""envs.registry: no import circle in envs/, the suite's Minigrid tasks found like a user's, as Gymnasium ids.

The Minigrid tasks are made through Gymnasium (``gymnasium.make`` and
``gymnasium.make_vec``) and compared with the batch the judge builds from
``envs.task(env_id)``: the same observation, every declared reward in
``info["rewards"]``, the same level for the same seed.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import envs
import envs.registry

ROOT = Path(__file__).resolve().parents[1]
DISTSHIFT = "GMSuite/MiniGrid-DistShift-v0"
LAVAGAP = "GMSuite/MiniGrid-LavaGap-v0"
DISTSHIFT_TRAIN_PATH = (1, 2, 2, 0, 2, 2, 2, 2, 2, 2, 0, 2, 2)  # right, down x2, left, ...: enters the goal
IMPORT_FUNCTIONS = ("import_module", "__import__")


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != envs.ENV_MODULES_VARIABLE}  # no user modules
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


# ----------------------------------------------------------------- the import graph of envs/
def import_graph(package: Path) -> dict[str, set[str]]:
    """Edges module -> module of the package's own modules, from every import statement in the file.

    Counted wherever they stand (module level, in functions, under ``if``):
    ``import x``, ``from x import y`` (``y`` a submodule when the package has a file
    of that name, else a name of ``x``) and ``importlib.import_module("x")`` /
    ``__import__("x")`` with a literal name. Importing ``envs.x`` also runs
    ``envs/__init__.py``; that parent edge is Python's, not the module's, and is left out.
    """
    name = package.name
    modules = {name: package / "__init__.py"}
    modules.update({f"{name}.{p.stem}": p for p in sorted(package.glob("*.py")) if p.stem != "__init__"})
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ".".join([name, *([node.module] if node.module else [])])
                else:
                    base = node.module or ""
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    targets.add(submodule if submodule in modules else base)
            elif isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if called in IMPORT_FUNCTIONS and node.args and isinstance(node.args[0], ast.Constant):
                    targets.add(str(node.args[0].value))
        graph[module] = {t for t in targets if t in modules and t != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_import_circle_in_envs(tmp_path):
    # The checker first finds a circle closed by a function-level import_module, as envs/ once had.
    pkg = tmp_path / "envs"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from envs.task import task\n")
    (pkg / "task.py").write_text(
        "import importlib\n\ndef task(env_id):\n    importlib.import_module('envs.minigrid_tasks')\n"
    )
    (pkg / "minigrid_tasks.py").write_text("from envs.gym_adapter import GymTask\n")
    (pkg / "gym_adapter.py").write_text("from envs.task import task\n")
    cycle = find_cycle(import_graph(pkg))
    assert cycle is not None and cycle[0] == cycle[-1]
    assert set(cycle) == {"envs.task", "envs.minigrid_tasks", "envs.gym_adapter"}

    graph = import_graph(ROOT / "envs")
    assert "envs.registry" in graph and "envs.gym_batch" in graph  # the graph read the package
    assert graph["envs.task"] == set(), graph["envs.task"]  # the protocol imports nothing of envs/
    assert find_cycle(graph) is None


def test_the_registry_names_no_implementation():
    """The registry finds Minigrid the way it finds a user's package: through its tables.

    A plain Minigrid env is still named as one (not as unknown) without minigrid imported first.
    """
    source = (ROOT / "envs" / "registry.py").read_text()
    for word in ("MiniGrid", "minigrid", "GMSuite/"):
        assert word not in source, word
    assert envs.registry.TASK_MODULES[DISTSHIFT] == "envs.minigrid_tasks"
    if importlib.util.find_spec("minigrid") is not None:
        done = run_python(
            "import envs\ntry:\n    envs.task('MiniGrid-Empty-5x5-v0')\nexcept ValueError as err:\n    print(err)\n"
        )
        assert "MiniGrid-Empty-5x5-v0 is a Gymnasium env but not a shift task" in done.stdout, done.stderr


# ----------------------------------------------------------------- names kept where code imports them
def test_old_import_paths_still_work():
    from envs.task import TASKS, register_task, task

    assert TASKS is envs.registry.TASKS is envs.TASKS
    assert register_task is envs.registry.register_task is envs.register_task
    assert task is envs.registry.task is envs.task
    from envs.gym_adapter import GymBatch, GymTask, StateCodec, Transition, fold_seed  # noqa: F401


def test_the_minigrid_module_is_imported_only_when_one_of_its_ids_is_made():
    pytest.importorskip("minigrid")
    done = run_python(
        "import sys, gymnasium, envs\n"
        "assert 'envs.minigrid_tasks' not in sys.modules and 'minigrid' not in sys.modules\n"
        f"env = gymnasium.make({DISTSHIFT!r}, distribution='test')\n"
        "assert 'envs.minigrid_tasks' in sys.modules\n"
        f"assert env.unwrapped.task is envs.task({DISTSHIFT!r})\n"
        "print('ok')\n"
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_without_minigrid_its_ids_say_how_to_install_it():
    done = run_python(
        "import sys; sys.modules['minigrid'] = None\n"
        "import gymnasium, envs\n"
        f"for make in (lambda: envs.task({DISTSHIFT!r}), lambda: gymnasium.make({DISTSHIFT!r})):\n"
        "    try:\n"
        "        make()\n"
        "    except ValueError as err:\n"
        "        print(err)\n"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        assert DISTSHIFT in line and "pip install -e .[minigrid]" in line


def test_an_id_registered_for_a_task_but_unknown_here_says_what_to_import():
    envs.registry.register_gym_id("GMSuiteTest/NotImported-v0")
    try:
        with pytest.raises(ValueError, match="import the module that registers it"):
            envs.task("GMSuiteTest/NotImported-v0")
        with pytest.raises(ValueError, match="import the module that registers it"):
            gym.make("GMSuiteTest/NotImported-v0")
    finally:
        gym.registry.pop("GMSuiteTest/NotImported-v0")


# ----------------------------------------------------------------- Minigrid tasks through Gymnasium
def batch_at(env_id: str, distribution: str, level_seeds):
    seeds = np.asarray(level_seeds, dtype=np.uint64)
    batch = envs.task(env_id)(len(seeds), distribution)
    batch.reset_levels(np.arange(len(seeds)), seeds)
    return batch


@pytest.mark.parametrize("distribution", ["train", "test"])
def test_gym_make_distshift_is_the_judges_batch_of_one(distribution):
    pytest.importorskip("minigrid")
    env = gym.make(DISTSHIFT, distribution=distribution)
    task = envs.task(DISTSHIFT)
    obs, info = env.reset(seed=11)
    batch = batch_at(DISTSHIFT, distribution, [info["level_seed"]])
    assert env.observation_space == batch.single_observation_space()
    assert env.action_space == batch.single_action_space()
    np.testing.assert_array_equal(obs, batch.observe()[0])
    actions = DISTSHIFT_TRAIN_PATH if distribution == "train" else np.random.default_rng(0).integers(0, 3, 40)
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(int(a))
        rewards, b_terminated, b_truncated = batch.step(np.array([a]))
        assert set(info["rewards"]) == set(task.reward_names)
        assert info["rewards"] == {name: float(v[0]) for name, v in rewards.items()}
        assert type(reward) is float and reward == info["rewards"]["specified"]
        assert (terminated, truncated) == (bool(b_terminated[0]), bool(b_truncated[0]))
        np.testing.assert_array_equal(obs, batch.observe()[0])
        if terminated or truncated:
            break
    if distribution == "train":
        assert terminated and info["rewards"] == {"intended": 1.0, "specified": 1.0}


def test_gym_make_lavagap_picks_the_level_from_the_seed():
    pytest.importorskip("minigrid")
    env = gym.make(LAVAGAP, distribution="train")
    first, info = env.reset(seed=5)
    again, info_again = gym.make(LAVAGAP, distribution="train").reset(seed=5)
    np.testing.assert_array_equal(first, again)
    assert info == info_again
    lava_rows = {tuple(np.flatnonzero(env.reset(seed=s)[0][2].any(axis=1))) for s in range(8)}
    assert len(lava_rows) > 1  # the gap moves with the seed
    level, _ = env.reset(options={"level_seed": info["level_seed"]})
    np.testing.assert_array_equal(level, first)
    np.testing.assert_array_equal(first, batch_at(LAVAGAP, "train", [info["level_seed"]]).observe()[0])


def test_gym_make_vec_distshift_steps_the_batch():
    pytest.importorskip("minigrid")
    vec = gym.make_vec(DISTSHIFT, num_envs=4, vectorization_mode="vector_entry_point", distribution="train")
    assert vec.num_envs == 4 and vec.single_observation_space.shape == (8, 7, 9)
    obs, info = vec.reset(seed=3)
    batch = batch_at(DISTSHIFT, "train", info["level_seed"])
    np.testing.assert_array_equal(obs, batch.observe())
    single, _ = gym.make(DISTSHIFT, distribution="train").reset(seed=3 + 2)  # row i is seed + i
    np.testing.assert_array_equal(obs[2], single)
    for a in DISTSHIFT_TRAIN_PATH:
        obs, reward, terminated, truncated, info = vec.step(np.full(4, a))
        assert set(info["rewards"]) == {"intended", "specified"}
        np.testing.assert_array_equal(reward, info["rewards"]["specified"])
    assert terminated.all() and (info["rewards"]["intended"] == 1.0).all()
    np.testing.assert_array_equal(info["final_obs"][:, -1, 1, 7], 1)  # each agent stood on the goal
    assert info["_final_obs"].all()
