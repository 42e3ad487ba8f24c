"""The run record, run.json: what ran, where, how it ended. Written atomically.

Readers (`expyrun ls`, `status`, `logs -f`, a dashboard) may read it at any time, so it is
always replaced whole: written to a temporary file in the run folder, then renamed.
A record left `running` by a supervisor that was killed is *stale*: its `pid` is gone, or
now belongs to a process started at another time than `pid_started_at`.
"""

from __future__ import annotations

import enum
import errno
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from expyrun.errors import RunFolderError
from expyrun.run.record_check import record_problem

RECORD_FILE = "run.json"
# Room set aside in the run folder while it runs, for the records still to come: a disk that
# the entry fills must not cost the run its final record (run.json is a few KiB; requeued
# Slurm runs keep every attempt).
RESERVE_FILE = ".run.json.reserve"
RESERVE_BYTES = 256 * 1024
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
SCHEMA_VERSION = 1
# Start times read from /proc are exact to a clock tick; allow for rounding across readers.
START_TIME_TOLERANCE_SECONDS = 1.0


class RecordError(RunFolderError):
    """run.json cannot be written (the run folder is gone, the disk is full)."""


class Status(str, enum.Enum):
    """A run's status, as run.json records it (`ls`, `status` add `lost` for a dead supervisor).

    prepared -> (pending, for --slurm) -> running -> succeeded | failed | killed; a pending
    run whose job was cancelled is `cancelled`; a run whose supervisor is gone is `lost`.
    """

    PREPARED = "prepared"  # the snapshot is written; nothing ran yet
    PENDING = "pending"  # submitted to Slurm; the job has not started the run
    RUNNING = "running"
    SUCCEEDED = "succeeded"
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
ENDED = frozenset({Status.SUCCEEDED, Status.FAILED, Status.KILLED, Status.CANCELLED, Status.LOST})
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
    # A multi-task run (srun, --nproc): one entry per task, by rank (run/tasks.py).
    tasks: list[dict[str, Any]] | None = None
    extra: dict[str, Any] | None = None  # keys of a newer expyrun, kept as they are
    schema: int = SCHEMA_VERSION

    def replace(self, **changes: Any) -> RunRecord:
        """A copy with some fields changed."""
        return self._replace(**changes)

    def to_dict(self) -> dict[str, Any]:
        data = self._asdict()
        data["attempts"] = list(self.attempts)
        data.update(data.pop("extra") or {})
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        names = set(cls._fields) - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        known["attempts"] = tuple(known.get("attempts") or ())
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
)


def _attempt_entry(record: RunRecord, number: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"attempt": number}
    entry.update((name, getattr(record, name)) for name in ATTEMPT_FIELDS)
    slurm = record.slurm or {}
    if "job_id" in slurm or "restart_count" in slurm:
        entry["slurm_job_id"] = slurm.get("job_id")
        entry["restart_count"] = slurm.get("restart_count")
    if slurm.get("end_reason"):
        entry["slurm_end_reason"] = slurm["end_reason"]
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
    changes.update(killed_after_grace=False, status=Status.RUNNING.value, **fields)
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


def write_record(run_dir: Path, record: RunRecord) -> None:
    """Replace run.json atomically, even on a full disk.

    A run folder keeps a reserve file (`RESERVE_FILE`, RESERVE_BYTES) from its first record on:
    when the disk is full (ENOSPC, EDQUOT), the reserve is deleted and the write tried again, so
    a run whose entry filled the disk still ends with a true record. The reserve goes with the
    record that ends a run. A failed write leaves no temporary file behind.

    Raises RecordError when run.json cannot be written (the run folder was deleted or moved
    while the run ran; a disk full even without the reserve).
    """
    path = run_dir / RECORD_FILE
    temporary = run_dir / f".{RECORD_FILE}.{os.getpid()}.tmp"
    text = json.dumps(record.to_dict(), indent=2) + "\n"
    for last_try in (False, True):
        try:
            temporary.write_text(text, encoding="utf-8")
            os.replace(temporary, path)
            break
        except OSError as exc:
            _remove(temporary)
            if not run_dir.is_dir():
                raise RecordError(
                    "cannot write the record: the run folder is gone (deleted or moved while "
                    "the run ran)",
                    path=run_dir,
                ) from exc
            if last_try or exc.errno not in _DISK_FULL or not _remove(run_dir / RESERVE_FILE):
                raise RecordError(
                    f"cannot write the record: {exc.strerror or exc}", path=path
                ) from exc
    reserve = run_dir / RESERVE_FILE
    if record.status in ENDED:
        _remove(reserve)
    elif not reserve.exists():
        _make_reserve(reserve)


def _remove(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False
    except OSError:
        return False


def _make_reserve(reserve: Path) -> None:
    """Set aside room for the records still to come (best effort: a full disk is no error)."""
    try:
        fd = os.open(reserve, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError:
        return
    try:
        os.posix_fallocate(fd, 0, RESERVE_BYTES)
    except (OSError, AttributeError):
        try:
            os.write(fd, b"\0" * RESERVE_BYTES)
        except OSError:
            os.close(fd)
            _remove(reserve)
            return
    os.close(fd)


def read_record(run_dir: Path) -> RunRecord:
    """Read run.json (OSError when missing; ValueError naming what is wrong when not a record)."""
    data = json.loads((run_dir / RECORD_FILE).read_text(encoding="utf-8"))
    problem = record_problem(data)
    if problem is not None:
        raise ValueError(f"{run_dir / RECORD_FILE} is not a readable run record: {problem}")
    return RunRecord.from_dict(data)


def process_start_time(pid: int) -> float | None:
    """When process `pid` started, in seconds since the epoch; None if it does not exist.

    Read from /proc where there is one (no psutil import on the launch path), else psutil.
    """
    if os.path.isdir("/proc/self"):
        return _start_time_from_proc(pid)
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:  # psutil raises many kinds; unknown is the answer
        return None


def _start_time_from_proc(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        ticks = int(fields[19])  # field 22 of proc(5) stat: starttime, counted after `)`
        return _boot_time() + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


_BOOT_TIME: float | None = None


def _boot_time() -> float:
    global _BOOT_TIME
    if _BOOT_TIME is None:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if line.startswith(b"btime"):
                    _BOOT_TIME = float(line.split()[1])
                    break
            else:
                _BOOT_TIME = time.time() - time.monotonic()
    return _BOOT_TIME


def supervisor_alive(record: RunRecord) -> bool | None:
    """Whether the supervisor that wrote this record still runs (None: cannot tell here)."""
    return process_matches(record.pid, record.host, record.pid_started_at)


def process_matches(pid: int | None, host: str | None, started_at: float | None) -> bool | None:
    """Whether process `pid` on `host`, started at `started_at`, still runs (None: other host)."""
    if pid is None or host != os.uname().nodename:
        return None
    started = process_start_time(pid)
    if started is None:
        return False
    if started_at is None:
        return True
    return abs(started - started_at) <= START_TIME_TOLERANCE_SECONDS
