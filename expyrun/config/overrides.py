"""Command-line overrides: `--a.b VALUE` and `--a.b=VALUE`, typed from the value they replace.

Overrides apply to the merged config before variables and references are resolved, so a value
may itself hold `$VAR` or `{ref}`, and values derived from the key follow it. The key must
exist (a key starting with `__` may be added to an existing mapping, like `__code__`); list
items are reached by index (`--layers.1.size 5`). Typing, from the replaced value:

- `null` or `~` sets None, whatever the type;
- bool: true/false, yes/no, 1/0 (any case); int: Python's `int()`; float: Python's `float()`;
- str: the text, verbatim (a string holding `$` or `{` is only typed once resolved, so its
  override is converted like a variable's value instead: `convert_text`);
- None: converted when lossless (`convert_text`), a flow list `[1, 2]` becomes a list;
- list: a flow list `[1, "a,b"]` or comma-separated text `1,2`, each item typed like the item
  at the same index (same length) or the first item (other length);
- mapping: refused (override its keys one by one).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import NamedTuple

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from expyrun.config.composing import parse_node
from expyrun.config.interpolation import needs_parsing
from expyrun.config.keys import (
    MAX_DEPTH,
    ConfigMapping,
    ConfigValue,
    KeyPath,
    MissingKey,
    did_you_mean,
    format_key,
    get,
    nesting,
    normalize,
    set_value,
    split_key,
    type_name,
    walk,
)
from expyrun.config.loading import DEFAULT_KEY
from expyrun.config.merging import POLICY_KEY
from expyrun.config.parsing import MAX_ALIAS_VALUES, build_node, unsupported_tag
from expyrun.config.report import COMMAND_LINE, Origins
from expyrun.config.variables import convert_text
from expyrun.errors import ConfigError

PREFIX = "--"
NULLS = frozenset({"null", "Null", "NULL", "~"})
TRUE = frozenset({"true", "yes", "1"})
FALSE = frozenset({"false", "no", "0"})
RESERVED_PREFIX = "__"


class Override(NamedTuple):
    """One `--key value` of the command line."""

    key: str  # as typed: `layers.1.size`
    parts: tuple[str, ...]
    text: str


def _error(message: str, *, key: str | None = None, hint: str | None = None) -> ConfigError:
    """An error about the command line (its "file" in messages)."""
    return ConfigError(message, path=COMMAND_LINE.path, key=key, hint=hint)


def parse_overrides(tokens: Sequence[str]) -> list[Override]:
    """Split argv tokens into overrides; refuse what is not `--KEY VALUE` or `--KEY=VALUE`."""
    result = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if not token.startswith(PREFIX) or token == PREFIX:
            raise _error(
                f"expected an override --KEY VALUE or --KEY=VALUE, got {token!r}",
                hint="overrides come after the config file",
            )
        key, equal, text = token[len(PREFIX) :].partition("=")
        index += 1
        if not equal:
            if index == len(tokens) or tokens[index].startswith(PREFIX):
                after = f" (next comes the option {tokens[index]!r})" if index < len(tokens) else ""
                raise _error(
                    f"the override --{key} has no value{after}",
                    key=key,
                    hint=f"write --{key} VALUE, or --{key}=VALUE for a value starting with --",
                )
            text = tokens[index]
            index += 1
        parts = split_key(key) if key.isprintable() else None
        if parts is None:
            raise _error(f"malformed key in the override {token!r}", hint="write --a.b VALUE")
        result.append(Override(key, parts, text))
    return result


def apply_overrides(
    raw: ConfigMapping,
    overrides: Sequence[Override],
    origins: Origins,
    text_keys: frozenset[KeyPath] = frozenset(),
    option_maps: frozenset[KeyPath] = frozenset(),
) -> None:
    """Set each override in `raw` (in order: the last wins); `text_keys` are typed as strings.

    `option_maps` are mappings of options for another program (`__run__.__slurm__`): an
    override may add a key there (and the mapping itself), and its value is kept as written,
    but for null and booleans, since the program reads text (`1:00:00` stays a time).
    """
    for override in overrides:
        path, old, exists = _locate(raw, override, option_maps)
        try:
            value: ConfigValue
            if path[:-1] in option_maps:
                value = _option_text(override.text)
            elif path in text_keys:
                value = None if override.text in NULLS else override.text
            elif not exists:
                value = _loose(override.text)
            else:
                value = typed(override.text, old)
            if nesting(value) > MAX_DEPTH - len(path):
                raise ValueError(f"the config would nest deeper than {MAX_DEPTH} levels")
        except ValueError as exc:
            raise _error(
                f"cannot override with {_shown_text(override.text)}: {exc}",
                key=override.key,
                hint=f"the current value is {_shown(old)}" if exists else None,
            ) from None
        set_value(raw, path, value)
        origins[path] = COMMAND_LINE
        for sub, _ in walk(value, path):
            origins[sub] = COMMAND_LINE


def _shown_text(text: str) -> str:
    """The override's text for a message: quoted, cut when long."""
    return repr(text) if len(text) <= 80 else repr(text[:60]) + f"... ({len(text)} characters)"


