"""A process's identity: a zombie (ended, not waited for yet) does not run."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from expyrun.run.process_identity import process_matches, process_start_time


def test_a_zombie_does_not_run() -> None:
    """A supervisor SIGKILLed a moment ago, not reaped yet, is not taken for a live one."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        started = process_start_time(child.pid)
        host = os.uname().nodename
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until it has ended (a zombie: not waited for)
            with open(f"/proc/{child.pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    break
            time.sleep(0.01)
        assert process_matches(child.pid, host, started) is False
    finally:
        child.wait()


def test_a_running_process_runs() -> None:
    assert process_matches(os.getpid(), os.uname().nodename, process_start_time(os.getpid()))
