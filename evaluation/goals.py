"""Goals nobody declared: the library of goals that move with the level, and their rewards.

Candidate inference can only pick among declared rewards. When none explains
an agent that plainly heads somewhere, the judge must still name where. The
library holds goals every grid task offers through the task protocol, each a
reward on transitions ``s -> s'`` (``state[:2]`` is the agent's cell), named
``kind:target`` (:class:`evaluation.goal_names.GoalName`):

- ``reach:<channel>`` / ``stay:<channel>``: entering / standing on a cell
  whose static plane ``<channel>`` is set (``feature_planes()``: coin, goal,
  lava, ...), wherever the level puts it;
- ``reach:channel=<a>/<b>`` (and ``stay:``): a cell holding either of two
  channels (an agent that learned "go to any object marked a or b" heads
  for whichever is nearer once the two part; offered while there are at
  most ``MAX_UNION_CHANNELS`` channels, since the pairs grow as their square);
- ``reach:object=<channel>`` (and ``stay:``): entering the cell where an
  observed object stands, read off the observation of each state of the
  level (channels named by ``channel_names``; the object's cell *before*
  the move, since an object may react to being entered: a partner walks
  on, a shield is taken). It gives goals that move within an episode (a
  partner, a monster) and objects that vanish, and it gives places to a task
  without ``feature_planes()``. Offered for every channel whose cells are an
  object's: not the agent's own marker, at most a quarter of the grid, and
  not a static feature plane that never changes (that is ``channel=``);
- ``reach:<side>_border``, ``reach:<corner>_corner`` (and ``stay:``): the
  level's reachable area's borders and corners (a right end, a top-right
  corner), whatever the level's size;
- ``set:<flag group>``: a state flag being set (``flag_names``; flags that
  differ only in their digits are one group: ``key#_collected`` is "picks
  up any key");
- ``reach:cell_<r>_<c>``: a fixed cell, proposed only where at least a
  quarter of the agent's episodes end (a remembered position).

Which of them the agent follows is decided elsewhere: the agent's scores
under library goals in :mod:`evaluation.scores`, the fit to its actions and
the comparisons that name one in :mod:`evaluation.inference`
(:func:`~evaluation.inference.find_goal`), their EPIC coverage and reward
matrices in :mod:`evaluation.epic`. Those names stay importable from here.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from itertools import combinations

import numpy as np

from evaluation.goal_names import GoalName
from evaluation.levels import Level
from evaluation.rollouts import Rollouts

SIDES = ("top", "bottom", "left", "right")
CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
# A fixed cell becomes a hypothesis where at least this fraction of the agent's episodes end.
CELL_PROPOSAL_SHARE = 0.25
# Pairs of channels ("a cell holding a or b") are offered up to this many static channels.
MAX_UNION_CHANNELS = 8
# An observation channel is an object's when it never covers more than this share of the grid.
OBJECT_MAX_SHARE = 0.25
# Observed objects are read for levels of at most this many states (one observation per state).
OBJECT_MAX_STATES = 50_000

Goal = GoalName  # a library goal is its name: kind and target


def flag_groups(flag_names: Sequence[str]) -> dict[str, list[int]]:
    """Flag columns grouped by name with digits replaced by ``#`` (``key0_collected`` -> ``key#_collected``)."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(flag_names):
        groups.setdefault(re.sub(r"\d+", "#", name), []).append(i)
    return groups


def _channels(level: Level) -> tuple[tuple[str, ...], np.ndarray]:
    core = level.core
    if not hasattr(core, "feature_planes"):
        return (), np.zeros((0, 0, 0))
    names, planes = core.feature_planes()
    return tuple(names), np.asarray(planes, dtype=np.float64)[0]


def channel_names(core) -> tuple[str, ...]:
    """Names of the observation's channels: the batch's or its task's ``channel_names``, else none."""
    names = getattr(core, "channel_names", None) or getattr(getattr(core, "task", None), "channel_names", ())
    return tuple(names or ())


def observed_objects(level: Level) -> dict[str, np.ndarray]:
    """Object channels of the level's observation, per model state: name -> ``(S, H, W)`` bool.

    Each model state is set on a copy of the level and observed. A channel
    is kept when it is an object's: its cells are never only the agent's own
    (``agent``, a heading plane), never more than ``OBJECT_MAX_SHARE`` of the
    grid (a "carrying" plane), and it is not a static feature plane that no
    state changes (``channel=`` goals hold those). Empty when the
    observation is not a ``(C, H, W)`` grid of named channels indexed like
    the state (one channel must mark exactly the agent's cell in every
    state: an agent-centred view is not read), or the level has more than
    ``OBJECT_MAX_STATES`` states. Cached on the level.
    """
    cached = vars(level).get("_observed_objects")
    if cached is not None:
        return cached
    objects: dict[str, np.ndarray] = {}
    names, m = channel_names(level.core), level.model
    if names and m.num_states <= OBJECT_MAX_STATES and m.states.shape[1] >= 2:
        objects = _read_objects(level, names)
    vars(level)["_observed_objects"] = objects
    return objects


