"""Sweep dimensions: `--sweep KEY VALUES` and the config's `__sweep__`, as override texts.

A dimension sets one key, or several together (`K1,K2`: a paired dimension). Its values are
kept as the *text* an override of the key would take (`--training.lr=0.01`), so that each
member is typed exactly as that override would be (config/overrides.py and override_values.py
do the typing) and its command line can be written down and run again.

VALUES is one of:
- a YAML flow list: `[0.1, 0.01]`, `[[8, 8], [16, 16]]` (a list-valued key), `[[resnet, 256],
  [vit, 64]]` (a paired dimension: one inner list per value, one item per key);
- `range(START, STOP[, STEP])`: Python's `range`, the end excluded;
- comma-separated text: `0.1,0.01` (not for a paired dimension).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from expyrun.config.composing import parse_node
from expyrun.config.keys import ConfigMapping, ConfigValue, split_key
from expyrun.config.run_section import SWEEP_KEY
from expyrun.errors import ConfigError, UsageError

_RANGE = re.compile(r"^\s*range\(\s*([^()]*)\)\s*$")
# A sweep larger than this is refused: it would be a typo more often than a plan.
MAX_MEMBERS = 10_000_000


class Dimension(NamedTuple):
    """One sweep dimension: the keys it sets and, per value, one override text per key."""

    keys: tuple[str, ...]  # ("training.lr",) or ("model.name", "training.batch_size")
    values: tuple[tuple[str, ...], ...]  # (("0.1",), ("0.01",))

    @property
    def label(self) -> str:
        """The dimension as written: `training.lr` or `model.name,training.batch_size`."""
        return ",".join(self.keys)


def split_keys(label: str, where: str = "--sweep") -> tuple[str, ...]:
    """The keys of a dimension's label `K1,K2`; UsageError when one is not a dotted key."""
    keys = tuple(part.strip() for part in label.split(","))
    for key in keys:
        if not key or split_key(key) is None or not key.isprintable():
            raise UsageError(
                f"{where}: malformed key {key!r} in {label!r}", hint="write a.b or a,b"
            )
    if len(set(keys)) != len(keys):
        raise UsageError(f"{where}: {label!r} names a key twice")
    return keys


def parse_dimension(label: str, text: str) -> Dimension:
    """`--sweep LABEL TEXT` as a dimension (the values are not typed yet: see module doc).

    Raises:
        UsageError: malformed keys, VALUES that is none of the accepted forms, no value, or
            a value of a paired dimension that is not a list of one item per key.
    """
    keys = split_keys(label)
    where = f"--sweep {label}"
    stripped = text.strip()
    values: list[tuple[str, ...]]
    if _RANGE.match(stripped):
        values = [(item,) for item in range_texts(stripped, where)]
    elif stripped.startswith("["):
        values = _flow_values(stripped, len(keys), where)
    elif len(keys) > 1:
        raise UsageError(
            f"{where}: a paired dimension takes a YAML flow list of lists, got {text!r}",
            hint=f"for instance '[[a, 1], [b, 2]]' for {len(keys)} keys",
        )
    else:
        values = [(item,) for item in text.split(",")]
    return _checked(keys, values, where)


def sweep_entries(
    section: ConfigMapping, above: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], ConfigValue]]:
    """`__sweep__`'s entries as (key parts, value): a dotted KEY (`training.lr: [...]`, or the
    paired `model.name,training.batch_size`) is a nested mapping once parsed; it is joined again."""
    for label, value in section.items():
        if isinstance(value, dict):
            yield from sweep_entries(value, (*above, str(label)))
        else:
            yield (*above, str(label)), value


def config_dimension(label: str, value: ConfigValue, path: str, line: int | None) -> Dimension:
    """An entry of the config's `__sweep__`: a list (one item per value) or `range(...)`.

    Raises:
        ConfigError: at the entry's file and line, for what `parse_dimension` refuses.
    """
    key = f"{SWEEP_KEY}.{label}"
    try:
        keys = split_keys(label, key)
        values: list[tuple[str, ...]]
        if isinstance(value, str) and _RANGE.match(value):
            values = [(item,) for item in range_texts(value, key)]
        elif isinstance(value, list):
            values = [_config_item(item, len(keys), key) for item in value]
        else:
            raise UsageError(
                f"expected a list of values or a range(...) text, got {value!r}",
                hint="for instance [0.1, 0.01] or 'range(0, 5)'",
            )
        return _checked(keys, values, key)
    except UsageError as exc:
        message = exc.message.removeprefix(f"{key}: ")
        raise ConfigError(message, path=path, line=line, key=key, hint=exc.hint) from None


def range_texts(text: str, where: str) -> list[str]:
    """The integers of `range(START, STOP[, STEP])` as texts (Python's semantics)."""
    match = _RANGE.match(text)
    arguments = match.group(1).split(",") if match else []
    try:
        numbers = [int(argument.strip()) for argument in arguments]
        if not 1 <= len(numbers) <= 3:
            raise ValueError("range takes 1 to 3 integers")
        items = range(*numbers)
    except ValueError as exc:
        raise UsageError(
            f"{where}: bad range {text.strip()!r}: {exc}", hint="range(START, STOP[, STEP])"
        ) from None
    if len(items) > MAX_MEMBERS:
        raise UsageError(f"{where}: {text.strip()!r} has more than {MAX_MEMBERS:,} values")
    return [str(item) for item in items]


def _checked(keys: tuple[str, ...], values: Sequence[tuple[str, ...]], where: str) -> Dimension:
    if not values:
        raise UsageError(f"{where}: no value to sweep over")
    for value in values:
        if len(value) != len(keys):
            raise UsageError(
                f"{where}: each value sets {len(keys)} keys, got {len(value)} items: "
                f"[{', '.join(value)}]",
                hint="one inner list per value, one item per key",
            )
    return Dimension(keys, tuple(values))


def _flow_values(text: str, width: int, where: str) -> list[tuple[str, ...]]:
    """The items of a YAML flow list as override texts (one inner list per value if paired)."""
    try:
        node = parse_node(text, "command line")
    except ConfigError as exc:
        raise UsageError(f"{where}: {exc.message}") from None
    if not isinstance(node, SequenceNode):
        raise UsageError(f"{where}: expected a YAML flow list like [1, 2], got {text!r}")
    if width == 1:
        return [(_node_text(item, text),) for item in node.value]
    values = []
    for item in node.value:
        if not isinstance(item, SequenceNode):
            raise UsageError(
                f"{where}: each value of a paired dimension is a list of {width} items, "
                f"got {_node_text(item, text)!r}",
                hint="for instance '[[a, 1], [b, 2]]'",
            )
        values.append(tuple(_node_text(inner, text) for inner in item.value))
    return values


def _node_text(node: Node, source: str) -> str:
    """The override text of one YAML node: a scalar's value, else its text in the source."""
    if isinstance(node, ScalarNode):
        return str(node.value)
    if isinstance(node, MappingNode | SequenceNode):
        return source[node.start_mark.index : node.end_mark.index]
    return str(node.value)


def _config_item(item: ConfigValue, width: int, where: str) -> tuple[str, ...]:
    if width > 1:
        if not isinstance(item, list) or len(item) != width:
            raise UsageError(
                f"{where}: each value of a paired dimension is a list of {width} items, "
                f"got {item!r}"
            )
        return tuple(value_text(inner) for inner in item)
    return (value_text(item),)


def value_text(value: ConfigValue) -> str:
    """The override text that gives `value` back (a config's `__sweep__` holds typed values)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, default=str)  # JSON is a YAML flow collection
