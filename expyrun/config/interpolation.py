"""Resolve environment variables (`$VAR`, `${VAR}`) and references (`{a.b}`) in a raw config.

Only string values are parsed, keys never. For each string, in order:

1. a string starting with `!P` is the rest of the string, untouched (the escape);
2. `$NAME` and `${NAME}` (NAME = `[A-Za-z_][A-Za-z0-9_]*`) are replaced by the variable's
   value, in one pass (a value is not expanded again); a missing variable warns and gives "";
   `${NAME:-default}`, `${NAME-default}`, `${NAME:?message}` as in the shell (`variables`),
   any other `${...}` warns and is kept;
   if a variable was replaced, the whole string is converted to a number or a boolean when
   that is lossless (`variables`);
3. if still a string, `{a.b}` (a dotted key of letters, digits, `_`) is a reference: a string
   that is exactly one reference becomes the referenced value with its type (a mapping or a
   list included, copied); otherwise each reference is replaced by the value's text.

References are resolved on demand, in any key order, and into lists (`{layers.1.size}`); the
path being resolved is tracked, so that a cycle is an error naming it. A chain of references
is followed without recursion (each step is a generator on an explicit stack), so its length
is bounded by memory alone and a cycle of any length is reported as a cycle. A reference that
places a mapping or a list may not nest the config deeper than `MAX_DEPTH` levels, and all of
them together copy at most `MAX_REFERENCE_VALUES` values: like YAML aliases, references of
references multiply (ten levels of ten `{l}` would build 10**10 values from 600 bytes). For the
same reason, references inside text insert at most `MAX_REFERENCE_TEXT` characters in all
(`s1: "{s0}{s0}..."` over eight levels would build a gigabyte from 400 bytes).
"""

import re
from collections.abc import Generator, Mapping
from typing import NamedTuple, TypeVar

from expyrun.config import variables
from expyrun.config.keys import (
    MAX_DEPTH,
    ConfigMapping,
    ConfigValue,
    KeyPath,
    did_you_mean,
    format_key,
    list_index,
    split_key,
)
from expyrun.config.report import Origins, Report
from expyrun.config.variables import RequiredVariable, expand_variables, invalid_hint, one_line
from expyrun.errors import ConfigError

NO_PARSE = "!P"
CWD_VARIABLE = "EXPYRUN_CWD"  # the launch directory, set for every resolution

_REFERENCE = re.compile(r"\{((?:[A-Za-z0-9_.]|\\\.)+)\}")  # `\.`: a dot inside a key
_HINTS_MAX = 20  # "did you mean" scans every key: only for the first few unresolved references
_CYCLE_SHOWN = 8  # a longer cycle is shown by its ends: the line stays readable
# Values copied by whole references to mappings and lists: a config needs a few thousand; a
# million cost about 0.3 s and 50 MB (aliases stop at 100,000: each keeps its line as well).
MAX_REFERENCE_VALUES = 1_000_000
MAX_REFERENCE_TEXT = 10_000_000  # characters: a config's text is a few kilobytes


class _Missing:
    """The marker of a reference that names no key."""


_MISSING = _Missing()


def needs_parsing(text: str) -> bool:
    """Whether resolution could change `text` (the rest is returned as is, fast)."""
    return "$" in text or "{" in text or text.startswith(NO_PARSE)


def escape(text: str) -> str:
    """`text` written so that resolution gives it back unchanged (`!P` prefix when needed)."""
    return NO_PARSE + text if needs_parsing(text) else text


def interpolate(
    raw: ConfigMapping, environ: Mapping[str, str], origins: Origins, report: Report
) -> ConfigMapping:
    """The resolved copy of `raw` (which is left unchanged)."""
    resolver = _Resolver(raw, environ, origins, report)
    resolved = resolver.run(resolver.tree(raw, ()))
    assert isinstance(resolved, dict)  # noqa: S101 - a mapping resolves to a mapping
    return resolved


def _text(value: ConfigValue) -> str:
    # Python's formatting, as in expyrun 0.2: True, None, [10, 10], 1e-05.
    return value if isinstance(value, str) else str(value)


class _TooDeep(Exception):
    """A copy would nest the config deeper than `MAX_DEPTH`."""


class _TooMany(Exception):
    """References have copied more than `MAX_REFERENCE_VALUES` values."""


class _Need(NamedTuple):
    """A request to the driver: the resolved form of the raw `value` at `path`."""

    path: KeyPath
    value: ConfigValue  # a string to parse, or a mapping or list to resolve


