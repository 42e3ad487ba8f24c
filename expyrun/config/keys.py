"""Dotted key paths over config mappings and lists: read, write, walk, closest matches.

A config is a tree of mappings (string keys) and lists. A dotted key `layers.1.size` is a path
in it: a part names a key of a mapping, or, when the container is a list, an index written in
decimal (`1`). Paths are tuples inside the engine (`("layers", 1, "size")`), dotted strings at
the edges (messages, overrides, references).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from typing import TypeAlias

# The values a config holds: what YAML's safe loader builds, minus sets, binary and pairs.
Scalar: TypeAlias = "bool | int | float | str | datetime.date | None"
ConfigValue: TypeAlias = "Scalar | list[ConfigValue] | dict[str, ConfigValue]"
ConfigMapping: TypeAlias = "dict[str, ConfigValue]"
KeyPath: TypeAlias = "tuple[str | int, ...]"

SEPARATOR = "."
ESCAPED_DOT = "\\."  # a dot inside a key: `bootstrap\.servers` is one key
_UNESCAPED_DOT = re.compile(r"(?<!\\)\.")
# The deepest nesting a config may have, the top-level mapping being level 1: every stage of
# the engine (and YAML's dumper, pickle) walks a config recursively. serde_yaml and serde_json
# stop at the same depth by default; configs written by hand use under 10 levels.
MAX_DEPTH = 128


class MissingKey(LookupError):
    """A path does not exist in a config; `depth` is how many of its parts were found."""

    def __init__(self, path: KeyPath, depth: int) -> None:
        super().__init__(format_key(path))
        self.path = path
        self.depth = depth


def format_key(path: KeyPath) -> str:
    """Write a key path the way users write it: `layers.1.size` (on one line, always).

    A dot inside a key is escaped (`kafka.bootstrap\\.servers`), as `split_key` reads it.
    """
    text = SEPARATOR.join(escape_key(part) if isinstance(part, str) else str(part) for part in path)
    # A quoted YAML key may hold a newline: messages stay one line.
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def split_key(dotted: str) -> tuple[str, ...] | None:
    """Split `a.b.c` into its parts; None when a part is empty (`a..b`, `.a`, ``).

    `\\.` is a dot inside a key, not a separator: `kafka.bootstrap\\.servers` is the two
    parts `kafka` and `bootstrap.servers` (a key like `bootstrap.servers` cannot be written
    otherwise, since a dotted key is nesting). A backslash before anything else is kept.
    """
    if ESCAPED_DOT not in dotted:
        parts = tuple(dotted.split(SEPARATOR))
    else:
        parts = tuple(part.replace(ESCAPED_DOT, SEPARATOR) for part in _UNESCAPED_DOT.split(dotted))
    if not all(parts):
        return None
    return parts


def escape_key(key: str) -> str:
    """A key written so that `split_key` reads it back as one part (`a.b` -> `a\\.b`)."""
    return key.replace(SEPARATOR, ESCAPED_DOT) if SEPARATOR in key else key


def _child(container: ConfigValue, part: str | int) -> ConfigValue:
    """The child `part` of `container`; KeyError/IndexError/TypeError when there is none."""
    if isinstance(container, dict):
        if not isinstance(part, str):
            raise KeyError(part)
        return container[part]
    if isinstance(container, list):
        index = list_index(part)
        if index is None:
            raise KeyError(part)
        return container[index]
    raise TypeError(part)


def list_index(part: str | int) -> int | None:
    """The list index a path part names (`"1"` or `1`), None if it names none (`"-1"`, `"x"`)."""
    if isinstance(part, int):
        return part if part >= 0 else None
    if part.isdecimal() and part.isascii():
        return int(part)
    return None


def get(root: ConfigValue, path: KeyPath) -> ConfigValue:
    """The value at `path`; raise `MissingKey` (with how far it got) when it does not exist."""
    current = root
    for depth, part in enumerate(path):
        try:
            current = _child(current, part)
        except (KeyError, IndexError, TypeError):
            raise MissingKey(path, depth) from None
    return current


def normalize(root: ConfigValue, path: tuple[str, ...]) -> KeyPath:
    """The path with list indices as ints (`("layers", "1")` -> `("layers", 1)`); must exist."""
    current = root
    result: list[str | int] = []
    for depth, part in enumerate(path):
        step: str | int = part
        if isinstance(current, list):
            index = list_index(part)
            if index is None:
                raise MissingKey(path, depth)
            step = index
        try:
            current = _child(current, step)
        except (KeyError, IndexError, TypeError):
            raise MissingKey(path, depth) from None
        result.append(step)
    return tuple(result)


def set_value(root: ConfigValue, path: KeyPath, value: ConfigValue) -> None:
    """Replace the value at `path` (its parent must exist); raise `MissingKey` otherwise."""
    if not path:
        raise MissingKey(path, 0)
    parent = get(root, path[:-1])
    last = path[-1]
    if isinstance(parent, dict) and isinstance(last, str):
        parent[last] = value
        return
    if isinstance(parent, list):
        index = list_index(last)
        if index is not None and index < len(parent):
            parent[index] = value
            return
    raise MissingKey(path, len(path) - 1)


def walk(root: ConfigValue, prefix: KeyPath = ()) -> Iterator[tuple[KeyPath, ConfigValue]]:
    """Every (path, value) under `root`, parents before children, mappings and lists alike."""
    if isinstance(root, dict):
        for key, value in root.items():
            path = (*prefix, key)
            yield path, value
            yield from walk(value, path)
    elif isinstance(root, list):
        for index, value in enumerate(root):
            path = (*prefix, index)
            yield path, value
            yield from walk(value, path)


def closest(wanted: str, root: ConfigValue, *, leaves: bool = False, count: int = 3) -> list[str]:
    """The dotted keys of `root` closest to `wanted`, best first (for "did you mean").

    With `leaves`, only keys whose value is not a mapping (what an override can set).
    """
    candidates = [
        format_key(path) for path, value in walk(root) if not (leaves and isinstance(value, dict))
    ]
    import difflib  # only when a hint is needed: it costs start-up time

    return difflib.get_close_matches(wanted, candidates, n=count, cutoff=0.6)


def did_you_mean(wanted: str, root: ConfigValue, *, leaves: bool = False) -> str | None:
    """A hint `did you mean 'a.b'?` naming the closest existing keys, or None."""
    matches = closest(wanted, root, leaves=leaves)
    if not matches:
        return None
    return "did you mean " + " or ".join(f"'{match}'" for match in matches) + "?"


def copy_value(value: ConfigValue) -> ConfigValue:
    """A copy of `value` sharing no mapping or list with it (scalars are immutable)."""
    if isinstance(value, dict):
        return {key: copy_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_value(item) for item in value]
    return value


def nesting(value: ConfigValue) -> int:
    """How many levels of mappings and lists `value` has (0 for a scalar); not recursive."""
    deepest = 0
    stack: list[tuple[ConfigValue, int]] = [(value, 0)]
    while stack:
        current, level = stack.pop()
        if isinstance(current, dict | list):
            deepest = max(deepest, level + 1)
            items = current.values() if isinstance(current, dict) else current
            stack.extend((item, level + 1) for item in items)
    return deepest


def type_name(value: ConfigValue) -> str:
    """The YAML-ish name of a value's type, for messages: mapping, list, string, integer..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return type(value).__name__