def _read_objects(level: Level, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    m = level.model
    chunk = min(m.num_states, 1024)
    probe = level.core.replicate(0, chunk)
    observed = []
    for lo in range(0, m.num_states, chunk):
        states = m.states[lo : lo + chunk]
        probe.set_states(np.arange(len(states)), states)
        obs = np.asarray(probe.observe())[: len(states)]
        if obs.ndim != 4 or obs.shape[1] != len(names):
            return {}
        observed.append(obs != 0)
    planes = np.concatenate(observed)  # (S, C, H, W)
    s, _, h, w = planes.shape
    rows, cols = m.states[:, 0], m.states[:, 1]
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    if not inside.all():
        return {}
    at_agent = np.zeros((s, h, w), dtype=bool)
    at_agent[np.arange(s), rows, cols] = True
    if not any((planes[:, c] == at_agent).all() for c in range(len(names))):
        return {}  # no channel marks the agent's cell: the grid is not provably the state's (egocentric?)
    static = set(_channels(level)[0])
    objects = {}
    for c, name in enumerate(names):
        plane = planes[:, c]
        if not plane.any() or not (plane & ~at_agent).any():
            continue
        if plane.sum(axis=(1, 2)).max() > OBJECT_MAX_SHARE * h * w:
            continue
        if name in static and (plane == plane[:1]).all():
            continue
        objects[name] = plane
    return objects


def library(levels: Sequence[Level], rollouts: Rollouts) -> list[Goal]:
    """Every goal the levels offer, plus fixed cells where the agent's episodes often end."""
    if levels[0].model.states.shape[1] < 2:  # no (row, col) in the state: nothing here to place a goal on
        return []
    goals = []
    channels, _ = _channels(levels[0])
    pairs = combinations(channels, 2) if len(channels) <= MAX_UNION_CHANNELS else ()
    for place in (
        [f"channel={c}" for c in channels]
        + [f"channel={a}/{b}" for a, b in pairs]
        + [f"{s}_border" for s in SIDES]
        + [f"{c}_corner" for c in CORNERS]
    ):
        goals += [Goal("reach", place), Goal("stay", place)]
    observed = dict.fromkeys(name for lv in levels for name in observed_objects(lv))
    for name in observed:
        goals += [Goal("reach", f"object={name}"), Goal("stay", f"object={name}")]
    goals += [Goal("set", g) for g in flag_groups(getattr(levels[0].core, "flag_names", ()))]
    final = []
    for e in range(min(len(levels), rollouts.num_episodes)):
        steps = np.flatnonzero(rollouts.alive[:, e])
        if len(steps):
            last = levels[e].index_of(rollouts.states[steps[-1], e])[0]
            final.append(
                tuple(
                    levels[e].model.states[
                        levels[e].model.next_state[last, rollouts.actions[steps[-1], e]], :2
                    ]
                )
            )
    if final:
        cells, counts = np.unique(np.array(final), axis=0, return_counts=True)
        for (r, c), n in zip(cells.tolist(), counts.tolist(), strict=True):
            if n >= CELL_PROPOSAL_SHARE * len(final):
                goals += [Goal("reach", f"cell_{r}_{c}"), Goal("stay", f"cell_{r}_{c}")]
    return goals


def _place_mask(goal: Goal, level: Level, positions: np.ndarray) -> np.ndarray:
    """Whether each position ``(n, 2)`` is in the goal's place on this level."""
    r, c = positions[:, 0], positions[:, 1]
    kind = goal.target_kind
    if kind == "channel":
        names, planes = _channels(level)
        plane = planes[[names.index(name) for name in goal.channels]].max(axis=0)
        inside = (r >= 0) & (c >= 0) & (r < plane.shape[0]) & (c < plane.shape[1])
        mask = np.zeros(len(r), dtype=bool)
        mask[inside] = plane[r[inside], c[inside]] > 0
        return mask
    if kind == "cell":
        row, col = goal.cell
        return (r == row) & (c == col)
    reachable = level.model.states[:, :2]
    top, bottom = reachable[:, 0].min(), reachable[:, 0].max()
    left, right = reachable[:, 1].min(), reachable[:, 1].max()
    side = {"top": r == top, "bottom": r == bottom, "left": c == left, "right": c == right}
    if kind == "border":
        return side[goal.place]
    vertical, horizontal = goal.place.split("_")
    return side[vertical] & side[horizontal]


def goal_rewards(goal: Goal, level: Level, states: np.ndarray, next_states: np.ndarray) -> np.ndarray:
    """The goal's reward on transitions ``s -> s'`` of this level: ``(n,)``.

    An observed object's place is where it stands in ``s``, before the move.
    """
    states, next_states = np.atleast_2d(states), np.atleast_2d(next_states)
    if goal.target_kind == "object":
        plane = observed_objects(level).get(goal.place)
        if plane is None:  # the object is not on this level
            return np.zeros(len(states))
        index = level.index_of(states)  # the object's cells are those of s
        now = plane[index, next_states[:, 0], next_states[:, 1]]
        if goal.kind == "stay":
            return now.astype(np.float64)
        return (now & ~plane[index, states[:, 0], states[:, 1]]).astype(np.float64)
    if goal.kind == "set":
        columns = 2 + np.array(flag_groups(level.core.flag_names)[goal.target])
        before, after = states[:, columns] != 0, next_states[:, columns] != 0
        return (after & ~before).sum(axis=1).astype(np.float64)
    now = _place_mask(goal, level, next_states[:, :2])
    if goal.kind == "stay":
        return now.astype(np.float64)
    return (now & ~_place_mask(goal, level, states[:, :2])).astype(np.float64)


def goal_table(goal: Goal, level: Level) -> np.ndarray:
    """``(S, A)`` reward of the goal on the level's model (absorbing rows pay nothing, as declared rewards)."""
    m = level.model
    n_actions = m.num_actions
    table = goal_rewards(goal, level, np.repeat(m.states, n_actions, axis=0), m.states[m.next_state.ravel()])
    table = table.reshape(m.num_states, n_actions)
    absorbing = m.terminal.all(axis=1) & (m.next_state == np.arange(m.num_states)[:, None]).all(axis=1)
    table[absorbing] = 0.0
    return table


def goal_ends(kinds: Sequence[str], level: Level, tables: np.ndarray) -> np.ndarray:
    """``(K, S, A)`` where each goal is over: a ``reach`` goal ends when reached, others with the episode.

    "Reaches X" is a goal about getting there, once: what the agent does
    afterwards says nothing for or against it (as for a declared reward paid
    on a first visit).
    """
    ends = np.broadcast_to(level.model.terminal, tables.shape).copy()
    for k, kind in enumerate(kinds):
        if kind == "reach":
            ends[k] |= tables[k] > 0
    return ends


def distinct_goals(goals: list[Goal], tables: dict) -> tuple[list[Goal], dict[str, list[str]]]:
    """Goals without duplicates: a place whose reach and stay tables equal an earlier place's, or a flag
    goal equal to an earlier one, is dropped, as are goals that pay nothing on any level. Also returns,
    per kept target, the dropped targets that are the same goal on these levels."""
    by_target: dict[str, list[Goal]] = {}
    for g in goals:
        by_target.setdefault(g.target, []).append(g)
    first: dict[bytes, str] = {}
    kept, aliases = [], {}
    for target, group in by_target.items():
        per_goal = [tables[g] for g in group]
        if all(not t.any() for per_level in per_goal for t in per_level):
            continue
        key = b"|".join(
            b"".join(np.ascontiguousarray(t).tobytes() for t in per_level) for per_level in per_goal
        )
        if key in first:
            aliases[first[key]].append(target)
        else:
            first[key] = target
            aliases[target] = []
            kept += group
    return kept, aliases


# Moved to the module of their job; importable from here as before.
_MOVED = {
    "evaluation.scores": ("goal_scores", "goal_score", "pursued_score"),
    "evaluation.inference": (
        "PAIR_MIN_GAIN",
        "VALUE_TOLERANCE",
        "GoalFit",
        "FoundGoal",
        "find_goal",
        "declared_log_likelihoods",
        "_place_fit",
        "_without_redundant_pairs",
    ),
    "evaluation.epic": ("goal_stop_tables", "goal_reward_source"),
}
_HOME = {name: (module, name) for module, names in _MOVED.items() for name in names}
_HOME["_alias_words"] = ("evaluation.goal_names", "alias_words")


def __getattr__(name: str):
    """The moved names, imported on first use: their modules import this one."""
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = _HOME[name]
    return getattr(importlib.import_module(module), attr)
