"""The pip-sync door: venv and pip-sync run through `_command`, their output relayed as progress.

From pip's first `ERROR:` line (or a traceback) on, lines are held back: they become the
error's one line (`EnvironmentBuildError`, exit 69), and the full output is kept in a file the
error's hint names.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from expyrun import _command, console
from expyrun.errors import EnvironmentBuildError

VENV_TIMEOUT_SECONDS = 600
# pip may download gigabytes (CUDA wheels): a sync that takes longer is considered stuck.
SYNC_TIMEOUT_SECONDS = 3 * 3600
# Signs in pip's output that the index was not reachable, as opposed to a missing version.
_NETWORK_SIGNS = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "ConnectTimeoutError",
    "ProxyError",
)
_MAX_REASON_CHARS = 300


def venv_python(path: Path) -> Path:
    """The interpreter of the virtual environment at `path`."""
    return path / "bin" / "python"


def create_venv(python: str, path: Path, prompt: str) -> None:
    """`python -m venv --prompt PROMPT PATH`."""
    call(
        [python, "-m", "venv", "--prompt", prompt, str(path)],
        "python -m venv",
        VENV_TIMEOUT_SECONDS,
    )


def pip_sync(path: Path, requirements_file: Path, pip_options: Sequence[str]) -> None:
    """Make the environment at `path` hold exactly `requirements_file` (pip-tools' pip-sync)."""
    argv = [sys.executable, "-m", "piptools", "sync", "--python-executable"]
    argv += [str(venv_python(path)), *pip_options, str(requirements_file)]
    call(argv, "pip-sync", SYNC_TIMEOUT_SECONDS)


def call(argv: list[str], what: str, timeout: float) -> None:
    """Run a pip-side command, relaying its output as progress; one-line error on failure.

    stderr is merged into stdout so lines keep their order. From pip's first `ERROR:` line
    (or a traceback) on, lines are held back: they become the error's one line, and the full
    output is kept in a file named by the error's hint.
    """

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PIP_NO_INPUT": "1"}
    console.detail("$ " + " ".join(argv))
    lines: list[str] = []
    failing = False

    def relay(line: str) -> None:
        nonlocal failing
        lines.append(line)
        text = line.rstrip()
        failing = failing or text.startswith(("ERROR:", "Traceback ", "error:"))
        if text and not failing:
            console.detail(text)

    code, timed_out = _command.stream(
        argv, relay, timeout=timeout, what=what, error=EnvironmentBuildError, env=env
    )
    if code == 0:
        return
    if timed_out:
        reason = f"stopped after {timeout:.0f} s without finishing"
    else:
        reason = _failure_reason(lines, code)
    raise EnvironmentBuildError(f"{what} failed: {reason}", hint=_save_log(lines, what))


def _failure_reason(lines: list[str], code: int) -> str:
    """One line saying why pip (or pip-sync, or venv) failed."""
    text = "".join(lines)
    if any(sign in text for sign in _NETWORK_SIGNS):
        return "cannot reach the package index (no network, or a proxy or index setting?)"
    errors = [line.strip()[len("ERROR:") :].strip() for line in lines if line.startswith("ERROR:")]
    errors = [error for error in errors if error]
    if errors:
        reason = errors[0]
    else:
        plain = [line.strip() for line in lines if line.strip() and not line.startswith(" ")]
        plain = [line for line in plain if not line.startswith("Traceback ")]
        reason = plain[-1] if plain else f"exit code {code}"
    if len(reason) > _MAX_REASON_CHARS:
        reason = reason[: _MAX_REASON_CHARS - 3] + "..."
    return reason


def _save_log(lines: list[str], what: str) -> str:
    """Keep the full output of a failed command in a temporary file; the hint naming it."""
    try:
        handle, name = tempfile.mkstemp(prefix=f"expyrun-{what.split()[0]}-", suffix=".log")
        with os.fdopen(handle, "w", encoding="utf-8") as log:
            log.writelines(lines)
    except OSError:
        return "its output could not be saved"
    return f"full output in {name}"
