"""Fixtures shared by the whole suite, and the final check that no process is left behind."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Project, session_processes, wait_for


def pytest_configure(config: pytest.Config) -> None:
    """Let the commands the tests start take SIGINT as a terminal's Ctrl-C.

    A shell starting pytest in the background (`pytest &` in a script) makes it ignore SIGINT,
    and an ignored signal stays ignored across exec: every expyrun a test starts would then
    ignore the Ctrl-C the test sends. A handler, unlike SIG_IGN, is reset by exec.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A throwaway project folder (code, configs, outputs) under the test's tmp_path."""
    return Project(tmp_path / "project")


@pytest.fixture(autouse=True)
def _no_leftover_processes(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a process of its runs alive; kill what it left."""
    yield
    if request.node.get_closest_marker("leaves_processes"):
        return
    try:
        wait_for(lambda: not session_processes(), 10, "the test's processes to end")
    except AssertionError:
        left = session_processes()
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        pytest.fail(f"processes left running after the test: {left}")
