"""How two requirement sets differ: what `reproduce --check` lists and the cache compares."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from expyrun.run.freeze import Requirement


class Difference(NamedTuple):
    """One way two requirement sets differ."""

    kind: str  # "added", "removed" or "changed"
    name: str
    before: str  # in the frozen file ("" when added)
    after: str  # in the environment ("" when removed)

    def __str__(self) -> str:
        if self.kind == "changed":
            return f"changed  {self.name} {self.before} -> {self.after}"
        return f"{self.kind:8s} {self.name} {self.after or self.before}"


def compare(frozen: Iterable[Requirement], current: Iterable[Requirement]) -> list[Difference]:
    """How `current` differs from `frozen`, own code ignored on both sides.

    Sorted changed, removed, added, then by name: what matters most comes first.
    """
    frozen, current = list(frozen), list(current)
    own = {r.key for r in (*frozen, *current) if r.own_code}
    before = {r.key: r for r in frozen if r.key not in own}
    after = {r.key: r for r in current if r.key not in own}
    found = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old is None and new is not None:
            found.append(Difference("added", new.name, "", new.spec))
        elif new is None and old is not None:
            found.append(Difference("removed", old.name, old.spec, ""))
        elif old is not None and new is not None and old.spec != new.spec:
            found.append(Difference("changed", old.name, old.spec, new.spec))
    order = {"changed": 0, "removed": 1, "added": 2}
    return sorted(found, key=lambda d: (order[d.kind], d.name.lower()))
