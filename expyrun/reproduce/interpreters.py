"""The interpreter to rebuild a run's environment with: the run's own Python version."""

from __future__ import annotations

import os
import shutil
import sys

from expyrun import _command, console
from expyrun.errors import ReproduceError, ToolError
from expyrun.launch.options import Interpreter, this_interpreter

PROBE_TIMEOUT_SECONDS = 30


def probe_python(executable: str) -> Interpreter | None:
    """The version of the interpreter `executable`, or None if it does not run."""
    argv = [executable, "-c", "import sys; print(sys.version.split()[0])"]
    try:
        done = _command.run(argv, timeout=PROBE_TIMEOUT_SECONDS, check=False)
    except ToolError:
        return None
    version = done.stdout.strip()
    return Interpreter(executable, version) if done.code == 0 and version else None


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def choose_python(recorded: dict[str, str], explicit: str | None) -> Interpreter:
    """The interpreter to build the environment with: the run's own Python version.

    Tries `explicit` (`--python`), else the run's interpreter, this one, then `pythonX.Y` on
    PATH; takes the first of the exact version, else of the same minor version (with a
    warning). A different minor version is an error unless asked for with `--python`.
    """
    wanted = recorded.get("version", "")
    if explicit is not None:
        found = probe_python(shutil.which(explicit) or explicit)
        if found is None:
            raise ReproduceError("not a Python interpreter", path=explicit)
        if wanted and found.version != wanted:
            console.warning(f"the run used Python {wanted}; building with {found.version}")
        return found
    candidates = [recorded.get("executable"), sys.executable]
    candidates += [shutil.which(f"python{_minor(wanted)}"), shutil.which("python3")]
    seen: set[str] = set()
    close: Interpreter | None = None
    for candidate in candidates:
        if not candidate or candidate in seen or not os.access(candidate, os.X_OK):
            continue
        seen.add(candidate)
        found = this_interpreter() if candidate == sys.executable else probe_python(candidate)
        if found is None:
            continue
        if not wanted or found.version == wanted:
            return found
        if close is None and _minor(found.version) == _minor(wanted):
            close = found
    if close is None:
        raise ReproduceError(
            f"the run used Python {wanted} and no Python {_minor(wanted)} was found",
            hint="choose an interpreter with --python PATH",
        )
    console.warning(
        f"the run used Python {wanted}; building with {close.version} ({close.executable})"
    )
    return close
