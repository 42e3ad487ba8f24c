"""Where each key came from, and the warnings found while resolving a config.

Every stage of the engine reports through one `Report`: it keeps the warnings in the order they
are found, or, in strict mode, raises the first one (a `ConfigWarning` is a `ConfigError`), so
that the error a user sees is the first problem, not the last.
"""

from pathlib import Path
from typing import NamedTuple, TypeAlias

from expyrun.config.keys import KeyPath, format_key
from expyrun.errors import ConfigWarning


class Origin(NamedTuple):
    """The file (as displayed) and line (1-based) a key was set at; line None if unknown."""

    path: str
    line: int | None = None


# The origin of every key path, filled while loading, merging and overriding. A stale entry
# (a key later replaced by a scalar) is harmless: only paths that exist are looked up.
Origins: TypeAlias = "dict[KeyPath, Origin]"

COMMAND_LINE = Origin("command line")


def display_path(path: Path, cwd: Path) -> str:
    """`path` relative to `cwd` when it lies under it (shorter messages), else absolute."""
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)


class Report:
    """Collect warnings in order; with `strict`, raise the first one instead."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.warnings: list[ConfigWarning] = []

    def warn(
        self,
        message: str,
        origin: Origin | None,
        path: "KeyPath | None" = None,
        hint: str | None = None,
    ) -> None:
        """Record a warning about the key `path` set at `origin` (raise it when strict)."""
        warning = ConfigWarning(
            message,
            path=origin.path if origin else None,
            line=origin.line if origin else None,
            key=format_key(path) if path else None,
            hint=hint,
        )
        if self.strict:
            raise warning
        self.warnings.append(warning)
