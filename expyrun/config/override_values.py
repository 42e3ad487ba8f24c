"""The value of a command-line override: its text, typed from the value it replaces.

- `null` or `~` sets None, whatever the type;
- bool: true/false, yes/no, 1/0 (any case); int: Python's `int()`; float: Python's `float()`;
- str: the text, verbatim (a string holding `$` or `{` is only typed once resolved, so its
  override is converted like a variable's value instead: `convert_text`);
- None: converted when lossless (`convert_text`), a flow list `[1, 2]` becomes a list;
- list: a flow list `[1, "a,b"]` or comma-separated text `1,2`, each item typed like the item
  at the same index (same length) or the first item (other length);
- mapping: refused (override its keys one by one).

A key of a mapping of another program's options (`__run__.__slurm__`) takes the text as
written, but for null and booleans (`option_text`). A flow list is YAML, held to a config
file's rules: the same tags, at most `MAX_DEPTH` levels, aliases expanding to at most
`MAX_ALIAS_VALUES` values. Errors are `ValueError`s saying what was expected: `overrides` turns
them into a `ConfigError` naming the override.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from expyrun.config.composing import parse_node
from expyrun.config.interpolation import needs_parsing
from expyrun.config.keys import MAX_DEPTH, ConfigValue, type_name
from expyrun.config.parsing import MAX_ALIAS_VALUES, build_node, unsupported_tag
from expyrun.config.variables import convert_text
from expyrun.errors import ConfigError

NULLS = frozenset({"null", "Null", "NULL", "~"})
TRUE = frozenset({"true", "yes", "1"})
FALSE = frozenset({"false", "no", "0"})


def option_text(text: str) -> ConfigValue:
    """An option's value as written: null and true/false (yes/no) aside, a string."""
    lowered = text.strip().lower()
    if text in NULLS:
        return None
    if lowered in ("true", "yes"):
        return True
    if lowered in ("false", "no"):
        return False
    return text


def typed(text: str, old: ConfigValue) -> ConfigValue:
    """`text` typed like `old`, the value it replaces; ValueError says what was expected."""
    if text in NULLS:
        return None
    if isinstance(old, str):
        return convert_text(text) if needs_parsing(old) else text
    if old is None:
        return loose(text)
    if isinstance(old, list):
        return _typed_list(text, old)
    return _typed_scalar(text, old)


def _typed_scalar(text: str, old: ConfigValue) -> ConfigValue:
    if isinstance(old, bool):
        lowered = text.strip().lower()
        if lowered in TRUE:
            return True
        if lowered in FALSE:
            return False
        raise ValueError("expected a boolean (true/false, yes/no, 1/0)")
    if isinstance(old, int):
        try:
            return int(text)
        except ValueError:
            raise ValueError("expected an integer") from None
    if isinstance(old, float):
        try:
            return float(text)
        except ValueError:
            raise ValueError("expected a number") from None
    if isinstance(old, datetime.date):
        value = build_node(_parse(text), "command line")
        if isinstance(value, type(old)):
            return value
        raise ValueError(f"expected a {type(old).__name__} like {old.isoformat()}")
    raise ValueError(f"a {type_name(old)} cannot be set from the command line")


def loose(text: str) -> ConfigValue:
    """A value with no type to follow: null, a flow list, or `convert_text`."""
    if text in NULLS:
        return None
    if text.lstrip().startswith("["):
        return _typed_list(text, [])
    return convert_text(text)


def _parse(text: str) -> Node:
    try:
        node = parse_node(text, "command line")
    except ConfigError as exc:
        raise ValueError(exc.message) from None
    if node is None:
        raise ValueError("empty value")
    return node


def _typed_list(text: str, old: list[ConfigValue]) -> list[ConfigValue]:
    if text.lstrip().startswith("["):
        node = _parse(text)
        if not isinstance(node, SequenceNode):
            raise ValueError("expected a list like [1, 2]")
        _check_tag(node)
        _check_expansion(node)
        return _typed_items(node.value, old)
    if not text.strip():  # `--tags ''`: an empty list is what is meant, never `['']`
        return []
    return _typed_items(text.split(","), old)


