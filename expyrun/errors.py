"""The exception hierarchy and exit codes of expyrun.

Every error expyrun reports to a user is an `ExpyrunError`: it carries where the problem is
(`path`, `line`, `key`) and builds its one-line text in `__str__`. Only `cli.main` catches them,
prints them and turns them into an exit code; library code raises and never prints.
"""

from __future__ import annotations

import enum
from pathlib import Path


class ExitCode(enum.IntEnum):
    """Exit codes of the `expyrun` command."""

    OK = 0
    FAILURE = 1  # the entry point raised (or `sys.exit(1)`): the worker's own code
    USAGE = 2  # usage, config and entry-point errors, found before the run starts
    SOFTWARE = 70  # a bug in expyrun itself (EX_SOFTWARE from sysexits.h)
    SIGNAL_BASE = 128  # 128 + N: the worker died of signal N (130 for Ctrl-C)


class ExpyrunError(Exception):
    """An error with a place: the file and line, the dotted key, and a hint.

    The text reads `path:line: key 'a.b': message (hint)`, each part omitted when unknown.
    """

    exit_code: int = ExitCode.USAGE

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.key = key
        self.hint = hint

    def __str__(self) -> str:
        parts = []
        if self.path is not None:
            where = str(self.path)
            if self.line is not None:
                where += f":{self.line}"
            parts.append(where)
        if self.key is not None:
            parts.append(f"key '{self.key}'")
        parts.append(self.message)
        text = ": ".join(parts)
        if self.hint:
            text += f" ({self.hint})"
        return text


class UsageError(ExpyrunError):
    """The command line itself is wrong (unknown flag, missing argument)."""


class ConfigError(ExpyrunError):
    """A config file, its `__default__` chain or an override is wrong."""


class ConfigWarning(ConfigError):
    """Something suspicious in a config: reported as a warning, raised as an error by `--strict`."""


class EntryPointError(ExpyrunError):
    """The `__main__` entry point cannot be found, imported or called (found before the run)."""


class RunFolderError(ExpyrunError):
    """A run folder cannot be allocated, written, or is not a run folder."""


class SlurmError(ExpyrunError):
    """Slurm is missing, or one of its commands failed."""


class ReproduceError(ExpyrunError):
    """An environment cannot be rebuilt, or a past run cannot be launched again."""
