"""Slurm's commands (sbatch, scontrol, scancel, squeue) through `_command`, and job states.

Every call is an argument list, no shell, a timeout, and a one-line `SlurmError` (exit 69)
when the command is missing, does not answer, or fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from expyrun import _command
from expyrun.errors import SlurmError
from expyrun.run.record import Status

# How long a Slurm command may take. slurmctld answers in milliseconds; a busy one in seconds.
COMMAND_TIMEOUT_SECONDS = 30.0
# Slurm job states after which a job that has not started its run never will.
ENDED_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)


def call(argv: Sequence[str], timeout: float = COMMAND_TIMEOUT_SECONDS) -> str:
    """Run one Slurm command (no shell, stdin closed) and return its stdout.

    Raises SlurmError with one line: the command is missing, timed out, or failed (then what it
    said last on stderr, e.g. `Batch job submission failed: Invalid partition name specified`).
    """
    done = _command.run(
        argv, timeout=timeout, error=SlurmError, missing_hint="is Slurm installed on this machine?"
    )
    return done.stdout


def submit(script: Path, hold: bool) -> str:
    """`sbatch --parsable [--hold] SCRIPT` (options are in the script); return the job id."""
    argv = ["sbatch", "--parsable"]
    if hold:
        argv.append("--hold")
    out = call([*argv, str(script)])
    job_id = out.strip().splitlines()[0].split(";")[0].strip() if out.strip() else ""
    if not job_id.isdigit():
        raise SlurmError(f"sbatch printed no job id: {out.strip()!r}")
    return job_id


def release(job_id: str) -> None:
    """`scontrol release JOB`: let a held job start."""
    call(["scontrol", "release", job_id])


def cancel(job: str, signal_name: str | None = None, batch: bool = False) -> None:
    """`scancel [--signal=S] [--batch] JOB` (JOB: an id, or ARRAY_TASK for one array task)."""
    argv = ["scancel"]
    if signal_name is not None:
        argv.append(f"--signal={signal_name}")
    if batch:
        argv.append("--batch")
    call([*argv, job])


def job_states(jobs: Sequence[str], timeout: float = 10.0) -> dict[str, str] | None:
    """Slurm's state of each job (`PENDING`, `CANCELLED`, ...), one `squeue` for all.

    JOB is an id, or ARRAY_TASK for an array task. A job Slurm no longer knows (it forgets
    ended jobs after MinJobAge) is absent from the answer. None: Slurm could not be asked.
    """
    if not jobs:
        return {}
    argv = ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T"]
    try:
        out = call([*argv, "--jobs=" + ",".join(jobs)], timeout=timeout)
    except SlurmError as exc:
        if "Invalid job id" in str(exc):
            return {}  # squeue fails when it knows none of the jobs
        return None
    states = {}
    for line in out.splitlines():
        job, _, state = line.strip().partition("|")
        if job and state:
            states[job] = state
    return states


def job_handle(fields: Mapping[str, Any]) -> str | None:
    """What scancel and squeue take for a recorded job: `ID`, or `ARRAYID_TASK` for a task."""
    if fields.get("array_task_id") is not None and fields.get("array_job_id") is not None:
        return f"{fields['array_job_id']}_{fields['array_task_id']}"
    job = fields.get("job_id")
    return None if job is None else str(job)


def pending_status(state: str | None) -> Status:
    """The status of a `pending` record whose job Slurm says is in `state` (None: unknown)."""
    if state is None:
        return Status.LOST  # Slurm forgot the job (MinJobAge) or never had it: it did not run
    if state == "CANCELLED":
        return Status.CANCELLED
    return Status.LOST if state in ENDED_STATES else Status.PENDING
