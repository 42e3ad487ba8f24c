"""The run record, run.json: what ran, where, how it ended. Written atomically.

Readers (`expyrun ls`, `status`, `logs -f`, a dashboard) may read it at any time, so it is
always replaced whole, under a lock that keeps edits made meanwhile (`record_file`).
A record left `running` by a supervisor that was killed is *stale*: its `pid` is gone, or
now belongs to a process started at another time than `pid_started_at`.
"""

import enum
import json
import signal
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from expyrun.run.process_identity import process_matches as process_matches
from expyrun.run.process_identity import process_start_time as process_start_time
from expyrun.run.record_file import RECORD_FILE as RECORD_FILE  # re-exported: the readers'
from expyrun.run.record_file import RESERVE_BYTES as RESERVE_BYTES
from expyrun.run.record_file import RESERVE_FILE as RESERVE_FILE
from expyrun.run.record_file import RecordError as RecordError
from expyrun.run.record_file import update_json, write_json

SCHEMA_VERSION = 1


class Status(str, enum.Enum):
    """A run's status, as run.json records it (`ls`, `status` add `lost` for a dead supervisor).

    prepared -> (pending, for --slurm) -> running -> succeeded | stopped | failed | killed; a
    pending run whose job was cancelled is `cancelled`; a run whose supervisor is gone is `lost`.
    `stopped` is a run that exited 0 because it was asked to stop (`STOPPED`); a stop request
    followed by a non-zero exit stays `failed` (or `killed`, for a signal), its record's
    `stop_request` saying what asked.
    """

    PREPARED = "prepared"  # the snapshot is written; nothing ran yet
    PENDING = "pending"  # submitted to Slurm; the job has not started the run
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    # Exited 0 after a stop request: `expyrun stop`, SIGINT/SIGTERM (also Slurm's, at a time
    # limit or preemption), or SIGHUP answered within the grace period (run/supervisor.py).
    STOPPED = "stopped"
    FAILED = "failed"
    KILLED = "killed"  # ended by a signal
    CANCELLED = "cancelled"  # a --slurm job cancelled before it started
    LOST = "lost"  # never written: the supervisor died, or Slurm forgot the job

    def __str__(self) -> str:
        return self.value

    # Equal to its text, so hashed as its text: `"lost" in ENDED` holds for a status read
    # from JSON (Enum hashes a member by its name, "LOST").
    __hash__ = str.__hash__


# Statuses of a run that has ended, and of a run folder that has not run yet.
ENDED = frozenset(
    {
        Status.SUCCEEDED,
        Status.STOPPED,
        Status.FAILED,
        Status.KILLED,
        Status.CANCELLED,
        Status.LOST,
    }
)
NOT_STARTED = frozenset({Status.PREPARED, Status.PENDING})


def now_iso(seconds: float | None = None) -> str:
    """The time `seconds` (a time.time(); default: now), ISO 8601 with the local UTC offset."""
    moment = datetime.fromtimestamp(time.time() if seconds is None else seconds, timezone.utc)
    return moment.astimezone().isoformat(timespec="milliseconds")


