"""How a run's value compares with a `--where` value, and how values show and sort.

The rules are written in `runs/query.py`'s docstring (the grammar's reference); the values
are JSON/YAML data read from run.json and config files, or `MISSING`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_ORDERING = frozenset({"<", "<=", ">", ">="})


class _Missing:
    """The value of a key a run does not have."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


@dataclass(frozen=True)
class Comparison:
    """`key op value`; `column` (1-based) is where the key starts in the expression."""

    key: str
    op: str
    value: str
    quoted: bool
    column: int
    number: float | None  # the value as a number, when unquoted and numeric
    pattern: re.Pattern[str] | None  # for ~ and !~

    def holds(self, value: object) -> bool:
        """Whether one run's `value` of the key passes (rules: runs/query.py's docstring)."""
        return _compare(self, value)


def _compare(comparison: Comparison, value: object) -> bool:
    if value is MISSING:
        return False
    op = comparison.op
    if isinstance(value, list):
        if op in _ORDERING:
            return False
        positive = {"!=": "=", "!~": "~"}.get(op, op)
        found = any(_compare(_with_op(comparison, positive), item) for item in value)
        return found if positive == op else not found
    if op in _ORDERING and (value is None or isinstance(value, bool)):
        return False  # `duration>3600` is not true of a run still running (no duration)
    if comparison.number is not None and is_number(value):
        return _ordered(op, float(value), comparison.number)  # type: ignore[arg-type]
    text = value_text(value)
    if comparison.pattern is not None:
        found = comparison.pattern.search(text) is not None
        return found if op == "~" else not found
    return _ordered(op, text, comparison.value)


def _with_op(comparison: Comparison, op: str) -> Comparison:
    return Comparison(
        comparison.key,
        op,
        comparison.value,
        comparison.quoted,
        comparison.column,
        comparison.number,
        comparison.pattern,
    )


def _ordered(op: str, left: float | str, right: float | str) -> bool:
    if op in ("=", "=="):
        return left == right
    if op == "!=":
        return left != right
    if op == "<":
        return left < right  # type: ignore[operator]
    if op == "<=":
        return left <= right  # type: ignore[operator]
    if op == ">":
        return left > right  # type: ignore[operator]
    return left >= right  # type: ignore[operator]


def is_number(value: object) -> bool:
    """Whether `value` is an int or a float (a boolean is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def value_text(value: object) -> str:
    """A value as `ls` shows it and `--where` compares it as text: YAML's words for booleans
    and null, JSON for lists and mappings, Python's repr for floats (0.01, 1e-05)."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), default=str, ensure_ascii=False)
    return str(value)  # a date from YAML


def sort_key(value: object) -> tuple[int, float, str]:
    """The order of `--sort`: numbers by value, then text, then runs without the key."""
    if value is MISSING:
        return (2, 0.0, "")
    if is_number(value):
        return (0, float(value), "")  # type: ignore[arg-type]
    return (1, 0.0, value_text(value))
