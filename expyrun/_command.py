"""The one door to external programs: git, sbatch/scontrol/scancel/squeue, venv, pip-sync, probes.

Every call takes an argument list (never a shell), closes stdin, has a timeout, and turns a
failure into one `ToolError` line: the program is missing, did not answer in time, could not
start, or (with `check`) exited non-zero, then with the last line it wrote on stderr. Callers
choose the error class (`SlurmError`, `EnvironmentBuildError`) and the hint when it is missing.
The pattern is pip-tools' single door, `piptools/_internal/_subprocess.py`.

`subprocess` is imported inside the functions: this module is reachable from the launch path,
and a no-op launch starts no external program (importing subprocess costs ~2 ms).
The supervisor (it spawns the worker itself) and the detach path (a background supervisor,
`launch/detach.py`) are the only other places that start processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from expyrun.errors import ToolError


class Completed(NamedTuple):
    """A program that ran to its end: its exit code and what it wrote."""

    code: int
    stdout: str
    stderr: str


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    check: bool = True,
    error: type[ToolError] = ToolError,
    missing_hint: str | None = None,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    decode_errors: str = "replace",
) -> Completed:
    """Run `argv` to its end, capturing its output as text.

    Args:
        timeout: seconds before the program is killed and `error` raised.
        check: raise `error` when it exits non-zero (else return its code).
        error: the `ToolError` subclass raised on failure.
        missing_hint: the hint of the error raised when the program is not found.
        decode_errors: how undecodable bytes are read (`surrogateescape` keeps file names).

    Raises:
        error: the program is missing, cannot start, timed out, or (with `check`) failed.
    """
    import subprocess

    program = os.path.basename(argv[0])
    try:
        done = subprocess.run(  # noqa: S603 - an argument list, no shell
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors=decode_errors,
            timeout=timeout,
            check=False,
            cwd=cwd,
            env=None if env is None else dict(env),
        )
    except FileNotFoundError as exc:
        raise error(f"{program}: command not found", hint=missing_hint) from exc
    except subprocess.TimeoutExpired as exc:
        raise error(f"{program} did not answer within {timeout:g} s") from exc
    except OSError as exc:
        raise error(f"{program}: cannot start: {exc.strerror}") from exc
    if check and done.returncode != 0:
        said = last_line(done.stderr, program) or last_line(done.stdout, program)
        raise error(f"{program} failed (exit {done.returncode})" + (f": {said}" if said else ""))
    return Completed(done.returncode, done.stdout, done.stderr)


def stream(
    argv: Sequence[str],
    on_line: Callable[[str], None],
    *,
    timeout: float,
    what: str,
    error: type[ToolError] = ToolError,
    env: Mapping[str, str] | None = None,
) -> tuple[int, bool]:
    """Run `argv`, handing each line of its output (stderr merged, in order) to `on_line`.

    Returns its exit code and whether it was killed for running past `timeout` seconds. A
    long command (pip-sync downloading gigabytes) shows progress this way.

    Raises:
        error: the program cannot start (`what` names it in the message).
    """
    import subprocess
    import threading

    try:
        process = subprocess.Popen(  # noqa: S603 - an argument list, no shell
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=None if env is None else dict(env),
        )
    except OSError as exc:
        raise error(f"{what}: cannot start: {exc.strerror}", path=argv[0]) from exc
    timed_out = threading.Event()

    def _stop() -> None:
        timed_out.set()
        process.kill()

    timer = threading.Timer(timeout, _stop)
    timer.start()
    try:
        assert process.stdout is not None  # noqa: S101 - stdout=PIPE above
        for line in process.stdout:
            on_line(line)
        code = process.wait()
    except BaseException:
        # As CPython's subprocess.run does: never leave the child running behind an error.
        process.kill()
        process.wait()
        raise
    finally:
        timer.cancel()
    return code, timed_out.is_set()


def last_line(text: str, program: str) -> str:
    """The last non-blank line of a program's output, without its `program: error:` prefix."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1]
    for prefix in (f"{program}: error: ", f"{program}: "):
        if line.startswith(prefix):
            return line[len(prefix) :]
    return line
