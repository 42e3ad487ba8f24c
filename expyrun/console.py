"""expyrun's own output: one-line messages on stderr; tables and JSON go to stdout.

Only this module (and the worker, which has no expyrun to import) prints. Messages never carry
color, so NO_COLOR holds trivially and logs stay plain text.
"""

from __future__ import annotations

import sys

PREFIX = "expyrun"


def _emit(kind: str, text: str) -> None:
    try:
        sys.stderr.write(f"{PREFIX}: {kind}{text}\n")
        sys.stderr.flush()
    except (OSError, AttributeError):
        # The terminal is gone (closed window); `2>&-` at start leaves sys.stderr None: the
        # run goes on without messages.
        pass


def error(text: object) -> None:
    """Print `expyrun: error: TEXT` on stderr."""
    _emit("error: ", str(text))


def warning(text: object) -> None:
    """Print `expyrun: warning: TEXT` on stderr."""
    _emit("warning: ", str(text))


def info(text: object) -> None:
    """Print `expyrun: TEXT` on stderr (progress and what expyrun is doing)."""
    _emit("", str(text))


def new_line() -> None:
    """End on stderr a line the run's output left open (a progress bar), before a message."""
    try:
        sys.stderr.write("\n")
        sys.stderr.flush()
    except (OSError, AttributeError):  # AttributeError: sys.stderr is None (`2>&-`)
        pass


def detail(text: object) -> None:
    """Print `  TEXT` on stderr: a line of a tool expyrun runs for the user (pip's progress)."""
    try:
        sys.stderr.write(f"  {text}\n")
        sys.stderr.flush()
    except (OSError, AttributeError):  # AttributeError: sys.stderr is None (`2>&-`)
        pass


def ask(question: str) -> str:
    """Print `expyrun: QUESTION` on stderr and read one line of the answer from stdin."""
    try:
        sys.stderr.write(f"{PREFIX}: {question}")
        sys.stderr.flush()
    except (OSError, AttributeError):  # AttributeError: sys.stderr is None (`2>&-`)
        pass
    return sys.stdin.readline()


def out(text: str) -> None:
    """Print TEXT on stdout: results meant for scripts (run folders, tables, JSON, YAML)."""
    try:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        pass


def duration_text(seconds: float) -> str:
    """A duration in expyrun's closing lines: `0.4s`, `41s`, `3m12s`, `2h05m07s`.

    The same words wherever a run's end is told: a foreground run's closing line, `logs -f`,
    a sweep's member lines (issue 13's `failed in 41s`).
    """
    if seconds < 10:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
