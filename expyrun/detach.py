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

from expyrun.errors import RunFolderError

SUPERVISOR_LOG = "supervisor.log"
# How long the launching command waits for the background supervisor to start the run.
START_TIMEOUT_SECONDS = 60.0
RUNNING = b"running\n"


def start_in_background(run_dir: Path) -> int:
    """Start the supervisor of the prepared `run_dir` in the background; return its pid."""
    read_fd, write_fd = os.pipe()
    with open(run_dir / SUPERVISOR_LOG, "ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
            [
                sys.executable,
                "-m",
                "expyrun",
                "_supervise",
                str(run_dir),
                "--notify-fd",
                str(write_fd),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            pass_fds=(write_fd,),
        )
    os.close(write_fd)
    try:
        message = _read_until_eof(read_fd, START_TIMEOUT_SECONDS)
    finally:
        os.close(read_fd)
    if message != RUNNING:
        raise RunFolderError(
            "the background supervisor did not start the run",
            path=run_dir / SUPERVISOR_LOG,
            hint="its messages are in that file",
        )
    return process.pid


def _read_until_eof(fd: int, timeout: float) -> bytes:
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
    """The `on_running` callback of a background supervisor: tell the launcher, once."""

    def notify() -> None:
        try:
            os.write(fd, RUNNING)
        finally:
            os.close(fd)

    return notify
