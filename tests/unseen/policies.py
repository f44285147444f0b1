"""Observation-only policies of known goal: shortest path (BFS) to the cells of given channels.

Not the judge's planners: they read the observation, break ties between
shortest paths at random and take a random action with probability ``eps``.
"""

from collections import deque

import numpy as np

MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right


def _first_step(wall: np.ndarray, start: tuple, targets: np.ndarray, rng) -> int | None:
    if targets[start]:
        return None
    previous = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if targets[cell]:
            while previous[cell] != start:
                cell = previous[cell]
            return MOVES.index((cell[0] - start[0], cell[1] - start[1]))
        for a in rng.permutation(4):
            n = (cell[0] + MOVES[a][0], cell[1] + MOVES[a][1])
            if 0 <= n[0] < wall.shape[0] and 0 <= n[1] < wall.shape[1] and not wall[n] and n not in previous:
                previous[n] = cell
                queue.append(n)
    return None


class ShortestPathTo:
    """Heads for the nearest cell of ``target_channels`` (channel indices); ``agent``/``wall``: channel indices."""

    def __init__(self, target_channels, agent: int, wall: int, eps: float = 0.1, seed: int = 0):
        self.targets, self.agent, self.wall = list(target_channels), agent, wall
        self.eps = eps
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs):
        actions = np.zeros(len(obs), dtype=np.int64)
        for i, o in enumerate(np.asarray(obs)):
            a = None
            if self.rng.random() >= self.eps:
                start = tuple(int(v) for v in np.argwhere(o[self.agent])[0])
                a = _first_step(o[self.wall].astype(bool), start, o[self.targets].any(axis=0), self.rng)
            actions[i] = self.rng.integers(4) if a is None else a
        return actions


def landmark_follower():
    """LandmarkGem: heads for the landmark (channel 4)."""
    return ShortestPathTo([4], agent=1, wall=0)


def gem_seeker():
    """LandmarkGem: heads for the gem, red or blue (channels 2, 3)."""
    return ShortestPathTo([2, 3], agent=1, wall=0)
