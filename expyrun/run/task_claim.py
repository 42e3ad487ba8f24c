"""How the tasks of one job step find the run folder task 0 allocated, on a shared file system.

Task 0 (and only task 0: the rank decides, so no two tasks ever allocate) prepares the run
folder, then publishes it in a claim file keyed by the step, under the name folder:
`{output_dir}/{name}/.steps/{group}.json`. The claim is written to a temporary file and
renamed into place (rename is atomic, also on NFS): a task reads a whole claim or none. The
other tasks wait for it, a bounded time, reading it again and again (a new open each time, so
an NFS client asks the server rather than its cache). When task 0 fails before the run (a bad
config), the claim says why, and the other tasks stop at once with the same error.

Claims stay after the run (a few hundred bytes each; `ls` skips dot folders): a requeued job
step gets another key (its restart count), so an old claim never misleads.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from expyrun.errors import RunFolderError

CLAIMS_FOLDER = ".steps"
# How long a task waits for task 0's claim: task 0 copies the code and snapshots first, on a
# shared file system that may be slow. EXPYRUN_TASK_WAIT (seconds) changes it.
DEFAULT_WAIT_SECONDS = 600.0
WAIT_VARIABLE = "EXPYRUN_TASK_WAIT"
# Polling: fast at first (tasks usually start within milliseconds of each other), then slower.
_FIRST_POLL_SECONDS = 0.02
_MAX_POLL_SECONDS = 0.5
# A task still waiting after this long says so (once): task 0 is slow, or not running.
WAITING_NOTICE_SECONDS = 1.0


def claim_path(name_folder: Path, group: str) -> Path:
    """The claim file of a task group under the run's name folder."""
    return name_folder / CLAIMS_FOLDER / f"{group}.json"


def publish(path: Path, run_dir: Path | None, error: str | None = None) -> None:
    """Publish the group's run folder (task 0), or why there is none (`error`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = {"run_dir": None if run_dir is None else str(run_dir), "error": error}
    temporary.write_text(json.dumps(data) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def wait_seconds() -> float:
    """How long to wait for task 0's claim: EXPYRUN_TASK_WAIT, else the default."""
    try:
        return max(0.0, float(os.environ.get(WAIT_VARIABLE) or DEFAULT_WAIT_SECONDS))
    except ValueError:
        return DEFAULT_WAIT_SECONDS


def wait_for_claim(
    path: Path, timeout: float, who: str, on_wait: Callable[[], None] | None = None
) -> Path:
    """The run folder task 0 published at `path`, waiting at most `timeout` seconds.

    `who` names the waiting task in errors (`task 2 of 4 (slurm-42.0)`); `on_wait` is called
    once if the claim is still missing after WAITING_NOTICE_SECONDS. Raises RunFolderError
    when task 0 says it failed, or publishes nothing in time.
    """
    started = time.monotonic()
    deadline = started + timeout
    pause = _FIRST_POLL_SECONDS
    while True:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = None
        except (OSError, ValueError) as exc:
            raise RunFolderError(f"{who}: unreadable claim: {exc}", path=path) from exc
        if isinstance(data, dict):
            if data.get("error"):
                raise RunFolderError(f"{who}: task 0 failed before the run: {data['error']}")
            if isinstance(data.get("run_dir"), str):
                return Path(data["run_dir"])
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RunFolderError(
                f"{who}: task 0 published no run folder within {timeout:g} s "
                f"(is task 0 running expyrun with the same config? its output says; "
                f"{WAIT_VARIABLE}=SECONDS waits longer)",
                path=path,
            )
        if on_wait is not None and time.monotonic() - started >= WAITING_NOTICE_SECONDS:
            on_wait()
            on_wait = None
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, _MAX_POLL_SECONDS)
