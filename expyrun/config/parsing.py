"""Build config values from YAML nodes, with the file and line of every key.

The nodes come from `composing` (the safe loader, one line per YAML error). They are turned
into values here rather than by PyYAML's constructor, which lets us record where each key is,
and refuse what a config must not contain: unknown tags (`!!python/...`), non-string keys,
duplicate keys, an empty file, a top level that is not a mapping. Dotted keys (`a.b: 1`) are
split into nesting, as in expyrun 0.2. YAML aliases are copied, never shared.

Two limits keep a small file from costing unbounded memory or stack (a config never needs
more; the messages name the file and line):
- `MAX_DEPTH` levels of nesting (the top-level mapping is level 1), as serde_yaml's and
  serde_json's default recursion limit: every stage of the engine walks a config recursively,
  and libyaml's composer itself overflows the C stack (a segfault) near 25,000 levels;
- `MAX_ALIAS_VALUES` values built by copying aliases: each use of `*anchor` is a copy, so ten
  nested anchors of ten items each ("billion laughs", 460 bytes) would build 10**10 values.
`composing` bounds the file's size and, before the stack is at risk, its depth.
"""

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from expyrun.config.composing import ConfigLoader, parse_node, read_config_bytes
from expyrun.config.keys import (
    MAX_DEPTH,
    ConfigMapping,
    ConfigValue,
    KeyPath,
    format_key,
    split_key,
)
from expyrun.config.quoting import UnquotedReference, unquoted_reference
from expyrun.config.report import Origin, Origins
from expyrun.errors import ConfigError

MAX_ALIAS_VALUES = 100_000

_new_tuple = tuple.__new__  # Origin(...) calls a Python-level __new__: 3x slower per key

_TAG = "tag:yaml.org,2002:"
STR_TAG, MAP_TAG, SEQ_TAG, MERGE_TAG = _TAG + "str", _TAG + "map", _TAG + "seq", _TAG + "merge"
# The scalar tags `_Builder.scalars` constructs (STR_TAG aside).
_SCALAR_TAGS = frozenset(_TAG + name for name in ("int", "float", "bool", "null", "timestamp"))


class Parsed(NamedTuple):
    """A config file's top-level mapping, where each key was set, its unquoted references."""

    value: ConfigMapping
    origins: Origins
    unquoted: list[UnquotedReference]


def error_at(
    message: str, origin: Origin, key: "KeyPath | str | None" = None, hint: str | None = None
) -> ConfigError:
    """A `ConfigError` at `origin` about `key` (a path or a dotted key)."""
    if isinstance(key, tuple):
        key = format_key(key) if key else None
    return ConfigError(message, path=origin.path, line=origin.line, key=key, hint=hint)


