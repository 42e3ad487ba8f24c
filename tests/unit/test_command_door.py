"""The door to external programs kills what a program started along with it (`_command`).

A program killed alone leaves its children running, orphaned: `python -m venv`'s ensurepip,
pip-sync's `pip install`, git's ssh. On a timeout they also hold the output pipes open, so
collecting the killed program's output waited for them, past the timeout.
"""

from __future__ import annotations

import sys
import time
import uuid

import psutil
import pytest

from expyrun import _command
from expyrun.errors import ToolError

# A program that starts a silent child holding its stdout, then waits; MARK names the child.
PARENT = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", sys.argv[1]])
print("started", flush=True)
time.sleep(60)
"""


def _alive(mark: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        if mark in (process.info["cmdline"] or []) and process.info["status"] != "zombie":
            found.append(process)
    return found


def _gone(mark: str, timeout: float = 10) -> bool:
    """Whether every process marked `mark` ends within `timeout` s (a SIGKILL sent to a
    process group is not taken at once on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while _alive(mark):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def mark() -> str:
    mark = f"expyrun-test-{uuid.uuid4().hex}"
    yield mark
    for process in _alive(mark):
        process.kill()


def test_a_timed_out_program_is_killed_with_what_it_started(mark: str) -> None:
    started = time.monotonic()
    with pytest.raises(ToolError, match="did not answer within 1 s"):
        _command.run([sys.executable, "-c", PARENT, mark], timeout=1)
    assert time.monotonic() - started < 20  # not the child's 60 s
    assert _gone(mark), _alive(mark)


def test_an_interrupted_stream_kills_what_the_program_started(mark: str) -> None:
    def on_line(line: str) -> None:
        if line.startswith("started"):
            raise KeyboardInterrupt  # Ctrl-C while pip-sync runs

    with pytest.raises(KeyboardInterrupt):
        _command.stream([sys.executable, "-c", PARENT, mark], on_line, timeout=60, what="a program")
    assert _gone(mark), _alive(mark)
