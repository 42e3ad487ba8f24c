"""`expyrun logs`: print a run's outputs.log; with -f, follow it until the run ends."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

from expyrun.errors import ExitCode
from expyrun.run.folder import OUTPUTS_LOG
from expyrun.run.record import ENDED, Status
from expyrun.runs.reading import effective_status, exit_code_of, load, open_run

# How often `logs -f` looks at the files of the run it follows, and how often it asks Slurm
# about a pending job (squeue costs the controller more than reading a file).
POLL_SECONDS = 0.1
SLURM_POLL_SECONDS = 5.0


def show_log(run: str, follow: bool, task: int | None = None) -> int:
    """Print outputs.log of the run folder `run`; `follow`: until the run ends, then exit
    with the run's code (1 when it was lost or cancelled). Stops quietly when stdout closes.
    `task`: task N's log of a multi-task run (run/tasks.py)."""
    run_dir, found = open_run(run)
    log_path = run_dir / OUTPUTS_LOG if task is None else task_log(run_dir, task, found.tasks)
    out = sys.stdout.buffer
    offset = 0
    asked_slurm = -SLURM_POLL_SECONDS
    while True:
        copied = _copy_new_bytes(log_path, offset, out)
        if copied is None:
            return ExitCode.OK  # the reader is gone (`| head`)
        offset += copied
        if not follow:
            return ExitCode.OK
        current = load(run_dir)
        ask = time.monotonic() - asked_slurm >= SLURM_POLL_SECONDS
        if ask and current is not None and current.status == Status.PENDING:
            asked_slurm = time.monotonic()
        status = effective_status(current, ask_slurm=ask) if current else Status.LOST
        if status in ENDED:
            _copy_new_bytes(log_path, offset, out)  # what came with the end
            return exit_code_of(current, status)
        time.sleep(POLL_SECONDS)


def task_log(run_dir: Path, task: int, recorded: list[dict[str, Any]] | None = None) -> Path:
    """Task `task`'s log; UsageError when the run has no such task.

    The tasks are those with a file of their own, and those run.json names (`recorded`): a
    task stopped before it wrote its file is in run.json only.
    """
    from expyrun.errors import UsageError
    from expyrun.run.tasks import log_name, read_entries

    named = {entry.get("rank") for entry in recorded or ()}
    named.update(entry["rank"] for entry in read_entries(run_dir))
    ranks = sorted(rank for rank in named if isinstance(rank, int))
    if task not in ranks and not (task == 0 and not ranks):
        known = f"its tasks are {', '.join(map(str, ranks))}" if ranks else "it has one task: 0"
        raise UsageError(f"the run has no task {task} ({known})", hint=str(run_dir))
    return run_dir / log_name(task)


def _copy_new_bytes(path: Path, offset: int, out: BinaryIO) -> int | None:
    """Copy what `path` holds past `offset` to `out`; the byte count, None if `out` closed."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return 0
    if data:
        try:
            out.write(data)
            out.flush()
        except BrokenPipeError:
            return None
    return len(data)