class _Builder:
    """Turn the nodes of one file into values, recording the origin of every key."""

    def __init__(self, loader: "yaml.SafeLoader | yaml.CSafeLoader", display: str) -> None:
        self.display = display
        self.origins: Origins = {}
        self.implicit: set[KeyPath] = set()  # mappings created by a dotted key (`a.b: 1`)
        self.active: set[int] = set()  # container nodes being built (a recursive alias loops)
        self.built: set[int] = set()  # container nodes built once: built again, an alias copy
        self.copying = 0  # alias copies being built (nested)
        self.copied = 0  # values built by alias copies so far
        self.copy_root: KeyPath = ()  # where the outermost alias copy being built goes
        self.unquoted: list[UnquotedReference] = []  # `seed: {seed}`: a mapping, by mistake
        self.scalars: dict[str, Callable[[ScalarNode], ConfigValue]] = {
            _TAG + "int": loader.construct_yaml_int,
            _TAG + "float": loader.construct_yaml_float,
            _TAG + "bool": loader.construct_yaml_bool,
            _TAG + "null": _null,
            _TAG + "timestamp": loader.construct_yaml_timestamp,
        }

    def origin(self, node: Node) -> Origin:
        return _new_tuple(Origin, (self.display, node.start_mark.line + 1))

    def value(self, node: Node, path: KeyPath) -> ConfigValue:
        if type(node) is ScalarNode:
            if node.tag == STR_TAG:
                return str(node.value)
            return self.scalar(node, path)
        key = id(node)
        if key in self.active:
            raise error_at("a YAML alias contains itself", self.origin(node), path)
        again = key in self.built
        if again and not self.copying:
            self.copy_root = path
        if len(path) >= MAX_DEPTH:
            where = self.copy_site() if again or self.copying else self.origin(node)
            raise error_at(f"nested deeper than {MAX_DEPTH} levels", where)
        if again or self.copying:
            self.count_copies(node)
        self.active.add(key)
        self.built.add(key)
        self.copying += again
        try:
            if type(node) is MappingNode and node.tag == MAP_TAG:
                return self.mapping(node, path)
            if type(node) is SequenceNode and node.tag == SEQ_TAG:
                return self.sequence(node, path)
        finally:
            self.active.discard(key)
            self.copying -= again
        raise self.bad_tag(node, path)

    def copy_site(self) -> Origin:
        """Where the alias being copied is used: the line of the innermost key written there.

        A node reached through an alias carries the marks of its anchor, not of the place it
        is copied to; the keys leading to that place were built before the copy began.
        """
        path = self.copy_root
        for end in range(len(path), 0, -1):
            if isinstance(path[end - 1], str) and path[:end] in self.origins:
                return self.origins[path[:end]]
        return Origin(self.display)

    def count_copies(self, node: Node) -> None:
        """Count the values an alias copy builds; refuse past `MAX_ALIAS_VALUES`."""
        self.copied += len(node.value)
        if self.copied > MAX_ALIAS_VALUES:
            raise error_at(
                f"YAML aliases expand to more than {MAX_ALIAS_VALUES:,} values",
                self.copy_site(),
                self.copy_root,
                "aliases are copied: nested anchors multiply; write the values out",
            )

    def scalar(self, node: ScalarNode, path: KeyPath) -> ConfigValue:
        construct = self.scalars.get(node.tag)
        if construct is None:
            raise self.bad_tag(node, path)
        try:
            return construct(node)
        except (ValueError, TypeError, AttributeError, yaml.YAMLError) as exc:
            raise error_at(
                f"cannot read {_shown(node.value)} as {_short_tag(node.tag)}",
                self.origin(node),
                path,
            ) from exc

    def bad_tag(self, node: Node, path: KeyPath) -> ConfigError:
        hint = None
        if node.tag.startswith("!"):
            hint = "quote a string that starts with '!', like '!P{a}'"
        return error_at(unsupported_tag(node) or "", self.origin(node), path, hint)

    def sequence(self, node: SequenceNode, path: KeyPath) -> list[ConfigValue]:
        items: list[ConfigValue] = []
        for index, item in enumerate(node.value):
            item_path = (*path, index)
            self.origins[item_path] = self.origin(item)
            items.append(self.value(item, item_path))
        return items

    def mapping(self, node: MappingNode, path: KeyPath) -> ConfigMapping:
        if node.flow_style and node.value:
            mistake = unquoted_reference(node, path, self.origin(node))
            if mistake is not None:
                self.unquoted.append(mistake)
        result: ConfigMapping = {}
        entries = []
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                # YAML merge keys (`<<: *anchor`) come first: the mapping's own keys win.
                result.update(self.merge_key(value_node, path))
            else:
                entries.append((key_node, value_node))
        own: ConfigMapping = {}
        for key_node, value_node in entries:
            key = self.key(key_node, path)
            parts = (key,) if "." not in key else split_key(key)
            if parts is None:
                raise error_at(f"empty part in the key {key!r}", self.origin(key_node), path)
            self.insert(own, path, parts, key_node, value_node)
        result.update(own)
        return result

    def merge_key(self, node: Node, path: KeyPath) -> ConfigMapping:
        sources = node.value if type(node) is SequenceNode else [node]
        merged: ConfigMapping = {}
        for source in reversed(sources):  # the first mapping listed wins
            value = self.value(source, path)
            if not isinstance(value, dict):
                raise error_at("a merge key (<<) takes mappings only", self.origin(source), path)
            merged.update(value)
        return merged

    def key(self, node: Node, path: KeyPath) -> str:
        if type(node) is ScalarNode and node.tag == STR_TAG and node.value:
            return str(node.value)
        if type(node) is ScalarNode:
            shown = node.value or "''"
            what = "an empty key" if node.tag == STR_TAG else f"the non-string key {shown}"
            hint = None if node.tag == STR_TAG else f"quote it: '{node.value}'"
            return self._raise_key(f"keys must be non-empty strings, got {what}", node, path, hint)
        return self._raise_key("keys must be strings, not a mapping or list", node, path, None)

    def _raise_key(self, message: str, node: Node, path: KeyPath, hint: str | None) -> str:
        raise error_at(message, self.origin(node), path or None, hint)

    def insert(
        self,
        target: ConfigMapping,
        path: KeyPath,
        parts: tuple[str, ...],
        key_node: Node,
        value_node: Node,
    ) -> None:
        """Set `parts` (one key, or a dotted key split) under `target`; refuse duplicates."""
        origin = self.origin(key_node)
        if len(path) + len(parts) > MAX_DEPTH:
            raise error_at(f"nested deeper than {MAX_DEPTH} levels", origin, path or None)
        for part in parts[:-1]:
            path = (*path, part)
            child = target.get(part)
            if child is None and part not in target:
                child = target[part] = {}
                self.origins[path] = origin
                self.implicit.add(path)
            if not isinstance(child, dict):
                raise self.duplicate(path, origin)
            target = child
        last = parts[-1]
        full = (*path, last)
        if last not in target:
            self.origins[full] = origin
            target[last] = self.value(value_node, full)
            return
        existing = target[last]
        if full not in self.implicit or not isinstance(existing, dict):
            raise self.duplicate(full, origin)
        # `a.b: 1` then `a: {c: 2}`: the mapping `a` was only implied so far; fill it in.
        self.implicit.discard(full)
        saved, self.origins = self.origins, {}
        try:
            value = self.value(value_node, full)
            new_origins = self.origins
        finally:
            self.origins = saved
        if not isinstance(value, dict):
            raise self.duplicate(full, origin)
        self.fill(existing, value, full, new_origins)
        self.origins.update(new_origins)

    def fill(
        self, existing: ConfigMapping, new: ConfigMapping, path: KeyPath, new_origins: Origins
    ) -> None:
        for key, value in new.items():
            sub = (*path, key)
            old = existing.get(key)
            if key not in existing:
                existing[key] = value
            elif isinstance(old, dict) and isinstance(value, dict) and sub in self.implicit:
                self.implicit.discard(sub)
                self.fill(old, value, sub, new_origins)
            else:
                raise self.duplicate(sub, new_origins.get(sub, Origin(self.display)))

    def duplicate(self, path: KeyPath, origin: Origin) -> ConfigError:
        first = self.origins.get(path)
        hint = f"first set at line {first.line}" if first and first.line else None
        return error_at("duplicate key", origin, path, hint)


