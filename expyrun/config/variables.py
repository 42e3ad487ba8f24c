"""Environment variables in config strings: `$NAME`, `${NAME}` and the shell's defaults.

NAME is `[A-Za-z_][A-Za-z0-9_]*`. The braced form takes POSIX shell's operators (`man sh`,
"Parameter Expansion"): `${NAME:-default}` (unset or empty: the default), `${NAME-default}`
(unset only), `${NAME:?message}` / `${NAME?message}` (unset: a config error with the message).
A default is config text: its own variables are expanded, its `{refs}` resolved afterwards.
Any other `${...}` is kept as text and named, for a warning. Variables are replaced in one
pass (a value is not expanded again); a variable that is not set is replaced by "" and named,
for a warning. When a variable was replaced, the whole string is converted to a number or a
boolean when that is lossless (`convert_text`): `lr: $LR` with LR=0.1 gives the float 0.1. An
override replacing a string that holds a variable or a reference is converted the same way.
"""

import math
import re
from collections.abc import Mapping
from typing import NamedTuple

from expyrun.config.composing import EXPONENT_FLOAT
from expyrun.config.keys import ConfigValue

# Patterns compiled when first used (re caches them): a config without variables, the common
# case, never uses them, and compiling them at import cost ~0.2 ms of each launch.
_INTEGER = r"-?[0-9]+"
_HEX_LIKE = r"[0-9]+[eE][0-9]+"  # `1e3`, or a git commit `1234e56`: kept as text


def convert_text(text: str) -> ConfigValue:
    """`text` as an int, a float or a bool when that loses nothing, else `text` itself.

    Lossless means the value prints back as the same text: `123` -> 123, `0.5` -> 0.5,
    `-3` -> -3, `true`/`TRUE` -> True; but `007`, `1_000`, `1.10`, ` 5 `, `nan`, `inf` stay
    strings. A number with a signed exponent or a dot (`1e-4`, `5E-4`, `1.5e3`) is a float, as
    a config file reads it (`composing.EXPONENT_FLOAT`): `lr: ${LR:-1e-4}` is the float 0.0001,
    like `lr: 1e-4`. Digits, `e`, digits (`1e3`) stay text: that is also a hex id (a git commit).
    """
    lowered = text.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    if not text or text[0] not in "-0123456789.":
        return text
    if re.fullmatch(_INTEGER, text):
        try:
            number = int(text)
        except ValueError:  # past sys.get_int_max_str_digits() (4,300): it stays text
            return text
        return number if str(number) == text else text
    try:
        real = float(text)
    except ValueError:
        return text
    exponent = EXPONENT_FLOAT.fullmatch(text) and not re.fullmatch(_HEX_LIKE, text)
    if math.isfinite(real) and (repr(real) == text or exponent):
        return real
    return text


class Expansion(NamedTuple):
    """A string with its variables replaced, and what to warn about."""

    value: ConfigValue  # converted when a variable was replaced (`convert_text`)
    missing: list[str]  # the variables not set (replaced by ""), in order
    invalid: list[str]  # `${...}` that are not variable expressions (kept as text), in order


class RequiredVariable(ValueError):
    """`${NAME:?message}` (or `${NAME?message}`) with NAME not set: a config error."""

    def __init__(self, name: str, message: str, empty: bool = False) -> None:
        state = "empty" if empty else "not set"
        super().__init__(f"environment variable {name} is {state}: {one_line(message)}")
        self.name = name


def expand_variables(text: str, environ: Mapping[str, str]) -> Expansion:
    """`text` with its variables replaced, converted if any was; what was missing or invalid.

    Raises `RequiredVariable` for `${NAME:?message}` when NAME is not set (or empty).
    """
    expander = _Expander(environ)
    result = expander.expand(text)
    value = convert_text(result) if expander.replaced else result
    return Expansion(value, expander.missing, expander.invalid)


def missing_hint(name: str, config: Mapping[str, object]) -> str | None:
    """For `${lr}` not set where `lr` is a key (OmegaConf's reference): how to write one."""
    return f"a reference to the key {name} is written {{{name}}}" if name in config else None


def one_line(text: str) -> str:
    """`text` for a one-line message: a newline or another control character escaped (`\\n`)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def invalid_hint(expression: str) -> str:
    """How to write the invalid `${...}` `expression` as a variable (for its warning)."""
    body = expression[2:-1]
    name = re.match(_NAME, body)
    # `${X:+word}` is the shell's alternate value (word when X is set): not a default.
    if name and body[name.end() : name.end() + 1] == ":" and body[name.end() + 1 :][:1] != "+":
        word = body[name.end() + 1 :].lstrip("=")
        return f"did you mean ${{{name.group()}:-{word}}}?"
    if "." in body and re.match(_NAME, body):
        return f"a reference to a key is written {{{body}}}"
    return (
        "write ${NAME}, ${NAME:-default}, ${NAME-default} or ${NAME:?message}; "
        "'!P' before the value keeps it as text"
    )


_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
# The body of `${...}`: a name, then nothing, or an operator and its word (any text).
_BRACED = r"([A-Za-z_][A-Za-z0-9_]*)(?:(:-|-|:\?|\?)(.*))?"


class _Expander:
    """One pass over a string: `$NAME`, `${NAME}`, `${NAME:-default}`, `${NAME-default}`,
    `${NAME:?message}`, `${NAME?message}` (POSIX shell's forms, `man sh`, "Parameter
    Expansion"). A default is config text: its own variables are expanded, and its `{refs}`
    are resolved after, like any text; a variable's value is never expanded again.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.replaced = False
        self.missing: list[str] = []
        self.invalid: list[str] = []

    def expand(self, text: str) -> str:
        pieces: list[str] = []
        start = 0
        while (dollar := text.find("$", start)) >= 0:
            pieces.append(text[start:dollar])
            if text.startswith("{", dollar + 1):
                end = _closing_brace(text, dollar + 2)
                if end < 0:  # `${X`: not an expression, kept as text
                    pieces.append("$")
                    start = dollar + 1
                    continue
                pieces.append(self.braced(text[dollar : end + 1]))
                start = end + 1
                continue
            name = re.compile(_NAME).match(text, dollar + 1)
            if name is None:  # `$5`, `5$`: kept as text
                pieces.append("$")
                start = dollar + 1
                continue
            pieces.append(self.lookup(name.group()))
            start = name.end()
        pieces.append(text[start:])
        return "".join(pieces)

    def lookup(self, name: str) -> str:
        self.replaced = True
        value = self.environ.get(name)
        if value is None:
            self.missing.append(name)
            return ""
        return value

    def braced(self, expression: str) -> str:
        match = re.compile(_BRACED, re.DOTALL).fullmatch(expression, 2, len(expression) - 1)
        if match is None:
            self.invalid.append(expression)
            return expression
        name, operator, word = match.groups()
        if operator is None:
            return self.lookup(name)
        self.replaced = True
        value = self.environ.get(name)
        unset = value is None if operator in ("-", "?") else not value
        if not unset:
            return str(value)
        if operator.endswith("?"):
            raise RequiredVariable(name, word or "required", empty=value is not None)
        return self.expand(word)


def _closing_brace(text: str, start: int) -> int:
    """The index of the `}` closing a `{` opened before `start`, -1 if none (nesting counts)."""
    depth = 0
    for index in range(start, len(text)):
        char = text[index]
        if char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return index
            depth -= 1
    return -1
