"""The exception hierarchy and exit codes of expyrun.

Every error expyrun reports to a user is an `ExpyrunError`: it carries where the problem is
(`path`, `line`, `key`) and builds its one-line text in `__str__`. Only `cli.main` catches them,
prints them and turns them into an exit code; library code raises and never prints.
"""

from __future__ import annotations

import enum
from pathlib import Path
from signal import SIGHUP, SIGINT, SIGTERM


class ExitCode(enum.IntEnum):
    """Exit codes of the `expyrun` command, one per kind of outcome.

    A run exits with its worker's own code (0, 1 when the entry point raised, n for
    `sys.exit(n)`); the others are expyrun's. 69 and 70 are EX_UNAVAILABLE and EX_SOFTWARE of
    sysexits.h; 128 + N is the shell's convention for a process killed by signal N.
    """

    OK = 0
    FAILURE = 1  # the entry point raised (or `sys.exit(1)`): the worker's own code
    DIFFERS = 1  # `reproduce --check`, `diff`: the environment or the runs differ (as diff(1))
    USAGE = 2  # bad input: usage, config, entry point, a refused option; found before the run
    UNAVAILABLE = 69  # an external tool or service failed or cannot be reached
    SOFTWARE = 70  # a bug in expyrun itself (traceback shown)
    SIGNAL_BASE = 128  # 128 + N: the worker died of signal N (130 for Ctrl-C)


# The exit codes as `--help` and the README list them: (code, meaning).
EXIT_CODES_HELP: tuple[tuple[str, str], ...] = (
    ("0", "the run succeeded, or the command did what it was asked"),
    ("n", "a run's own exit code: 1 when the entry point raised, n for sys.exit(n)"),
    ("1", "reproduce --check: the environment differs from the run's; diff: the runs differ"),
    (
        str(int(ExitCode.USAGE)),
        "bad input (usage, config, entry point, refused option), found before anything is created",
    ),
    (
        str(int(ExitCode.UNAVAILABLE)),
        "an external tool or service failed or cannot be reached "
        "(sbatch, scontrol, git, venv, pip-sync, the package index)",
    ),
    (str(int(ExitCode.SOFTWARE)), "a bug in expyrun (a traceback is shown)"),
    ("128+N", "the run died of signal N (130 for Ctrl-C, 143 for SIGTERM)"),
)


def signal_exit_code(signum: int) -> int:
    """The exit code of a run whose worker died of signal `signum`: 128 + N."""
    return ExitCode.SIGNAL_BASE + signum


class Interrupted(BaseException):
    """SIGTERM or SIGHUP arrived before a run started: like KeyboardInterrupt for SIGINT.

    Raised by the handler `cli` installs, so that what a launch made so far (a half-made run
    folder, a half-written code copy) is removed on the way out, as for Ctrl-C. Once the
    supervisor runs, it takes these signals itself.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


# The signals that stop expyrun: `interrupt` handles them until a supervisor takes them over.
STOP_SIGNALS = frozenset({SIGINT, SIGTERM, SIGHUP})
# Every stop signal `interrupt` took, in order. A signal handler runs in whatever Python code
# the main thread runs next, which may be a weakref callback of the import system or a
# __del__: there, its exception is printed ("Exception ignored in ...") and dropped. What
# takes these signals over later (a supervisor, a sweep, a --nproc launcher) first calls
# `raise_if_interrupted`, so that no stop signal is lost in between.
_received: list[int] = []


def interrupt(signum: int, frame: object) -> None:
    """The handler of SIGINT, SIGTERM and SIGHUP until a supervisor takes them over.

    Raises KeyboardInterrupt for SIGINT (Python's own handler) and `Interrupted` for the
    others, and remembers the signal for `raise_if_interrupted`.
    """
    _received.append(signum)
    raise _exception(signum)


def raise_if_interrupted() -> None:
    """Raise the exception of the first stop signal `interrupt` took, if any.

    Raising it again is harmless when it was not dropped: it is on its way out already.
    """
    if _received:
        raise _exception(_received[0])


def _exception(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == SIGINT else Interrupted(signum)


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


class ToolError(ExpyrunError):
    """An external program (git, sbatch, venv, pip-sync) is missing, timed out or failed.

    Not the user's input: the tool or the service behind it (slurmctld, a package index) is
    unavailable, so scripts can retry.
    """

    exit_code: int = ExitCode.UNAVAILABLE


class SlurmError(ToolError):
    """Slurm is missing, or one of its commands failed."""


class ReproduceError(ExpyrunError):
    """A past run cannot be launched again (not a run folder, a --debug run, a bad --env)."""


class EnvironmentBuildError(ReproduceError, ToolError):
    """The environment of a reproduced run cannot be built: venv or pip-sync failed."""