def unsupported_tag(node: Node) -> str | None:
    """What is wrong with the tag of `node` (not its children), or None if a config takes it.

    The tags a config takes: the plain scalars (str, int, float, bool, null, timestamp), lists
    and mappings; the others (`!!python/...`, `!!binary`, `!!set`, `!local`) are refused.
    """
    if type(node) is ScalarNode and (node.tag == STR_TAG or node.tag in _SCALAR_TAGS):
        return None
    if (type(node) is SequenceNode and node.tag == SEQ_TAG) or (
        type(node) is MappingNode and node.tag == MAP_TAG
    ):
        return None
    return f"unsupported YAML tag {_short_tag(node.tag)} (only plain values, mappings, lists)"


def _shown(text: str) -> str:
    """A scalar's text for a message: quoted, cut when long."""
    return repr(text) if len(text) <= 60 else repr(text[:40]) + f"... ({len(text)} characters)"


def _null(node: ScalarNode) -> None:
    return None


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag


def build_node(node: Node, display: str) -> ConfigValue:
    """The value of a node from `parse_node`, with the same checks as for a file."""
    return _Builder(ConfigLoader(""), display).value(node, ())


def parse_file(file: Path, display: str) -> Parsed:
    """The top-level mapping of a config file, the origin of each of its keys, and more."""
    node = parse_node(read_config_bytes(file, display), display)
    if node is None:
        raise ConfigError("the config file is empty", path=display, hint="write {} for no keys")
    if type(node) is not MappingNode:
        kind = "list" if type(node) is SequenceNode else "single value"
        raise ConfigError(
            f"the top level must be a mapping of keys, not a {kind}",
            path=display,
            line=node.start_mark.line + 1,
        )
    builder = _Builder(ConfigLoader(""), display)
    value = builder.value(node, ())
    assert isinstance(value, dict)  # noqa: S101 - a mapping node builds a mapping
    return Parsed(value, builder.origins, builder.unquoted)
