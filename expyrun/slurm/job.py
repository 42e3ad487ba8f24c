"""Inside a Slurm job: its environment as a typed record, requeue identity, KillWait, end reason.

The record's `slurm` fields are `SlurmJob.fields()` (plus what was known at submit time).
A requeued job (`SLURM_RESTART_COUNT` > 0) is a later start of the same job: it resumes the
run folder its earlier start made, as a new attempt.
"""

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from expyrun.errors import SlurmError
from expyrun.run.folder import RUN_FOLDER_PATTERN
from expyrun.run.record import RECORD_FILE

JOB_ID_VARIABLE = "SLURM_JOB_ID"
RESTART_COUNT_VARIABLE = "SLURM_RESTART_COUNT"
ARRAY_JOB_ID_VARIABLE = "SLURM_ARRAY_JOB_ID"
ARRAY_TASK_ID_VARIABLE = "SLURM_ARRAY_TASK_ID"
# Record field -> the variable Slurm sets in a job's environment (sbatch(1), OUTPUT ENVIRONMENT).
JOB_VARIABLES = {
    "job_id": JOB_ID_VARIABLE,
    "job_name": "SLURM_JOB_NAME",
    "array_job_id": ARRAY_JOB_ID_VARIABLE,
    "array_task_id": ARRAY_TASK_ID_VARIABLE,
    "node_list": "SLURM_JOB_NODELIST",
    "partition": "SLURM_JOB_PARTITION",
    "restart_count": RESTART_COUNT_VARIABLE,
}
# Slurm's own default KillWait (slurm.conf(5)), assumed when `scontrol show config` fails.
DEFAULT_KILL_WAIT_SECONDS = 30.0
# Inside a job, the grace period ends this long before Slurm's SIGKILL: enough to kill the
# run's processes, read the pipes to their end and write run.json (well under a second), and
# to ask Slurm why the job is ending (bounded by REASON_TIMEOUT_SECONDS).
KILL_WAIT_MARGIN_SECONDS = 2.0
MIN_GRACE_SECONDS = 0.5
REASON_TIMEOUT_SECONDS = 1.0
# The record's `end_reason` for an attempt ended by a requeue (Slurm's Reason says nothing).
REQUEUED_REASON = "Requeued"


class SlurmJob(NamedTuple):
    """The Slurm job this process runs in, from the variables Slurm sets (sbatch(1)).

    A NamedTuple, not a frozen dataclass: `dataclasses` imports `inspect` (~5 ms), and this
    module is on the launch path.
    """

    job_id: str
    job_name: str | None = None
    array_job_id: str | None = None
    array_task_id: str | None = None
    node_list: str | None = None
    partition: str | None = None
    restart_count: int = 0  # how many times Slurm requeued the job (0 on its first start)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "SlurmJob | None":
        """The job of an environment; None outside a job (no SLURM_JOB_ID)."""
        job_id = environ.get(JOB_ID_VARIABLE)
        if not job_id:
            return None
        return cls(
            job_id=job_id,
            job_name=environ.get(JOB_VARIABLES["job_name"]),
            array_job_id=environ.get(ARRAY_JOB_ID_VARIABLE),
            array_task_id=environ.get(ARRAY_TASK_ID_VARIABLE),
            node_list=environ.get(JOB_VARIABLES["node_list"]),
            partition=environ.get(JOB_VARIABLES["partition"]),
            restart_count=restart_count(environ),
        )

    def fields(self) -> dict[str, Any]:
        """The record's `slurm` fields for this job (JSON-ready, in JOB_VARIABLES order)."""
        return {key: getattr(self, key) for key in JOB_VARIABLES}

    def describe(self) -> str:
        """`Slurm job 42, restart 1` (for messages and outputs.log)."""
        return f"Slurm job {self.job_id}, restart {self.restart_count}"


def restart_count(environ: Mapping[str, str]) -> int:
    """How many times Slurm requeued this job (0 outside a job or on its first start)."""
    try:
        return int(environ.get(RESTART_COUNT_VARIABLE) or 0)
    except ValueError:
        return 0


def recorded_restart_count(fields: Mapping[str, Any] | None) -> int:
    """The restart count a record's `slurm` fields hold (0 when absent)."""
    try:
        return int((fields or {}).get("restart_count") or 0)
    except (TypeError, ValueError):
        return 0


