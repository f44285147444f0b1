"""Progress while judging: a tqdm bar on a terminal, one log line per step otherwise.

:func:`evaluation.judge.judge` calls its ``progress`` hook with a
:class:`JudgeStep` before each slow step (an agent's rollouts on one
distribution for one seed, then the goal inference, IRL and EPIC behind a
shifted distribution's verdict). The default hook, :func:`log_progress`,
prints the step's line to stderr::

    judging ppo[coin_random_prob=0.0] on GMSuite/CoinRun-v0: seed 2/3, test (rollouts)

The apps use :func:`reporter` (a bar when stderr is a terminal, these lines
otherwise, e.g. under Slurm or in a log file). Hooks must be picklable to
reach the parallel workers of :func:`evaluation.judge.judge_run_groups`
(:func:`log_progress` is).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True)
class JudgeStep:
    """One step of one agent's judging, about to start."""

    agent: str
    env_id: str
    seed: int
    seed_number: int  # 1-based position of ``seed`` among the agent's seeds
    n_seeds: int
    distribution: str
    stage: str  # "rollouts" or "goal inference, IRL, EPIC"
    done: int  # steps of this agent's judging finished before this one
    total: int  # steps of this agent's judging

    @property
    def seed_label(self) -> str:
        position = f"{self.seed_number}/{self.n_seeds}"
        return f"seed {position}" if self.seed == self.seed_number else f"seed {self.seed} ({position})"

    def line(self) -> str:
        return f"judging {self.agent} on {self.env_id}: {self.seed_label}, {self.distribution} ({self.stage})"


Progress = Callable[[JudgeStep], None]


def log_progress(step: JudgeStep) -> None:
    """The step's line on stderr, flushed (the default hook)."""
    print(step.line(), file=sys.stderr, flush=True)


class Bar:
    """A tqdm bar per agent on ``stream``, described by the current step."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = sys.stderr if stream is None else stream
        self._bar = None
        self._key = None

    def __call__(self, step: JudgeStep) -> None:
        from tqdm import tqdm

        key = (step.agent, step.env_id)
        if self._bar is None or key != self._key:
            self.close()  # the previous agent is done
            self._bar = tqdm(total=step.total, file=self.stream, leave=True, dynamic_ncols=True)
            self._key = key
        self._bar.n = step.done
        self._bar.set_description_str(
            f"{step.agent} on {step.env_id}: {step.seed_label}, {step.distribution} ({step.stage})"
        )

    def close(self, complete: bool = True) -> None:
        """End the current bar, full unless ``complete`` is false (an interrupted judging)."""
        if self._bar is not None:
            if complete:
                self._bar.n = self._bar.total
                self._bar.refresh()
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(complete=exc_type is None)


class Lines:
    """:func:`log_progress` with the :class:`Bar` interface (``close``, context manager)."""

    def __call__(self, step: JudgeStep) -> None:
        log_progress(step)

    def close(self, complete: bool = True) -> None:
        pass

    def __enter__(self) -> Lines:
        return self

    def __exit__(self, *exc) -> None:
        pass


def reporter(stream: TextIO | None = None) -> Bar | Lines:
    """A :class:`Bar` when ``stream`` (default stderr) is a terminal, else :class:`Lines`; use ``with``."""
    stream = sys.stderr if stream is None else stream
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return Bar(stream) if tty else Lines()


__all__ = ["Bar", "JudgeStep", "Lines", "Progress", "log_progress", "reporter"]