def _shown(value: ConfigValue) -> str:
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{type_name(value)} {text}"


def _locate(
    raw: ConfigMapping, override: Override, option_maps: frozenset[KeyPath] = frozenset()
) -> tuple[KeyPath, ConfigValue, bool]:
    """(path, current value, whether it exists) of the key an override names."""
    if override.parts[0] in (DEFAULT_KEY, POLICY_KEY):
        raise _error("is read while loading the files: it cannot be overridden", key=override.key)
    if tuple(override.parts[:-1]) in option_maps:
        return _locate_option(raw, override)
    try:
        path = normalize(raw, override.parts)
    except MissingKey as exc:
        parent_parts = override.parts[:-1]
        last = override.parts[-1]
        if exc.depth == len(parent_parts) and last.startswith(RESERVED_PREFIX):
            parent_path = normalize(raw, parent_parts)
            if isinstance(get(raw, parent_path), dict):
                return (*parent_path, last), None, False
        raise _error(
            "no such key to override",
            key=override.key,
            hint=did_you_mean(override.key, raw, leaves=True),
        ) from None
    old = get(raw, path)
    if isinstance(old, dict):
        inner = [format_key((*path, key)) for key in list(old)[:3]]
        raise _error(
            "is a mapping: override its keys one by one",
            key=override.key,
            hint=f"for instance --{inner[0]}" if inner else "it is empty",
        )
    return path, old, True


def _locate_option(raw: ConfigMapping, override: Override) -> tuple[KeyPath, ConfigValue, bool]:
    """A key of an option mapping: the mapping is made if its parent mapping has none."""
    *parents, last = override.parts
    section: ConfigValue = raw
    for depth, part in enumerate(parents):
        if not isinstance(section, dict):
            break
        if section.get(part) is None and depth == len(parents) - 1:
            section[part] = {}
        section = section.get(part)
    if not isinstance(section, dict):
        raise _error(f"{format_key(tuple(parents))} is not a mapping of options", key=override.key)
    path = (*parents, last)
    return path, section.get(last), last in section


def _option_text(text: str) -> ConfigValue:
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
        return _loose(text)
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


def _loose(text: str) -> ConfigValue:
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
        raise ValueError(problem)


def _typed_items(
    items: Sequence[str | Node], old: list[ConfigValue], level: int = 1
) -> list[ConfigValue]:
    """Type item i like old item i (same length) or like old item 0 (else).

    `level` is the nesting of the list holding `items` (1 for the outer list): lists inside
    lists stop at `MAX_DEPTH` before their recursion can exhaust the stack.
    """
    if level > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    result = []
    for index, item in enumerate(items):
        if not old:
            like: ConfigValue = None
        else:
            like = old[index] if len(items) == len(old) else old[0]
        value = _typed_item(item, like, level)
        result.append(value)
    return result


def _typed_item(item: str | Node, like: ConfigValue, level: int) -> ConfigValue:
    if not isinstance(item, str):
        _check_tag(item)
    if isinstance(item, str):
        if isinstance(like, dict):
            raise ValueError("the items are mappings: give a flow list like [{a: 1}]")
        return typed(item, like)
    if isinstance(item, ScalarNode):
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
            raise ValueError(exc.message) from None
    raise ValueError(f"expected an item like {like!r}")