def same_job(recorded: Mapping[str, Any] | None, current: Mapping[str, Any] | None) -> bool:
    """Whether two `slurm` field sets name the same job (for an array: the same task)."""
    if not recorded or not current:
        return False
    if recorded.get("array_task_id") is not None or current.get("array_task_id") is not None:
        return _text(recorded.get("array_job_id")) == _text(current.get("array_job_id")) and (
            _text(recorded.get("array_task_id")) == _text(current.get("array_task_id"))
        )
    return _text(recorded.get("job_id")) == _text(current.get("job_id"))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def is_requeue_of(recorded: Mapping[str, Any] | None, environ: Mapping[str, str]) -> bool:
    """Whether this process is a later start of the job that wrote the record (a requeue)."""
    current = SlurmJob.from_environ(environ)
    return (
        current is not None
        and same_job(recorded, current.fields())
        and current.restart_count > recorded_restart_count(recorded)
    )


def fill_job_id(output: str, job: SlurmJob) -> str:
    """The job's output file: `%j` of the path recorded at submit is this job's id (an array
    task's own id is only known once it runs)."""
    return output.replace("%j", job.job_id)


def grace_within_kill_wait(kill_wait: float, requested: float) -> float:
    """The grace period that ends `KILL_WAIT_MARGIN_SECONDS` before Slurm's SIGKILL."""
    return max(MIN_GRACE_SECONDS, min(requested, kill_wait - KILL_WAIT_MARGIN_SECONDS))


_kill_wait: float | None = None


def kill_wait_seconds() -> tuple[float, str | None]:
    """Slurm's KillWait (SIGTERM -> SIGKILL) from `scontrol show config`, read once.

    Returns the value and, when it could not be read, why (the default is then assumed).
    """
    from expyrun.slurm import commands  # here: a launch outside Slurm never asks scontrol

    global _kill_wait
    if _kill_wait is not None:
        return _kill_wait, None
    try:
        text = commands.call(["scontrol", "show", "config"], timeout=5)
    except SlurmError as exc:
        return DEFAULT_KILL_WAIT_SECONDS, str(exc)
    value = parse_kill_wait(text)
    if value is None:
        return DEFAULT_KILL_WAIT_SECONDS, "no KillWait in `scontrol show config`"
    _kill_wait = value
    return value, None


def parse_kill_wait(config_text: str) -> float | None:
    """KillWait in seconds from `scontrol show config` output (`KillWait = 30 sec`)."""
    match = re.search(r"^KillWait\s*=\s*(\d+)", config_text, re.MULTILINE)
    return float(match.group(1)) if match else None


def end_reason(job_id: str, restart_count: int = 0) -> str | None:
    """Why Slurm is ending a job, asked while it ends; None when it does not say."""
    from expyrun.slurm import commands

    try:
        text = commands.call(
            ["scontrol", "show", "job", "-o", job_id], timeout=REASON_TIMEOUT_SECONDS
        )
    except SlurmError:
        return None
    return parse_end_reason(text, restart_count)


def parse_end_reason(job_text: str, restart_count: int) -> str | None:
    """Why a job ends, from `scontrol show job -o` while it ends; None when it does not say.

    Its Reason (`TimeLimit`, ...), else `Requeued` when its restart count is already above
    this start's (`restart_count`): a requeue (`scontrol requeue`, preemption) says nothing in
    Reason, but Slurm counts the restart before it signals the job. `scancel` leaves no trace.
    """
    match = re.search(r"(?:^|\s)Reason=(\S+)", job_text)
    if match is not None and match.group(1) != "None":
        return match.group(1)
    restarts = re.search(r"(?:^|\s)Restarts=(\d+)", job_text)
    if restarts is not None and int(restarts.group(1)) > restart_count:
        return REQUEUED_REASON
    return None


def find_requeued_run(parent: Path, environ: Mapping[str, str]) -> Path | None:
    """The run folder under `parent` that an earlier start of this requeued job ran.

    A folder matches when its record names this job (for an array, this task) with a lower
    restart count. If the batch script ran expyrun several times with the same name, the
    k-th launch of the new start resumes the k-th folder: the oldest not yet resumed.
    """
    current = SlurmJob.from_environ(environ)
    if current is None or current.restart_count == 0:
        return None
    try:
        names = os.listdir(parent)
    except OSError:
        return None
    found: list[tuple[int, Path]] = []
    for name in names:
        match = RUN_FOLDER_PATTERN.match(name)
        if match is None:
            continue
        try:
            # Only the `slurm` fields: a record of another expyrun version still counts.
            data = json.loads((parent / name / RECORD_FILE).read_bytes())
        except (OSError, ValueError):
            continue
        fields = data.get("slurm") if isinstance(data, dict) else None
        if not isinstance(fields, dict) or not same_job(fields, current.fields()):
            continue
        if recorded_restart_count(fields) < current.restart_count:
            found.append((int(match.group(1)), parent / name))
    return min(found)[1] if found else None
