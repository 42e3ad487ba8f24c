"""The tasks of one multi-task run: who each is, its environment, its log, its part of run.json.

A multi-task run is one run folder with several supervisors, each running one worker: the
tasks of one Slurm job step (`srun expyrun ...`), or the `--nproc N` workers of a workstation
launch. Task 0 allocates and snapshots the folder (`task_claim` tells the others where it
is); each task keeps its own output (`outputs.log` for task 0, `outputs.task{N}.log` for task
N) and its own record entry.

Several supervisors write one record. Each task writes its entry, alone, to its own file
(`.tasks/task.{N}.json`, atomically: the truth for that task, never written by another), then
takes a POSIX lock on `.run.json.lock` and rewrites run.json with the entries of every task
read from those files. The merge is a function of the files, so whichever task writes last
writes every entry: none is lost, whatever the order of the writes.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from expyrun.run import record
from expyrun.run.folder import OUTPUTS_LOG
from expyrun.run.record import RunRecord, Status
from expyrun.run.record_file import make_reserve, replace_from_reserve

# Each task's own entry, written by its supervisor only.
TASKS_FOLDER = ".tasks"
TASK_FILE = "task.{rank}.json"
# Taken (fcntl.lockf, a POSIX lock: NFS and Lustre honour these) while run.json is merged.
LOCK_FILE = ".run.json.lock"
# Room kept by each task while it runs, for its last entry and run.json on a full disk.
TASK_RESERVE = "task.{rank}.reserve"
TASK_RESERVE_BYTES = 64 * 1024
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# Task N's output, N > 0 (task 0's is outputs.log).
TASK_LOG = "outputs.task{rank}.log"
# The variables torch.distributed and friends read (torchrun sets the same).
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")
MASTER_ADDR_VARIABLE = "MASTER_ADDR"
MASTER_PORT_VARIABLE = "MASTER_PORT"
# The group of a `--nproc` run's tasks: this prefix and the launcher's process id (the tasks'
# parent, which `expyrun stop` signals to stop them all).
LOCAL_GROUP_PREFIX = "local-"
# What a task's entry keeps of its supervisor's record (the rest is the run's, task 0's).
ENTRY_FIELDS = (
    "host",
    "pid",
    "pid_started_at",
    "child_pid",
    "status",
    "exit_code",
    "signal",
    "killed_after_grace",
    "started_at",
    "ended_at",
    "duration_s",
    "peak_rss_bytes",
    "cpu_user_s",
    "cpu_system_s",
    "output_bytes",
    "output_lost_bytes",
    "output_lost_since",
)


class Task(NamedTuple):
    """One task of a multi-task run, and where the tasks meet (torchrun's variables)."""

    rank: int  # 0 .. world_size - 1; task 0 allocates the run folder
    world_size: int
    local_rank: int  # among the tasks on this host
    local_world_size: int
    master_addr: str  # the host of task 0
    master_port: int
    group: str  # what the tasks share: `slurm-JOB.STEP` (restart `.rN`), or `local-PID`

    def rank_values(self) -> dict[str, str]:
        """RANK_VARIABLES with this task's values."""
        values = (self.rank, self.local_rank, self.world_size, self.local_world_size)
        return {name: str(value) for name, value in zip(RANK_VARIABLES, values, strict=True)}

    def environment(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The variables of this task's worker: RANK_VARIABLES always this task's, MASTER_ADDR
        and MASTER_PORT unless `environ` sets them (the same in every task: an export wins).

        srun copies an exported RANK to every task: letting it win would repeat ranks, and the
        record (entry, log) names this task's. torchrun sets them over exported ones too, and
        Lightning's SLURMEnvironment reads SLURM_PROCID in srun. `rank_warning` says so.
        """
        meeting = {MASTER_ADDR_VARIABLE: self.master_addr, MASTER_PORT_VARIABLE: self.master_port}
        values = {name: str(value) for name, value in meeting.items() if not environ.get(name)}
        return {**self.rank_values(), **values}

    def rank_warning(self, environ: Mapping[str, str]) -> str | None:
        """What to warn of when `environ` sets rank variables to other values than this task's
        (they are replaced: `environment`); None when none differs."""
        exported = {name: environ.get(name) for name in RANK_VARIABLES}
        differ = {
            name: value
            for name, value in self.rank_values().items()
            if exported[name] and exported[name] != value
        }
        if not differ:
            return None
        source = "Slurm's" if self.group.startswith("slurm-") else "--nproc's"
        was = ", ".join(f"{name}={exported[name]}" for name in differ)
        now = ", ".join(f"{name}={value}" for name, value in differ.items())
        names = " ".join(differ)
        return (
            f"{self.describe()}: the environment sets {was}, but the worker gets {source} "
            f"{now} (an exported value is the same in every task: ranks would repeat); "
            f"unset {names} to silence this"
        )

    def describe(self) -> str:
        """`task 2 of 4` (for messages)."""
        return f"task {self.rank} of {self.world_size}"


def log_name(rank: int) -> str:
    """The file of task `rank`'s output in the run folder: outputs.log for task 0."""
    return OUTPUTS_LOG if rank == 0 else TASK_LOG.format(rank=rank)


def task_entry(task: Task, own: RunRecord) -> dict[str, Any]:
    """Task `task`'s entry in run.json's `tasks`, from the record its supervisor keeps."""
    entry: dict[str, Any] = {"rank": task.rank, "local_rank": task.local_rank, "group": task.group}
    entry.update((name, getattr(own, name)) for name in ENTRY_FIELDS)
    entry["log"] = log_name(task.rank)
    end_reason = (own.slurm or {}).get("end_reason")
    if end_reason:
        entry["slurm_end_reason"] = end_reason
    return entry


def write_task_record(run_dir: Path, task: Task, own: RunRecord) -> RunRecord:
    """Record task `task` (its supervisor's record `own`) and merge every task into run.json.

    Task 0's record is the run's (config, code, git, requirements); another task only adds its
    entry. Returns the record written. Raises RecordError when run.json cannot be written.

    Each task keeps a reserve (TASK_RESERVE) while it runs, as run.json has one: when the disk
    is full, its entry is written into it (`record_file.replace_from_reserve`: blocks another
    task's output cannot take), so a run whose output filled the disk still ends with every
    task's true entry.
    """
    reserve = run_dir / TASKS_FOLDER / TASK_RESERVE.format(rank=task.rank)
    try:
        merged = _write_task_record(run_dir, task, own)
    except record.RecordError as exc:
        full = isinstance(exc.__cause__, OSError) and exc.__cause__.errno in _DISK_FULL
        if not full or not reserve.exists():
            raise
        merged = _write_task_record(run_dir, task, own, reserve)
    if own.status in record.ENDED:
        reserve.unlink(missing_ok=True)
    elif not reserve.exists():
        make_reserve(reserve, TASK_RESERVE_BYTES)
    return merged


def _write_task_record(
    run_dir: Path, task: Task, own: RunRecord, reserve: Path | None = None
) -> RunRecord:
    """Write the task's entry (into its `reserve`, on a full disk), then merge run.json."""
    folder = run_dir / TASKS_FOLDER
    entry_path = folder / TASK_FILE.format(rank=task.rank)
    try:
        folder.mkdir(exist_ok=True)
        if reserve is None:
            _write_atomically(entry_path, task_entry(task, own))
        else:
            text = json.dumps(task_entry(task, own), indent=2) + "\n"
            if not replace_from_reserve(reserve, entry_path, text):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise record.RecordError(
            f"cannot write task {task.rank}'s record: {exc.strerror or exc}", path=folder
        ) from exc
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        base = own if task.rank == 0 else _read_or(run_dir, own)
        merged = merge(base, read_entries(run_dir), task.world_size)
        record.write_record(run_dir, merged)
        return merged
    finally:
        os.close(fd)  # releases the lock


def _read_or(run_dir: Path, fallback: RunRecord) -> RunRecord:
    try:
        return record.read_record(run_dir)
    except (OSError, ValueError):
        return fallback


def read_entries(run_dir: Path) -> list[dict[str, Any]]:
    """Every task's entry found in the run folder, by rank."""
    entries = []
    try:
        names = os.listdir(run_dir / TASKS_FOLDER)
    except OSError:
        return []
    for name in names:
        if not (name.startswith("task.") and name.endswith(".json")):
            continue
        try:
            data = json.loads((run_dir / TASKS_FOLDER / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("rank"), int):
            entries.append(data)
    return sorted(entries, key=lambda entry: entry["rank"])


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)  # a full disk leaves no empty temporary behind
        raise


def merge(base: RunRecord, entries: list[dict[str, Any]], world_size: int) -> RunRecord:
    """The run's record: `base` with every task's entry, and the status of the whole run.

    The run runs while a task runs or has not reported yet; then it failed if a task failed
    (or was lost: its supervisor died on this host without a record), else it was killed if
    a task was killed, else it was stopped if a task was (it exited 0 after a stop request),
    else it succeeded. Its exit code is the first failed task's (by rank),
    else the first killed task's. While it runs, `pid` names a supervisor that still runs,
    so that a reader takes the run for lost only when every supervisor is gone.
    """
    entries = [_checked(entry) for entry in entries]
    changes: dict[str, Any] = {"tasks": entries}
    running = [e for e in entries if e.get("status") not in record.ENDED]
    if running or len(entries) < world_size:
        changes["status"] = Status.RUNNING.value
        # Task 0 may have ended: its end is not the run's.
        changes.update(ended_at=None, duration_s=None, exit_code=None, signal=None)
        if running:
            changes.update(_supervisor_fields(running[0]))
    else:
        first_task = next((e for e in entries if e.get("rank") == 0 and e.get("pid")), None)
        if first_task is not None:
            changes.update(_supervisor_fields(first_task))
        for status in (Status.FAILED, Status.LOST, Status.KILLED):
            first = next((e for e in entries if e.get("status") == status), None)
            if first is not None:
                changes["status"] = Status.FAILED.value if status != Status.KILLED else status.value
                changes["exit_code"] = first.get("exit_code")
                changes["signal"] = first.get("signal")
                if first.get("exit_code") is None:
                    changes["exit_code"] = 1  # lost: as `status` says of a lost run
                break
        else:
            # Every task exited 0: the run was stopped if one of them was (issue 14).
            stopped = any(e.get("status") == Status.STOPPED for e in entries)
            ended = Status.STOPPED if stopped else Status.SUCCEEDED
            changes.update(status=ended.value, exit_code=0)
        changes["ended_at"] = max(str(e.get("ended_at") or "") for e in entries) or None
        changes["duration_s"] = _duration(entries, base.duration_s)
    merged = base.replace(**changes)
    if merged.attempts:
        last = dict(merged.attempts[-1])
        last.update(status=merged.status, exit_code=merged.exit_code, signal=merged.signal)
        merged = merged.replace(attempts=(*merged.attempts[:-1], last))
    return merged


def _duration(entries: list[dict[str, Any]], fallback: float | None) -> float | None:
    """Seconds from the first task's start to the last task's end (ISO times in the entries)."""
    try:
        started = min(datetime.fromisoformat(e["started_at"]) for e in entries)
        ended = max(datetime.fromisoformat(e["ended_at"]) for e in entries)
    except (KeyError, TypeError, ValueError):
        return fallback  # a lost task: no times
    return round((ended - started).total_seconds(), 3)


def _supervisor_fields(entry: dict[str, Any]) -> dict[str, Any]:
    return {name: entry.get(name) for name in ("host", "pid", "pid_started_at")}


def _checked(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry that says `running` though its supervisor is gone from this host is `lost`."""
    if entry.get("status") != Status.RUNNING.value:
        return entry
    alive = record.process_matches(entry.get("pid"), entry.get("host"), entry.get("pid_started_at"))
    if alive is False:
        return {**entry, "status": Status.LOST.value}
    return entry


def already_ran(run_dir: Path, rank: int) -> bool:
    """Whether task `rank` of this run folder has already started (a folder runs once)."""
    return (run_dir / TASKS_FOLDER / TASK_FILE.format(rank=rank)).exists()


def finish_record(run_dir: Path, world_size: int, stopped_by: int | None = None) -> None:
    """Once every task's supervisor has ended: record a task that wrote no entry as `lost`.

    Called by what started the tasks (`--nproc`); best effort (a record that cannot be read
    or written is left as it is). `stopped_by`: the signal the tasks were sent to stop them
    (Ctrl-C, SIGTERM): a task that wrote no entry was stopped by it before it recorded.
    """
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        try:
            current = record.read_record(run_dir)
        except (OSError, ValueError):
            return
        entries = read_entries(run_dir)
        found = {entry["rank"] for entry in entries}
        ended: dict[str, Any] = {"status": Status.LOST.value}
        if stopped_by is not None:
            name = signal.Signals(stopped_by).name
            ended = {"status": Status.KILLED.value, "exit_code": 128 + stopped_by, "signal": name}
        missing = [
            {"rank": rank, **ended, "log": log_name(rank)}
            for rank in range(world_size)
            if rank not in found
        ]
        if not missing and current.status in record.ENDED:
            return
        entries = sorted([*entries, *missing], key=lambda entry: entry["rank"])
        try:
            record.write_record(run_dir, merge(current, entries, world_size))
        except record.RecordError:
            return
    finally:
        os.close(fd)
