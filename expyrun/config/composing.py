"""Compose YAML text into nodes with the safe loader, one line per error, within two limits.

Composing is YAML's step from text to a graph of nodes, each with its file mark, before any
value is built (`parsing` builds the values). YAML goes through the safe loader only (libyaml's
when present); its errors become one-line `ConfigError`s naming the file and line.

Two limits keep a small file from exhausting memory or the stack before a value exists:
- a file is read up to `MAX_FILE_BYTES`: a pipe is read like a file, and may never end;
- libyaml's composer recurses in C, without Python's recursion check, and overflows the C stack
  (a segfault) near 25,000 levels of nesting: text that could nest that deep is first checked
  against `MAX_DEPTH` from its parse events, which need no stack.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from yaml.nodes import Node, ScalarNode

from expyrun.config.keys import MAX_DEPTH
from expyrun.errors import ConfigError

# libyaml's parser when PyYAML was built with it (much faster), else the pure-Python one. Only
# its parser and resolver are used: values are built by `parsing`, which knows a few safe tags.
_Loader: type[yaml.SafeLoader] | type[yaml.CSafeLoader]
try:
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _Loader = yaml.SafeLoader


FLOAT_TAG = "tag:yaml.org,2002:float"
# Numbers with an exponent that YAML 1.1 (PyYAML) reads as strings because they have no dot
# or no sign in the exponent (`1e-3`, `5E-4`, `1e5`, `1.0e5`): YAML 1.2's core schema, and
# every other YAML reader people use, reads them as floats. Added to the loader (and to the
# dumper, which then quotes such a string) as one more implicit resolver: the C loader stays.
EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$")
EXPONENT_FIRST = list("-+0123456789.")


class ConfigLoader(_Loader):  # type: ignore[valid-type,misc]  # a class chosen at import time
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


ConfigLoader.add_implicit_resolver(FLOAT_TAG, EXPONENT_FLOAT, EXPONENT_FIRST)

MAX_FILE_BYTES = 16 * 2**20  # a config of 10,000 keys is about 300 KB
# libyaml's composer recurses in C, without Python's recursion check: it was measured to
# build 20,000 levels and to crash at 30,000 (8 MB stack). Nesting needs one indicator
# ([ { - : ?) per level, so text with fewer of them is composed without counting levels
# first. PyYAML's own composer recurses in Python: any depth past the limit is counted.
_COMPOSER_SAFE_DEPTH = 10_000 if _Loader is not yaml.SafeLoader else MAX_DEPTH
_INDICATORS = ("[", "{", "-", ":", "?")


def read_config_bytes(file: Path, display: str) -> bytes:
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
        loader = ConfigLoader(data)  # the pure-Python reader decodes here: may fail
        node: Node | None = loader.get_single_node()
        return node
    except yaml.MarkedYAMLError as exc:
        error = _yaml_error(exc, display)
        if _unquoted_braces(data, exc):
            error.hint = _BRACES_HINT
        raise error from exc
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
        loader = ConfigLoader(data)  # the pure-Python reader decodes here: may fail
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


_BRACES_HINT = 'quote a value starting with "{": YAML reads {...} as a mapping'
# `name: {model.name}-{lr}`: a flow mapping of references, then more text on its line.
# Compiled when first used (re caches it): only a YAML error needs it.
_BRACES_THEN_TEXT = rb"(?::|-)\s+\{[A-Za-z0-9_.\\]+\}[ \t]*[^\s,\]}#]"


def _unquoted_braces(data: bytes | str, exc: yaml.MarkedYAMLError) -> bool:
    """Whether the line of a YAML error holds a reference written without quotes."""
    mark = exc.problem_mark
    if mark is None:
        return False
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    lines = raw.splitlines()
    return mark.line < len(lines) and re.search(_BRACES_THEN_TEXT, lines[mark.line]) is not None


def _yaml_error(exc: yaml.MarkedYAMLError, display: str) -> ConfigError:
    """One line from PyYAML's multi-line message: the problem, its line, the context."""
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "syntax error"
    hint = None
    if exc.context and exc.problem and exc.context_mark is not None:
        hint = f"{exc.context} at line {exc.context_mark.line + 1}"
    if exc.context == "expected a single document in the stream":
        problem, hint = "a second document (---) in a config file", None
    elif problem == "found unknown escape character":  # `"{a\.b}"`: YAML's own escapes
        hint = "in double quotes a backslash starts an escape: write \\\\ or use single quotes"
    elif exc.context == "while scanning a tag":
        hint = "a value starting with '!' is a YAML tag: quote it, like '!P{a}'"
    return ConfigError(
        f"invalid YAML: {problem}",
        path=display,
        line=mark.line + 1 if mark is not None else None,
        hint=hint,
    )
