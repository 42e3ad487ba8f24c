"""Move a prepared run's supervisor to the background, out of reach of the terminal.

The supervisor is started again as `expyrun _supervise RUN_DIR` in a new session (setsid): no
controlling terminal, so no SIGHUP when the terminal or the ssh session closes; stdin is
/dev/null, and its own messages go to supervisor.log in the run folder. The launching command
waits, through a pipe, until the run is recorded `running` (or the supervisor fails), then
returns.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from expyrun import console
from expyrun.errors import ExitCode, Interrupted, RunFolderError
from expyrun.launch.final_record import record_stopped_before_start
from expyrun.launch.options import LaunchOptions
from expyrun.launch.prepare import prepare
from expyrun.run.folder import SUPERVISOR_LOG

# How long the launching command waits for the background supervisor to start the run.
START_TIMEOUT_SECONDS = 60.0
RUNNING = b"running\n"


def detach(options: LaunchOptions) -> int:
    """`expyrun CONFIG --detach`: prepare here, run in the background; print the run folder."""
    prepared = prepare(options)

    def never_started(exc: KeyboardInterrupt | Interrupted) -> None:
        record_stopped_before_start(prepared.run_dir, prepared.record, None, exc)

    pid = start_in_background(prepared.run_dir, never_started)
    console.info(f"started in the background (supervisor pid {pid})")
    console.info(f"follow it with: expyrun logs -f {prepared.run_dir}")
    console.out(str(prepared.run_dir))
    return ExitCode.OK


def start_in_background(
    run_dir: Path, never_started: Callable[[KeyboardInterrupt | Interrupted], None] | None = None
) -> int:
    """Start the supervisor of the prepared `run_dir` in the background; return its pid."""
    command = ["_supervise", str(run_dir)]
    return start_background(command, run_dir / SUPERVISOR_LOG, "the run", None, never_started)


def start_background(
    command: list[str],
    log_path: Path,
    what: str,
    cwd: Path | None = None,
    never_started: Callable[[KeyboardInterrupt | Interrupted], None] | None = None,
) -> int:
    """Start `expyrun COMMAND... --notify-fd FD` in a session of its own; return its pid.

    Its stdout and stderr are appended to `log_path`, its stdin is /dev/null. Returns once
    it wrote RUNNING to the notify pipe (`what` has started). Raises RunFolderError naming
    `log_path` when it did not within START_TIMEOUT_SECONDS or ended first.

    A stop signal (Ctrl-C) before the background process exists calls `never_started` (record
    that nothing ran); once it exists, it goes on (a session of its own: the terminal's Ctrl-C
    does not reach it), and the line printed says so and how to stop it.
    """
    read_fd, write_fd = os.pipe()
    try:
        with open(log_path, "ab") as log:
            # Not through _command: this process outlives expyrun on purpose (no wait, no
            # timeout).
            process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
                [sys.executable, "-m", "expyrun", *command, "--notify-fd", str(write_fd)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=cwd,
                start_new_session=True,
                pass_fds=(write_fd,),
            )
    except (KeyboardInterrupt, Interrupted) as exc:
        os.close(read_fd)
        if never_started is not None:
            never_started(exc)
        raise
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    try:
        message = read_notice(read_fd, START_TIMEOUT_SECONDS)
    except (KeyboardInterrupt, Interrupted):
        console.info(
            f"interrupted while {what} started: it goes on in the background (supervisor pid "
            f"{process.pid}, its messages in {log_path}); `expyrun stop` stops it"
        )
        raise
    finally:
        os.close(read_fd)
    if message != RUNNING:
        raise RunFolderError(
            f"the background supervisor did not start {what}",
            path=log_path,
            hint="its messages are in that file",
        )
    return process.pid


def read_notice(fd: int, timeout: float) -> bytes:
    """What a background supervisor writes on its notify pipe: up to a newline, EOF or timeout."""
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 64)
        if not chunk:
            break
        data += chunk
        if data.endswith(b"\n"):
            break
    return data


def notifier(fd: int) -> Callable[[], None]:
    """The `on_running` callback of a background supervisor: tell the launcher, once.

    A launcher that is gone (stopped by Ctrl-C or a signal while it waited, or past
    START_TIMEOUT_SECONDS) closed the pipe: the run goes on in the background all the same.
    """

    def notify() -> None:
        try:
            os.write(fd, RUNNING)
        except BrokenPipeError:
            pass  # raised here, it would kill the run it was to announce (record: `running`)
        finally:
            os.close(fd)

    return notify
