"""Library goals' names, ``kind:target``: the one parser, and the words a verdict uses for them.

A name is what reports, JSON files and verdicts record; every module that
reads one parses it here (:meth:`GoalName.parse`), and ``str`` gives the
same string back. ``kind`` is ``reach``, ``stay`` or ``set``; ``target`` is
one of

- ``channel=<a>`` or ``channel=<a>/<b>``: a cell holding static channel
  ``a`` (or either of two channels: a *pair*);
- ``object=<name>``: the cell where an observed object stands;
- ``<side>_border``, ``<vertical>_<horizontal>_corner``: the level's
  reachable area's borders and corners;
- ``cell_<row>_<col>``: a fixed cell;
- a flag group (``set`` goals: ``key#_collected``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

KINDS = ("reach", "stay", "set")
_VERBS = {"reach": "enters ", "stay": "stays on "}


@dataclass(frozen=True)
class GoalName:
    """One library goal: ``kind`` is ``reach``, ``stay`` or ``set``; ``target`` what is reached or set."""

    kind: str
    target: str

    @classmethod
    def parse(cls, name: str) -> GoalName:
        """``"reach:channel=coin"`` -> ``GoalName("reach", "channel=coin")``."""
        kind, sep, target = str(name).partition(":")
        if not sep or not kind or not target:
            raise ValueError(f"not a library goal name (kind:target): {name!r}")
        return cls(kind, target)

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"

    @property
    def name(self) -> str:
        return str(self)

    @property
    def target_kind(self) -> str:
        """``channel``, ``object``, ``border``, ``corner``, ``cell`` or ``flag``."""
        t = self.target
        if self.kind == "set":
            return "flag"
        for prefix in ("channel", "object"):
            if t.startswith(prefix + "="):
                return prefix
        for kind in ("border", "corner"):
            if t.endswith("_" + kind):
                return kind
        if t.startswith("cell_"):
            return "cell"
        return "flag"

    @property
    def place(self) -> str:
        """The target without its kind: ``a/b`` (channels), the object, ``top`` (border),
        ``top_right`` (corner), ``3_11`` (cell), or the flag group."""
        t, kind = self.target, self.target_kind
        if kind in ("channel", "object"):
            return t.split("=", 1)[1]
        if kind in ("border", "corner"):
            return t[: -len(kind) - 1]
        if kind == "cell":
            return t[len("cell_") :]
        return t

    @property
    def channels(self) -> tuple[str, ...]:
        """The static channels of a ``channel=`` target (two for a pair); empty otherwise."""
        return tuple(self.place.split("/")) if self.target_kind == "channel" else ()

    @property
    def cell(self) -> tuple[int, int]:
        """``(row, col)`` of a ``cell_<row>_<col>`` target."""
        row, col = self.place.split("_")
        return int(row), int(col)

    @property
    def is_pair(self) -> bool:
        return len(self.channels) > 1

    @property
    def parts(self) -> tuple[GoalName, ...]:
        """For a pair of channels, the same kind of goal on each channel alone; empty otherwise."""
        if not self.is_pair:
            return ()
        return tuple(GoalName(self.kind, f"channel={c}") for c in self.channels)

    def with_target(self, target: str) -> GoalName:
        return GoalName(self.kind, target)

    @property
    def words(self) -> str:
        """What the agent does, for a verdict's reason: ``enters a cell holding `coin```."""
        kind, place = self.target_kind, self.place
        if kind == "channel":
            thing = "a cell holding " + " or ".join(f"`{c}`" for c in self.channels)
        elif kind == "object":
            thing = f"the cell where `{place}` is"
        elif kind == "border":
            thing = f"the {place} border"
        elif kind == "corner":
            thing = f"the {place.replace('_', '-')} corner"
        elif kind == "cell":
            r, c = place.split("_")
            thing = f"cell (row {r}, column {c})"
        else:
            return f"sets `{place}` (picks up or triggers it)"
        return _VERBS[self.kind] + thing


def alias_words(targets: Sequence[str], named: str) -> str:
    """`` (on these levels the same cells as ...)``: places the judged levels cannot tell from the named one.

    A pair of channels with a part among them is left out: it says no more
    than that part ("`wall` or `goal`").
    """
    listed = {named, *targets}
    places = [GoalName("reach", t) for t in targets]
    places = [p for p in places if not any(part.target in listed for part in p.parts)]
    if not places:
        return ""
    words = [p.words.removeprefix(_VERBS["reach"]) for p in places]
    return " (on these levels the same cells as " + "; as ".join(words) + ")"