def _check_expansion(root: Node) -> None:
    """Refuse a flow list whose aliases would expand past `MAX_ALIAS_VALUES` values.

    As in a file, each alias is a copy (`[&a [1, 2], *a]` is two lists), so nested anchors
    multiply. The expanded size is counted on the node graph without expanding it: each
    node once, its size the sum of its children's. An alias inside itself is refused too.
    """
    sizes: dict[int, int] = {}
    stack: list[tuple[Node, bool]] = [(root, False)]
    active: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if not isinstance(node.value, list):  # a scalar
            sizes[key] = 1
            continue
        children = [n for pair in node.value for n in (pair if isinstance(pair, tuple) else [pair])]
        if children_done:
            active.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            if sizes[key] > MAX_ALIAS_VALUES:
                raise ValueError(
                    f"YAML aliases expand to more than {MAX_ALIAS_VALUES:,} values "
                    "(aliases are copied: nested anchors multiply)"
                )
            continue
        if key in sizes:
            continue
        if key in active:
            raise ValueError("a YAML alias contains itself")
        active.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)


def _check_tag(node: Node) -> None:
    """Refuse a tag a config file may not hold either (`!!python/...`): never drop it."""
    problem = unsupported_tag(node)
    if problem is not None:
        raise _Refused(problem)


def _typed_items(
    items: Sequence[str | Node], old: list[ConfigValue], level: int = 1
) -> list[ConfigValue]:
    """Type item i like old item i (same length) or like old item 0 (else).

    `level` is the nesting of the list holding `items` (1 for the outer list): lists inside
    lists stop at `MAX_DEPTH` before their recursion can exhaust the stack.
    """
    if level > MAX_DEPTH:
        raise _Refused(f"nested deeper than {MAX_DEPTH} levels")
    result = []
    for index, item in enumerate(items):
        if not old:
            like: ConfigValue = None
        else:
            like = old[index] if len(items) == len(old) else old[0]
        try:
            value = _typed_item(item, like, level)
        except _Refused:
            raise
        except _ItemError as exc:  # inside a nested list: `item 0.1 (x)`
            raise _ItemError(f"{index}.{exc.where}", exc.shown, exc.problem) from None
        except ValueError as exc:  # name the item: `[8, 8.5]` -> item 1 (8.5)
            raise _ItemError(str(index), _item_text(item), str(exc)) from None
        result.append(value)
    return result


class _Refused(ValueError):
    """What the whole list may not hold (a tag, the nesting, the form): said as is."""


class _ItemError(ValueError):
    """A list item that cannot be typed: its index (`1`, `0.2` in nested lists), its text."""

    def __init__(self, where: str, shown: str, problem: str) -> None:
        super().__init__(f"item {where} ({shown}): {problem}")
        self.where = where
        self.shown = shown
        self.problem = problem


def _item_text(item: str | Node) -> str:
    """An item as the user wrote it, for a message: `8.5`, `'a'`, `[...]`, `{...}`."""
    if isinstance(item, str):
        text = item
    elif isinstance(item, ScalarNode):
        text = str(item.value)
    else:
        return "[...]" if isinstance(item, SequenceNode) else "{...}"
    return text if len(text) <= 40 else text[:37] + "..."


def _typed_item(item: str | Node, like: ConfigValue, level: int) -> ConfigValue:
    if not isinstance(item, str):
        _check_tag(item)
    if isinstance(item, str):
        if isinstance(like, dict):
            raise _Refused("the items are mappings: give a flow list like [{a: 1}]")
        return typed(item, like)
    if isinstance(item, ScalarNode):
        if isinstance(like, list):  # `[[1], 5]`: never wrapped into `[5]`
            raise ValueError(f"expected a list like {like!r}, got a scalar")
        quoted = item.style in ("'", '"')
        if quoted and (like is None or isinstance(like, str)):
            return str(item.value)
        return typed(str(item.value), like)
    if isinstance(item, SequenceNode):
        if like is None or isinstance(like, list):
            return _typed_items(item.value, like or [], level + 1)
        raise ValueError(f"expected an item like {like!r}, got a list")
    if isinstance(item, MappingNode) and (like is None or isinstance(like, dict)):
        try:
            return build_node(item, "command line")
        except ConfigError as exc:  # said of the override, not of a key inside the item
            raise _Refused(exc.message) from None
    raise ValueError(f"expected an item like {like!r}")
