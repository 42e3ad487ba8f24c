"""The closing line of a foreground run: how it ended, how long it took, where its folder is.

`expyrun: succeeded in 3m12s (exit 0): RUN_FOLDER`, `expyrun: failed in 41s (exit 1,
ValueError: loss is nan): RUN_FOLDER`: printed on stderr after the run's output, whose first
line (the run folder) has scrolled away by then (issue 13).
"""

from __future__ import annotations

import os
from pathlib import Path

from expyrun import console
from expyrun.run.supervisor import WorkerExit


def say_how_it_ended(
    outcome: WorkerExit, run_dir: Path, log_path: Path, task: str | None = None
) -> None:
    """Print the closing line (`task`: `task 2 of 4`, for a task of a multi-task run).

    It starts a line of its own when the run's output ended mid-line (a progress bar).
    """
    if not _log_ends_a_line(log_path):
        console.new_line()
    closing = _closing_line(outcome, run_dir)
    console.info(f"{task}: {closing}" if task else closing)


def _closing_line(outcome: WorkerExit, run_dir: Path) -> str:
    """`succeeded in 3m12s (exit 0): RUN_DIR`, `failed in 41s (exit 1, ValueError: ...): ...`.

    Printed after the run's output, whose start (the run folder line) has scrolled away by
    then.
    """
    details = f"exit {outcome.exit_code}"
    if outcome.error:
        details += f", {outcome.error}"
    text = f"{outcome.status} in {console.duration_text(outcome.duration_s)} ({details}): {run_dir}"
    return text


def _log_ends_a_line(log_path: Path) -> bool:
    """Whether outputs.log is empty or ends with a newline (what the terminal was shown last)."""
    try:
        with open(log_path, "rb") as log:
            size = log.seek(0, os.SEEK_END)
            if size == 0:
                return True
            log.seek(size - 1)
            return log.read(1) == b"\n"
    except OSError:
        return True
