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

import _thread
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from expyrun.errors import ToolError

# The processes started here that have not been waited for yet, and the lock held while one
# is started or its pid registered: the supervisor, a child subreaper, reaps the orphans it
# adopts and must never take the exit status of one of these (see `unwaited`).
_UNWAITED: set[int] = set()
_LOCK = _thread.allocate_lock()


@contextmanager
def unwaited() -> Iterator[frozenset[int]]:
    """The pids of the programs this door started and has not waited for, frozen meanwhile.

    While the block runs, no program is started or forgotten here: a child of this process
    that is not in the set, and not the worker, is an orphan the subreaper adopted.
    """
    with _LOCK:
        yield frozenset(_UNWAITED)


def _popen(argv: Sequence[str], **options: Any) -> Any:
    """subprocess.Popen, with the pid registered until `_waited` (under the lock).

    In a session of its own, so that `_kill` ends what the program started too: killed alone,
    `python -m venv` left its ensurepip (and pip-sync its `pip install`) running, orphaned,
    into the folder being removed.
    """
    import subprocess

    with _LOCK:
        process = subprocess.Popen(  # noqa: S603 - a list, no shell
            list(argv), start_new_session=True, **options
        )
        _UNWAITED.add(process.pid)
    return process


def _kill(process: Any) -> None:
    """SIGKILL a program started by `_popen` and every process of its group."""
    import signal

    if process.returncode is None:  # not reaped: its pid is still its group's id
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _waited(process: Any) -> None:
    with _LOCK:
        _UNWAITED.discard(process.pid)


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
        process = _popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors=decode_errors,
            cwd=cwd,
            env=None if env is None else dict(env),
        )
    except FileNotFoundError as exc:
        raise error(f"{program}: command not found", hint=missing_hint) from exc
    except OSError as exc:
        raise error(f"{program}: cannot start: {exc.strerror}") from exc
    try:
        # As subprocess.run does: on a timeout or any error, kill it and collect it.
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        _kill(process)
        process.communicate()
        raise error(f"{program} did not answer within {timeout:g} s") from exc
    except BaseException:
        _kill(process)
        process.wait()
        raise
    finally:
        _waited(process)
    if check and process.returncode != 0:
        said = last_line(stderr, program) or last_line(stdout, program)
        code = process.returncode
        raise error(f"{program} failed (exit {code})" + (f": {said}" if said else ""))
    return Completed(process.returncode, stdout, stderr)


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
        process = _popen(
            argv,
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
        _kill(process)

    timer = threading.Timer(timeout, _stop)
    timer.start()
    try:
        assert process.stdout is not None  # noqa: S101 - stdout=PIPE above
        for line in process.stdout:
            on_line(line)
        code = process.wait()
    except BaseException:
        # As CPython's subprocess.run does: never leave the child running behind an error.
        _kill(process)
        process.wait()
        raise
    finally:
        timer.cancel()
        _waited(process)
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
