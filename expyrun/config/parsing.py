"""Read YAML safely into config values, with the file and line of every key.

YAML goes through the safe loader only (libyaml's when present). Its nodes are turned into
values here rather than by PyYAML's constructor, which lets us record where each key is, and
refuse what a config must not contain: unknown tags (`!!python/...`), non-string keys, duplicate
keys, an empty file, a top level that is not a mapping. Dotted keys (`a.b: 1`) are split into
nesting, as in expyrun 0.2. YAML aliases are copied, never shared.

Two limits keep a small file from costing unbounded memory or stack (a config never needs
more; the messages name the file and line):
- `MAX_DEPTH` levels of nesting (the top-level mapping is level 1), as serde_yaml's and
  serde_json's default recursion limit: every stage of the engine walks a config recursively,
  and libyaml's composer itself overflows the C stack (a segfault) near 25,000 levels;
- `MAX_ALIAS_VALUES` values built by copying aliases: each use of `*anchor` is a copy, so ten
  nested anchors of ten items each ("billion laughs", 460 bytes) would build 10**10 values.
A file is read up to `MAX_FILE_BYTES`: a pipe is read like a file, and may never end.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from expyrun.config.keys import (
    MAX_DEPTH,
    ConfigMapping,
    ConfigValue,
    KeyPath,
    format_key,
    split_key,
)
from expyrun.config.report import Origin, Origins
from expyrun.errors import ConfigError

# libyaml's parser when PyYAML was built with it (much faster), else the pure-Python one. Only
# its parser and resolver are used: values are built by `_Builder`, which knows a few safe tags.
_Loader: type[yaml.SafeLoader] | type[yaml.CSafeLoader]
try:
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _Loader = yaml.SafeLoader


class _ConfigLoader(_Loader):  # type: ignore[valid-type,misc]  # a class chosen at import time
    """The safe loader, with the tags of plain scalars cached: keys and values repeat a lot."""

    def __init__(self, stream: bytes | str) -> None:
        super().__init__(stream)
        self.plain_tags: dict[str, str] = {}

    def resolve(self, kind: type[Node], value: str, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode and implicit[0]:
            # A plain scalar's tag depends on its text alone (no path resolvers are registered).
            tag = self.plain_tags.get(value)
            if tag is None:
                tag = self.plain_tags[value] = super().resolve(kind, value, implicit)
            return tag
        return str(super().resolve(kind, value, implicit))


MAX_ALIAS_VALUES = 100_000
MAX_FILE_BYTES = 16 * 2**20  # a config of 10,000 keys is about 300 KB
# libyaml's composer recurses in C, without Python's recursion check: it was measured to
# build 20,000 levels and to crash at 30,000 (8 MB stack). Nesting needs one indicator
# ([ { - : ?) per level, so text with fewer of them is composed without counting levels
# first. PyYAML's own composer recurses in Python: any depth past the limit is counted.
_COMPOSER_SAFE_DEPTH = 10_000 if _Loader is not yaml.SafeLoader else MAX_DEPTH
_INDICATORS = ("[", "{", "-", ":", "?")

_new_tuple = tuple.__new__  # Origin(...) calls a Python-level __new__: 3x slower per key

_TAG = "tag:yaml.org,2002:"
STR_TAG, MAP_TAG, SEQ_TAG, MERGE_TAG = _TAG + "str", _TAG + "map", _TAG + "seq", _TAG + "merge"
# The scalar tags `_Builder.scalars` constructs (STR_TAG aside).
_SCALAR_TAGS = frozenset(_TAG + name for name in ("int", "float", "bool", "null", "timestamp"))


def error_at(
    message: str, origin: Origin, key: KeyPath | str | None = None, hint: str | None = None
) -> ConfigError:
    """A `ConfigError` at `origin` about `key` (a path or a dotted key)."""
    if isinstance(key, tuple):
        key = format_key(key) if key else None
    return ConfigError(message, path=origin.path, line=origin.line, key=key, hint=hint)


class _Builder:
    """Turn the nodes of one file into values, recording the origin of every key."""

    def __init__(self, loader: yaml.SafeLoader | yaml.CSafeLoader, display: str) -> None:
        self.display = display
        self.origins: Origins = {}
        self.implicit: set[KeyPath] = set()  # mappings created by a dotted key (`a.b: 1`)
        self.active: set[int] = set()  # container nodes being built (a recursive alias loops)
        self.built: set[int] = set()  # container nodes built once: built again, an alias copy
        self.copying = 0  # alias copies being built (nested)
        self.copied = 0  # values built by alias copies so far
        self.copy_root: KeyPath = ()  # where the outermost alias copy being built goes
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


def _read(file: Path, display: str) -> bytes:
    """The bytes of a config file, at most `MAX_FILE_BYTES` of them.

    A pipe (`expyrun <(make-config)`) is read like a file; an endless one (`/dev/zero`) ran
    out of memory.
    """
    try:
        with open(file, "rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError("no such config file", path=display) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a config file", path=display) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the config file: {exc.strerror}", path=display) from exc
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(
            f"the config file is larger than {MAX_FILE_BYTES // 2**20} MiB",
            path=display,
            hint="a config holds settings; load data from your entry point",
        )
    return data


def parse_node(data: bytes | str, display: str) -> Node | None:
    """Parse one YAML document into nodes; None when it holds none (empty, comments only).

    Raises `ConfigError` for invalid YAML and for nesting deeper than `MAX_DEPTH` levels
    where composing it could exhaust the stack (shallower excess is left to the builder,
    which knows the key).
    """
    if _indicator_count(data) > _COMPOSER_SAFE_DEPTH:
        _check_depth(data, display)
    loader = None
    try:
        loader = _ConfigLoader(data)  # the pure-Python reader decodes here: may fail
        node: Node | None = loader.get_single_node()
        return node
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, display) from exc
    except yaml.YAMLError as exc:
        text = str(exc).strip()
        first_line = text.splitlines()[0] if text else type(exc).__name__
        raise ConfigError(f"invalid YAML: {first_line}", path=display) from exc
    finally:
        if loader is not None:
            loader.dispose()


def _indicator_count(data: bytes | str) -> int:
    """An upper bound of the nesting depth of `data`: each level needs one indicator."""
    if isinstance(data, bytes):
        return sum(data.count(char.encode()) for char in _INDICATORS)
    return sum(data.count(char) for char in _INDICATORS)


def _check_depth(data: bytes | str, display: str) -> None:
    """Refuse `data` when its collections nest deeper than `MAX_DEPTH`, from parse events.

    The events come from the parser, which keeps its own stack on the heap: counting them
    costs about half of composing, and only text with many indicators pays it.
    """
    loader = None
    depth = 0
    try:
        loader = _ConfigLoader(data)  # the pure-Python reader decodes here: may fail
        while (event := loader.get_event()) is not None:
            kind = type(event)
            if kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                depth += 1
                if depth > MAX_DEPTH:
                    raise ConfigError(
                        f"nested deeper than {MAX_DEPTH} levels",
                        path=display,
                        line=event.start_mark.line + 1,
                    )
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                depth -= 1
            elif kind is yaml.StreamEndEvent:
                return
    except yaml.YAMLError:
        return  # invalid YAML: composing reports it, with its line
    finally:
        if loader is not None:
            loader.dispose()


def build_node(node: Node, display: str) -> ConfigValue:
    """The value of a node from `parse_node`, with the same checks as for a file."""
    return _Builder(_ConfigLoader(""), display).value(node, ())


def _yaml_error(exc: yaml.MarkedYAMLError, display: str) -> ConfigError:
    """One line from PyYAML's multi-line message: the problem, its line, the context."""
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "syntax error"
    hint = None
    if exc.context and exc.problem and exc.context_mark is not None:
        hint = f"{exc.context} at line {exc.context_mark.line + 1}"
    if exc.context == "expected a single document in the stream":
        problem, hint = "a second document (---) in a config file", None
    elif exc.context == "while scanning a tag":
        hint = "a value starting with '!' is a YAML tag: quote it, like '!P{a}'"
    return ConfigError(
        f"invalid YAML: {problem}",
        path=display,
        line=mark.line + 1 if mark is not None else None,
        hint=hint,
    )


def parse_file(file: Path, display: str) -> tuple[ConfigMapping, Origins]:
    """The top-level mapping of a config file and the origin of each of its keys."""
    node = parse_node(_read(file, display), display)
    if node is None:
        raise ConfigError("the config file is empty", path=display, hint="write {} for no keys")
    if type(node) is not MappingNode:
        kind = "list" if type(node) is SequenceNode else "single value"
        raise ConfigError(
            f"the top level must be a mapping of keys, not a {kind}",
            path=display,
            line=node.start_mark.line + 1,
        )
    builder = _Builder(_ConfigLoader(""), display)
    value = builder.value(node, ())
    assert isinstance(value, dict)  # noqa: S101 - a mapping node builds a mapping
    return value, builder.origins