class RunRecord(NamedTuple):
    """The content of run.json. Unknown keys read from a newer expyrun are kept in `extra`."""

    status: str  # a `Status` value (read back from JSON as plain text)
    run_dir: str
    name: str
    entry: str
    debug: bool
    command: list[str]
    cwd: str
    host: str
    user: str
    python: dict[str, str]
    expyrun_version: str
    pid: int | None = None
    pid_started_at: float | None = None
    child_pid: int | None = None
    started_at: str | None = None
    ended_at: str | None = None
    duration_s: float | None = None
    exit_code: int | None = None
    signal: str | None = None
    killed_after_grace: bool = False
    peak_rss_bytes: int | None = None
    cpu_user_s: float | None = None
    cpu_system_s: float | None = None
    output_bytes: int | None = None
    output_lost_bytes: int | None = None  # output outputs.log could not take (a full disk)
    output_lost_since: str | None = None  # when that began
    tracking: str | None = None  # how the run's processes were tracked: cgroup, subreaper, marker
    leftover_processes: int | None = None  # still running at the worker's exit, then stopped
    grace_s: float | None = None
    merged_output: bool = False  # stdout and stderr shared one pipe (--merge-output)
    requirements: str | None = None
    # run/code_copy.py CodeCopy.to_record(): copied (the names rerun/reproduce copy again),
    # bytes, files, largest, links, outside_links, broken_links, excluded, excluded_count.
    code_copy: dict[str, Any] | None = None
    git: dict[str, Any] | None = None
    slurm: dict[str, Any] | None = None
    rerun_of: str | None = None  # `expyrun rerun`: the run folder this run comes from
    reproduces: str | None = None  # `expyrun reproduce`: the run folder it reproduces
    environment: str | None = None  # `expyrun reproduce`: the virtual environment it ran in
    attempts: tuple[dict[str, Any], ...] = ()
    tags: tuple[str, ...] = ()  # `--tag`, `expyrun tag` (runs/tags.py)
    note: str | None = None  # `--note`, `expyrun note`
    # What asked this attempt to stop: {signal, by ("expyrun stop" | "signal" | "slurm"), at}.
    stop_request: dict[str, Any] | None = None
    # A multi-task run (srun, --nproc): one entry per task, by rank (run/tasks.py).
    tasks: list[dict[str, Any]] | None = None
    # How the entry ended: its last error line (`ValueError: loss is nan`, `SystemExit: 3`), or
    # for a signal death the stop asked for (`SIGTERM`) or what killed it (`killed by SIGKILL`).
    error: str | None = None
    # What the entry returned: a mapping of JSON values as is; anything else as its repr, with
    # `result_repr` true. None when it returned None (or did not return).
    result: Any = None
    result_repr: bool = False
    extra: dict[str, Any] | None = None  # keys of a newer expyrun, kept as they are
    schema: int = SCHEMA_VERSION

    def replace(self, **changes: Any) -> "RunRecord":
        """A copy with some fields changed."""
        return self._replace(**changes)

    def to_dict(self) -> dict[str, Any]:
        data = self._asdict()
        data["attempts"] = list(self.attempts)
        data["tags"] = list(self.tags)
        data.update(data.pop("extra") or {})
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunRecord":
        names = set(cls._fields) - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        known["attempts"] = tuple(known.get("attempts") or ())
        known["tags"] = tuple(known.get("tags") or ())
        extra = {k: v for k, v in data.items() if k not in names}
        return cls(**known, extra=extra or None)


# What each entry of `attempts` keeps of the record's top level at the end of its attempt.
ATTEMPT_FIELDS = (
    "status",
    "started_at",
    "ended_at",
    "duration_s",
    "exit_code",
    "signal",
    "killed_after_grace",
    "host",
)
# The top-level fields that describe one attempt: cleared when a new attempt starts.
_PER_ATTEMPT_FIELDS = (
    "pid",
    "pid_started_at",
    "child_pid",
    "started_at",
    "ended_at",
    "duration_s",
    "exit_code",
    "signal",
    "peak_rss_bytes",
    "cpu_user_s",
    "cpu_system_s",
    "output_bytes",
    "tracking",
    "leftover_processes",
    "output_lost_bytes",
    "output_lost_since",
    "stop_request",
    "error",
    "result",
)
# Who asked a run to stop, as `stop_request.by` says: `expyrun stop` (it records the request
# before it signals), Slurm (a time limit, a preemption, a requeue: the job's end reason is
# known), or another signal (a Ctrl-C, a hangup, `kill`, `scancel` by hand).
STOP_BY_COMMAND = "expyrun stop"
STOP_BY_SLURM = "slurm"
STOP_BY_SIGNAL = "signal"


def _attempt_entry(record: RunRecord, number: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"attempt": number}
    entry.update((name, getattr(record, name)) for name in ATTEMPT_FIELDS)
    slurm = record.slurm or {}
    if "job_id" in slurm or "restart_count" in slurm:
        entry["slurm_job_id"] = slurm.get("job_id")
        entry["restart_count"] = slurm.get("restart_count")
    if record.error:
        entry["error"] = record.error
    if slurm.get("end_reason"):
        entry["slurm_end_reason"] = slurm["end_reason"]
    if record.stop_request:
        entry["stop_request"] = record.stop_request
    return entry