_T = TypeVar("_T")
# A step of resolution: yields what it needs, is sent its resolved value, returns its result.
_Steps = Generator[_Need, ConfigValue, _T]


class _Resolver:
    """Resolve strings and referenced containers, each once, with an explicit stack.

    Each unit of work (a string, a referenced mapping or list, the whole config) is a
    generator: where the recursive version would call itself for a value not resolved yet,
    it yields a `_Need`, and `run` pushes that need's generator and sends back its result.
    The stack of needs is the path being resolved: a need already on it is a cycle.
    """

    def __init__(
        self, raw: ConfigMapping, environ: Mapping[str, str], origins: Origins, report: Report
    ) -> None:
        self.raw = raw
        self.environ = environ
        self.origins = origins
        self.report = report
        self.strings: dict[KeyPath, ConfigValue] = {}  # resolved strings, by path
        self.containers: dict[KeyPath, ConfigValue] = {}  # resolved mappings/lists referenced
        self.active: dict[KeyPath, None] = {}  # being resolved, in order: the cycle check
        self.hints = 0
        self.copied = 0  # values copied by whole references, against MAX_REFERENCE_VALUES
        self.inserted = 0  # characters inserted into text by references, MAX_REFERENCE_TEXT

    def run(self, root: _Steps[ConfigValue]) -> ConfigValue:
        """Drive `root` and every need it leads to; return its result."""
        stack: list[tuple[_Need | None, _Steps[ConfigValue]]] = [(None, root)]
        sent: ConfigValue = None
        while True:
            need, steps = stack[-1]
            try:
                request = steps.send(sent)
            except StopIteration as done:
                stack.pop()
                sent = done.value
                if need is None:
                    return sent
                del self.active[need.path]
                if isinstance(need.value, str):
                    self.strings[need.path] = sent
                else:
                    self.containers[need.path] = sent
                continue
            self.enter(request.path)
            task = request.value
            if isinstance(task, str):
                stack.append((request, self.string(task, request.path)))
            else:
                stack.append((request, self.tree(task, request.path)))
            sent = None

    def enter(self, path: KeyPath) -> None:
        if path in self.active:
            chain = list(self.active)
            cycle = [format_key(p) for p in [*chain[chain.index(path) :], path]]
            if len(cycle) > _CYCLE_SHOWN:
                shown = [*cycle[:3], "...", *cycle[-3:]]
                text = " -> ".join(shown) + f" ({len(cycle) - 1} keys)"
            else:
                text = " -> ".join(cycle)
            raise self.error("reference cycle: " + text, path)
        self.active[path] = None

    def error(self, message: str, path: KeyPath, hint: str | None = None) -> ConfigError:
        """A `ConfigError` about the key at `path`, naming where it was set."""
        origin = self.origins.get(path)
        return ConfigError(
            message,
            path=origin.path if origin else None,
            line=origin.line if origin else None,
            key=format_key(path),
            hint=hint,
        )

    def tree(self, value: ConfigValue, path: KeyPath) -> _Steps[ConfigValue]:
        """Resolve `value` (at `path` in the raw config) into new mappings and lists."""
        # The common values (plain strings, numbers) are handled inline: a generator per value
        # would cost a third of the resolution time.
        strings = self.strings
        if isinstance(value, dict):
            mapping: ConfigMapping = {}
            for key, item in value.items():
                if isinstance(item, str):
                    if needs_parsing(item):
                        sub = (*path, key)
                        item = strings[sub] if sub in strings else (yield _Need(sub, item))
                elif isinstance(item, dict | list):
                    item = yield from self.tree(item, (*path, key))
                mapping[key] = item
            return mapping
        if isinstance(value, list):
            items: list[ConfigValue] = []
            for index, item in enumerate(value):
                if isinstance(item, str):
                    if needs_parsing(item):
                        sub = (*path, index)
                        item = strings[sub] if sub in strings else (yield _Need(sub, item))
                elif isinstance(item, dict | list):
                    item = yield from self.tree(item, (*path, index))
                items.append(item)
            return items
        return value

    def item(self, value: ConfigValue, path: KeyPath) -> _Steps[ConfigValue]:
        if isinstance(value, str):
            if not needs_parsing(value):
                return value
            if path in self.strings:
                return self.strings[path]
            return (yield _Need(path, value))
        if isinstance(value, dict | list):
            return (yield from self.tree(value, path))
        return value

    def string(self, text: str, path: KeyPath) -> _Steps[ConfigValue]:
        if text.startswith(NO_PARSE):
            return text[len(NO_PARSE) :]
        value: ConfigValue = text
        if "$" in text:
            value = self.variables(text, path)
        if isinstance(value, str) and "{" in value:
            value = yield from self.references(value, path)
        return value

    def variables(self, text: str, path: KeyPath) -> ConfigValue:
        try:
            expansion = expand_variables(text, self.environ)
        except RequiredVariable as exc:
            raise self.error(str(exc), path) from None
        for expression in expansion.invalid:
            self.report.warn(
                f"not a variable expression: {one_line(expression)} is kept as text",
                self.origins.get(path),
                path,
                hint=one_line(invalid_hint(expression)),
            )
        for name in expansion.missing:
            self.report.warn(
                f"environment variable {name} is not set: replaced by ''",
                self.origins.get(path),
                path,
                hint=variables.missing_hint(name, self.raw),
            )
        return expansion.value

    def references(self, text: str, path: KeyPath) -> _Steps[ConfigValue]:
        whole = _REFERENCE.fullmatch(text)
        if whole:
            value = yield from self.lookup(whole.group(1), path)
            return "" if isinstance(value, _Missing) else self.placed(value, path, text)
        pieces = []
        end = 0
        for match in _REFERENCE.finditer(text):
            pieces.append(text[end : match.start()])
            value = yield from self.lookup(match.group(1), path)
            piece = "" if isinstance(value, _Missing) else _text(value)
            self.inserted += len(piece)
            if self.inserted > MAX_REFERENCE_TEXT:
                raise self.error(
                    f"references insert more than {MAX_REFERENCE_TEXT:,} characters into text",
                    path,
                    "text built from references of references multiplies",
                )
            pieces.append(piece)
            end = match.end()
        pieces.append(text[end:])
        return "".join(pieces)

    def placed(self, value: ConfigValue, path: KeyPath, text: str) -> ConfigValue:
        """A copy of `value` to place at `path`, within the depth and copy limits."""
        try:
            return self.copy(value, MAX_DEPTH - len(path))
        except _TooDeep:
            problem = f"nested deeper than {MAX_DEPTH} levels once {text} is placed here"
            hint = None
        except _TooMany:
            problem = f"references copy more than {MAX_REFERENCE_VALUES:,} values"
            hint = "each whole reference to a mapping or list is a copy: references multiply"
        raise self.error(problem, path, hint)

    def copy(self, value: ConfigValue, levels: int) -> ConfigValue:
        """A copy of `value` at most `levels` deep (recursion bounded by it), counted."""
        if isinstance(value, dict | list):
            if levels <= 0:
                raise _TooDeep
            self.copied += len(value)
            if self.copied > MAX_REFERENCE_VALUES:
                raise _TooMany
            if isinstance(value, dict):
                return {key: self.copy(item, levels - 1) for key, item in value.items()}
            return [self.copy(item, levels - 1) for item in value]
        return value

    def lookup(self, dotted: str, path: KeyPath) -> "_Steps[ConfigValue | _Missing]":
        """The resolved value of the key `dotted`, referenced from `path`; warns if none."""
        parts = split_key(dotted)
        value = (yield from self.walk(parts)) if parts else _MISSING
        if isinstance(value, _Missing):
            hint = None
            if self.hints < _HINTS_MAX:
                self.hints += 1
                hint = did_you_mean(dotted, self.raw)
            self.report.warn(
                f"unresolved reference {{{dotted}}}: replaced by ''",
                self.origins.get(path),
                path,
                hint=hint,
            )
        return value

    def walk(self, parts: tuple[str, ...]) -> "_Steps[ConfigValue | _Missing]":
        current: ConfigValue = self.raw
        path: KeyPath = ()
        resolved = False  # below a resolved reference, values are resolved already
        for part in parts:
            if not resolved and isinstance(current, str) and needs_parsing(current):
                current = yield from self.item(current, path)
                resolved = True
            if isinstance(current, list):
                index = list_index(part)
                if index is None or index >= len(current):
                    return _MISSING
                current = current[index]
                path = (*path, index)
            elif isinstance(current, dict) and part in current:
                current = current[part]
                path = (*path, part)
            else:
                return _MISSING
        if resolved:
            return current
        return (yield from self.resolved(current, path))

    def resolved(self, value: ConfigValue, path: KeyPath) -> _Steps[ConfigValue]:
        """The resolved form of the raw `value` found at `path`."""
        if isinstance(value, dict | list):
            if path in self.containers:
                return self.containers[path]
            return (yield _Need(path, value))
        return (yield from self.item(value, path))
