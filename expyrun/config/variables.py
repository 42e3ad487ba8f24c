"""Environment variables in config strings: `$NAME` and `${NAME}`, and the text they give.

NAME is `[A-Za-z_][A-Za-z0-9_]*`. Variables are replaced in one pass (a value is not expanded
again); a variable that is not set is replaced by "" and named, for a warning. When a variable
was replaced, the whole string is converted to a number or a boolean when that is lossless
(`convert_text`): `lr: $LR` with LR=0.1 gives the float 0.1. An override replacing a string
that holds a variable or a reference is converted the same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from expyrun.config.keys import ConfigValue

_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_INTEGER = re.compile(r"-?[0-9]+")


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
        try:
            number = int(text)
        except ValueError:  # past sys.get_int_max_str_digits() (4,300): it stays text
            return text
        return number if str(number) == text else text
    try:
        real = float(text)
    except ValueError:
        return text
    if math.isfinite(real) and repr(real) == text:
        return real
    return text


def expand_variables(text: str, environ: Mapping[str, str]) -> tuple[ConfigValue, list[str]]:
    """`text` with its variables replaced, converted if any was; the names not set, in order."""
    replaced = False
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        nonlocal replaced
        replaced = True
        name = match.group(1) or match.group(2)
        value = environ.get(name)
        if value is None:
            missing.append(name)
            return ""
        return value

    result = _VARIABLE.sub(replace, text)
    return (convert_text(result) if replaced else result), missing
