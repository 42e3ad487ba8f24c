"""Resolve environment variables (`$VAR`, `${VAR}`) and references (`{a.b}`) in a raw config.

Only string values are parsed, keys never. For each string, in order:

1. a string starting with `!P` is the rest of the string, untouched (the escape);
2. `$NAME` and `${NAME}` (NAME = `[A-Za-z_][A-Za-z0-9_]*`) are replaced by the variable's
   value, in one pass (a value is not expanded again); a missing variable warns and gives "";
   if a variable was replaced, the whole string is converted to a number or a boolean when
   that is lossless (`convert_text`);
3. if still a string, `{a.b}` (a dotted key of letters, digits, `_`) is a reference: a string
   that is exactly one reference becomes the referenced value with its type (a mapping or a
   list included, copied); otherwise each reference is replaced by the value's text.

References are resolved on demand, in any key order, and into lists (`{layers.1.size}`); the
path being resolved is tracked, so that a cycle is an error naming it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from expyrun.config.keys import (
    ConfigMapping,
    ConfigValue,
    KeyPath,
    copy_value,
    did_you_mean,
    format_key,
    list_index,
    split_key,
)
from expyrun.config.report import Origins, Report
from expyrun.errors import ConfigError

NO_PARSE = "!P"
CWD_VARIABLE = "EXPYRUN_CWD"  # the launch directory, set for every resolution

_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_REFERENCE = re.compile(r"\{([A-Za-z0-9_.]+)\}")
_INTEGER = re.compile(r"-?[0-9]+")
_HINTS_MAX = 20  # "did you mean" scans every key: only for the first few unresolved references


class _Missing:
    """The marker of a reference that names no key."""


_MISSING = _Missing()


def convert_text(text: str) -> ConfigValue:
    """`text` as an int, a float or a bool when that loses nothing, else `text` itself.

    Lossless means the value prints back as the same text: `123` -> 123, `0.5` -> 0.5,
    `-3` -> -3, `true`/`TRUE` -> True; but `007`, `1_000`, `1.10`, `1e3`, ` 5 `, `nan`, `inf`
    stay strings.
    """
    lowered = text.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    if not text or text[0] not in "-0123456789.":
        return text
    if _INTEGER.fullmatch(text):
        number = int(text)
        return number if str(number) == text else text
    try:
        real = float(text)
    except ValueError:
        return text
    if math.isfinite(real) and repr(real) == text:
        return real
    return text


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
    resolved = _Resolver(raw, environ, origins, report).tree(raw, ())
    assert isinstance(resolved, dict)  # noqa: S101 - a mapping resolves to a mapping
    return resolved


def _text(value: ConfigValue) -> str:
    # Python's formatting, as in expyrun 0.2: True, None, [10, 10], 1e-05.
    return value if isinstance(value, str) else str(value)


class _Resolver:
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

    def tree(self, value: ConfigValue, path: KeyPath) -> ConfigValue:
        """Resolve `value` (at `path` in the raw config) into new mappings and lists."""
        if isinstance(value, str):
            return self.string(value, path) if needs_parsing(value) else value
        if isinstance(value, dict):
            return {key: self.tree(item, (*path, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [self.tree(item, (*path, index)) for index, item in enumerate(value)]
        return value

    def enter(self, path: KeyPath) -> None:
        if path in self.active:
            chain = list(self.active)
            cycle = [*chain[chain.index(path) :], path]
            origin = self.origins.get(path)
            raise ConfigError(
                "reference cycle: " + " -> ".join(format_key(p) for p in cycle),
                path=origin.path if origin else None,
                line=origin.line if origin else None,
                key=format_key(path),
            )
        self.active[path] = None

    def string(self, text: str, path: KeyPath) -> ConfigValue:
        if path in self.strings:
            return self.strings[path]
        self.enter(path)
        try:
            value = self.parse(text, path)
        finally:
            del self.active[path]
        self.strings[path] = value
        return value

    def parse(self, text: str, path: KeyPath) -> ConfigValue:
        if text.startswith(NO_PARSE):
            return text[len(NO_PARSE) :]
        value: ConfigValue = text
        if "$" in text:
            value = self.variables(text, path)
        if isinstance(value, str) and "{" in value:
            value = self.references(value, path)
        return value

    def variables(self, text: str, path: KeyPath) -> ConfigValue:
        replaced = False

        def replace(match: re.Match[str]) -> str:
            nonlocal replaced
            replaced = True
            name = match.group(1) or match.group(2)
            value = self.environ.get(name)
            if value is None:
                self.report.warn(
                    f"environment variable {name} is not set: replaced by ''",
                    self.origins.get(path),
                    path,
                )
                return ""
            return value

        result = _VARIABLE.sub(replace, text)
        return convert_text(result) if replaced else result

    def references(self, text: str, path: KeyPath) -> ConfigValue:
        whole = _REFERENCE.fullmatch(text)
        if whole:
            value = self.lookup(whole.group(1), path)
            return "" if isinstance(value, _Missing) else copy_value(value)

        def replace(match: re.Match[str]) -> str:
            value = self.lookup(match.group(1), path)
            return "" if isinstance(value, _Missing) else _text(value)

        return _REFERENCE.sub(replace, text)

    def lookup(self, dotted: str, path: KeyPath) -> ConfigValue | _Missing:
        """The resolved value of the key `dotted`, referenced from `path`; warns if none."""
        parts = split_key(dotted)
        value = self.walk(parts) if parts else _MISSING
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

    def walk(self, parts: tuple[str, ...]) -> ConfigValue | _Missing:
        current: ConfigValue = self.raw
        path: KeyPath = ()
        resolved = False  # below a resolved reference, values are resolved already
        for part in parts:
            if not resolved and isinstance(current, str) and needs_parsing(current):
                current = self.string(current, path)
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
        return current if resolved else self.resolved(current, path)

    def resolved(self, value: ConfigValue, path: KeyPath) -> ConfigValue:
        """The resolved form of the raw `value` found at `path`."""
        if isinstance(value, str):
            return self.string(value, path) if needs_parsing(value) else value
        if not isinstance(value, (dict, list)):
            return value
        if path not in self.containers:
            self.enter(path)
            try:
                self.containers[path] = self.tree(value, path)
            finally:
                del self.active[path]
        return self.containers[path]
