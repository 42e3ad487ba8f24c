"""Decide what the code copy leaves out, and why, as run.json's `code_copy.excluded` says it.

The rules, in the order `Exclusions.reason` applies them: the output dir; the run folder being
made and any folder holding a run.json (copying either would copy the copy into itself); a
path git ignores, unless it is Python code (`snapshot.git_ignored` asks git); a
`__code_exclude__` glob pattern. Caches and hidden entries (`is_skipped`) are never copied and
never recorded. docs/run-folder.md, "The code copy", says all this for users.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from expyrun.run.record import RECORD_FILE

# Why a path is left out of the code copy, as run.json's code_copy.excluded says it.
GITIGNORE_REASON = ".gitignore"
OUTPUT_DIR_REASON = "output dir"
RUN_FOLDER_REASON = "run folder"
# `__code_exclude__` is owned by config/run_section.py (run/ does not import config/).
PATTERN_REASON = "__code_exclude__ {!r}"
SKIPPED_NAMES = {"__pycache__"}
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


def is_skipped(name: str) -> bool:
    """Caches and hidden entries: never copied, never recorded."""
    return name.startswith(".") or name in SKIPPED_NAMES or name.endswith(_SKIPPED_SUFFIXES)


class Exclusions:
    """What the code copy leaves out: paths git ignores, glob patterns, run folders.

    `output_dir` and `run_dir` (the run folder being made) are real paths: copying either
    into the copy would copy the copy into itself.
    """

    def __init__(
        self,
        ignored: set[str],
        patterns: Sequence[str],
        output_dir: str | None = None,
        run_dir: str | None = None,
    ) -> None:
        self.ignored = ignored
        self.output_dir = output_dir
        self.run_dir = run_dir
        self.patterns = [_compile(pattern) for pattern in patterns]

    def reason(self, path: str, is_dir: bool, real: str) -> str | None:
        """Why `path` (from the code folder; `real`: its real path) is left out; None: kept."""
        if is_dir:
            if real == self.output_dir:
                return OUTPUT_DIR_REASON
            if real == self.run_dir or os.path.isfile(os.path.join(real, RECORD_FILE)):
                return RUN_FOLDER_REASON
        if path in self.ignored and not _python_code(real, is_dir):
            return GITIGNORE_REASON
        name = path.rpartition("/")[2]
        for pattern, regex, on_path, folders_only in self.patterns:
            if (is_dir or not folders_only) and regex.match(path if on_path else name):
                return PATTERN_REASON.format(pattern)
        return None


def _python_code(real: str, is_dir: bool) -> bool:
    """Whether `real` is a module (`.py`) or a package folder (`__init__.py`).

    git-ignored Python code is copied all the same: generated modules (setuptools-scm's
    `_version.py`, protobuf's `*_pb2.py`) are usually ignored, and imported.
    """
    if is_dir:
        return os.path.isfile(os.path.join(real, "__init__.py"))
    return real.endswith(".py")


def _compile(pattern: str) -> tuple[str, Any, bool, bool]:
    """A `__code_exclude__` pattern as (pattern, regex, matched on the path, folders only).

    As in .gitignore, a trailing `/` matches folders only, and a pattern holding another `/`
    is matched against the whole path from the code folder, else against each name. The
    matching itself is fnmatch's (`*` also matches `/`).
    """
    import fnmatch  # only when there are patterns
    import re

    text = pattern.removeprefix("./")
    folders_only = text.endswith("/")
    text = text.rstrip("/")
    return pattern, re.compile(fnmatch.translate(text)), "/" in text, folders_only
