"""The records a run's end writes: through a warning when they cannot be written, and the
record of a run stopped before its entry point started (its folder must not say `prepared`).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from expyrun import console
from expyrun.errors import Interrupted
from expyrun.run import record
from expyrun.run.record import RunRecord
from expyrun.slurm import job as slurm_job
from expyrun.slurm.job import SlurmJob

if TYPE_CHECKING:  # run/tasks.py is imported by a multi-task run only
    from expyrun.run.tasks import Task


def write_or_warn(write: Callable[[RunRecord], None], final: RunRecord) -> None:
    """Write a run's final record; a record that cannot be written is a warning (the run
    itself ended as its exit code says)."""
    try:
        write(final)
    except record.RecordError as exc:
        console.warning(str(exc))


def write_run_record(run_dir: Path, task: Task | None, current: RunRecord) -> None:
    """Write the record of the run, or of its task `task`."""
    if task is None:
        record.write_record(run_dir, current)
    else:
        from expyrun.run import tasks

        tasks.write_task_record(run_dir, task, current)


def record_stopped_before_start(
    run_dir: Path, found: RunRecord, task: Task | None, exc: KeyboardInterrupt | Interrupted
) -> None:
    """Record the run (or its task `task`) `killed` by the stop signal `exc` before its entry
    started; `found` is the record the folder had when it was to run (`prepared`, `pending`).
    """
    signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
    earlier = [] if task else record.earlier_attempts(found)
    fields = slurm_fields(found.slurm, SlurmJob.from_environ(os.environ))
    final = record.stopped_before_start(
        found, earlier, signum, host=os.uname().nodename, pid=os.getpid(), slurm=fields
    )
    write_or_warn(lambda current: write_run_record(run_dir, task, current), final)


def slurm_fields(recorded: dict[str, Any] | None, job: SlurmJob | None) -> dict[str, Any] | None:
    """The record's `slurm` fields for this attempt: the job's, over those taken at submit."""
    if job is None:
        return recorded
    kept = {k: v for k, v in (recorded or {}).items() if k != "end_reason"}
    if isinstance(kept.get("output"), str):
        kept["output"] = slurm_job.fill_job_id(kept["output"], job)
    return {**kept, **job.fields()}