def earlier_attempts(record: RunRecord) -> list[dict[str, Any]]:
    """The attempts a run folder already made, closed, before it runs again.

    Empty when its record says it never started. The record's top level describes the last
    attempt: its entry is taken from there, `lost` if its supervisor died while it ran.
    """
    if record.status in NOT_STARTED:
        return []
    attempts = [dict(entry) for entry in record.attempts] or [{}]
    last = _attempt_entry(record, len(attempts))
    if last["status"] == Status.RUNNING:
        last["status"] = Status.LOST.value
    attempts[-1] = last
    return attempts


def new_attempt(record: RunRecord, earlier: list[dict[str, Any]], **fields: Any) -> RunRecord:
    """The `running` record of a new attempt after `earlier` ones (fields: host, pid, ...)."""
    changes: dict[str, Any] = dict.fromkeys(_PER_ATTEMPT_FIELDS)
    changes.update(
        killed_after_grace=False, result_repr=False, status=Status.RUNNING.value, **fields
    )
    current = record.replace(**changes)
    return current.replace(
        attempts=(*earlier, _attempt_entry(current, len(earlier) + 1)),
    )


def end_attempt(record: RunRecord, **fields: Any) -> RunRecord:
    """The record at the end of the current attempt (its last `attempts` entry updated)."""
    ended = record.replace(**fields)
    attempts = list(ended.attempts) or [{}]
    attempts[-1] = _attempt_entry(ended, len(attempts))
    return ended.replace(attempts=tuple(attempts))


def stopped_before_start(
    record: RunRecord, earlier: list[dict[str, Any]], signum: int, **fields: Any
) -> RunRecord:
    """The final record of an attempt that signal `signum` stopped before its entry point
    started: `killed`, exit 128 + N, error `SIGTERM before the entry point started`.

    `earlier`: the attempts before it (`earlier_attempts`); `fields`: the attempt's own (host,
    pid, slurm). Its folder must not keep saying `prepared` for a run that will never run.
    """
    name = signal.Signals(signum).name
    return end_attempt(
        new_attempt(record, earlier, **fields),
        status=Status.KILLED.value,
        ended_at=now_iso(),
        exit_code=128 + signum,  # the shell's convention (errors.signal_exit_code)
        signal=name,
        error=f"{name} before the entry point started",
    )


def write_record(run_dir: Path, record: RunRecord) -> None:
    """Replace run.json with `record` atomically, even on a full disk, keeping the tags and
    note edited on disk meanwhile and a stop request recorded for this attempt (see
    `record_file.write_json`). Raises RecordError when run.json cannot be written.

    A `prepared` record makes the reserve for a full disk too: the worker runs the entry as
    soon as it has its payload, before the supervisor writes `running`, and may fill the disk
    meanwhile (`running` could then not be written, and the record stayed `prepared`).
    """
    write_json(run_dir, record.to_dict(), record.status in ENDED)


def update_record(run_dir: Path, change: Callable[[RunRecord], RunRecord]) -> RunRecord:
    """Read run.json, apply `change`, and replace it, all under the record's lock.

    For edits made while a supervisor may write the record too (tags, notes, a stop request):
    neither write loses the other's fields. Returns the record written.

    Raises:
        RecordError: the lock cannot be had, or run.json cannot be read, is no record, or
            cannot be written.
    """

    from expyrun.run.record_check import record_problem  # a launch writes, it need not check

    def apply(data: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        problem = record_problem(data)
        if problem is not None:
            raise ValueError(f"not a readable run record: {problem}")
        changed = change(RunRecord.from_dict(data))
        return changed.to_dict(), changed.status in ENDED

    try:
        return RunRecord.from_dict(update_json(run_dir, apply))
    except (OSError, ValueError, TypeError) as exc:
        raise RecordError(f"cannot edit the record: {exc}", path=run_dir / RECORD_FILE) from exc


def read_record(run_dir: Path) -> RunRecord:
    """Read run.json (OSError when missing; ValueError naming what is wrong when not a record)."""
    from expyrun.run.record_check import record_problem

    data = json.loads((run_dir / RECORD_FILE).read_text(encoding="utf-8"))
    problem = record_problem(data)
    if problem is not None:
        raise ValueError(f"{run_dir / RECORD_FILE} is not a readable run record: {problem}")
    return RunRecord.from_dict(data)


def supervisor_alive(record: RunRecord) -> bool | None:
    """Whether the supervisor that wrote this record still runs (None: cannot tell here)."""
    return process_matches(record.pid, record.host, record.pid_started_at)
