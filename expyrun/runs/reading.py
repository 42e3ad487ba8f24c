"""Find run folders, read their records, and tell a run's effective status.

The effective status is the record's, except that a `running` record whose supervisor is gone
is `lost`, and a `pending` one is what Slurm says of its job (`cancelled`, `lost`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from expyrun.errors import ExitCode, RunFolderError
from expyrun.run.folder import RUN_FOLDER_PATTERN
from expyrun.run.record import (
    RECORD_FILE,
    RunRecord,
    Status,
    process_matches,
    read_record,
    supervisor_alive,
)
from expyrun.run.record_check import record_problem
from expyrun.slurm import commands as slurm_commands

# The status `ls` shows for a run folder whose run.json cannot be read as a record.
UNREADABLE = "unreadable"


def effective_status(record: RunRecord, ask_slurm: bool = True) -> Status:
    """The record's status; `lost` for a `running` record whose supervisor is gone; for a
    `pending` one, what Slurm says of its job (`cancelled`, `lost`) unless `ask_slurm` is
    False or Slurm cannot be asked."""
    if record.status == Status.RUNNING and supervisor_alive(record) is False:
        return Status.LOST
    if record.status == Status.PENDING and ask_slurm:
        handle = slurm_commands.job_handle(record.slurm or {})
        if handle is not None:
            states = slurm_commands.job_states([handle])
            if states is not None:
                return slurm_commands.pending_status(states.get(handle))
    return Status(record.status)


def status_of_json(data: dict[str, Any]) -> str:
    """`effective_status` on a record as read from JSON (ls reads thousands: no objects)."""
    status = str(data.get("status"))
    if status == Status.RUNNING:
        alive = process_matches(data.get("pid"), data.get("host"), data.get("pid_started_at"))
        if alive is False:
            return Status.LOST.value
    return status


def find_run_folders(root: str) -> Iterator[str]:
    """Run folders under `root` (folders `exp.N` holding run.json), not looking inside them.

    Symbolic links to folders are followed (a name folder may be a link to another disk),
    each real folder once, so a link cycle ends.
    """
    if os.path.isfile(os.path.join(root, RECORD_FILE)):
        yield root
        return
    pending = [root]
    seen: set[tuple[int, int]] = set()
    while pending:
        folder = pending.pop()
        try:
            info = os.stat(folder)
            entries = os.scandir(folder)
        except OSError:
            continue
        if (info.st_dev, info.st_ino) in seen:
            entries.close()
            continue
        seen.add((info.st_dev, info.st_ino))
        with entries:
            try:
                for entry in entries:
                    if entry.name.startswith((".", "__")) or not _is_folder(entry):
                        continue
                    is_run = RUN_FOLDER_PATTERN.match(entry.name) is not None
                    if is_run and os.path.isfile(os.path.join(entry.path, RECORD_FILE)):
                        yield entry.path
                        continue
                    pending.append(entry.path)
            except OSError:  # the listing failed midway (/proc/PID of an ended process)
                continue


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows a symbolic link
    except OSError:
        return False


def load(run_dir: Path) -> RunRecord | None:
    """The record of `run_dir`, or None when it is missing or not a record."""
    try:
        return read_record(run_dir)
    except (OSError, ValueError, TypeError):
        return None


def load_json(run_dir: str) -> dict[str, Any] | None:
    """run.json of `run_dir` as plain JSON, or None when it is missing or not a record."""
    data, problem = load_json_checked(run_dir)
    return None if problem is not None else data


def load_json_checked(run_dir: str) -> tuple[dict[str, Any], str | None]:
    """run.json of `run_dir` as plain JSON, and what makes it unreadable (None: nothing)."""
    try:
        with open(os.path.join(run_dir, RECORD_FILE), "rb") as f:
            data = json.loads(f.read())
    except OSError as exc:
        return {}, f"cannot read run.json: {exc.strerror or exc}"
    except ValueError as exc:
        return {}, f"run.json is not JSON: {exc}"
    problem = record_problem(data)
    return (data if problem is None else {}), problem


def open_run(path: str) -> tuple[Path, RunRecord]:
    """The run folder a command names, and its record; RunFolderError when it is not one."""
    run_dir = Path(path)
    try:
        is_run = (run_dir / RECORD_FILE).is_file()
        os.close(os.open(run_dir / RECORD_FILE, os.O_RDONLY)) if is_run else None
    except OSError as exc:  # e.g. another user's private run folder
        raise RunFolderError(f"cannot read run.json: {exc.strerror}", path=run_dir) from exc
    if not is_run:
        raise RunFolderError("not a run folder (no run.json)", path=run_dir)
    _, problem = load_json_checked(str(run_dir))
    found = load(run_dir)
    if found is None or problem is not None:
        raise RunFolderError(f"unreadable record: {problem}", path=run_dir / RECORD_FILE)
    return run_dir, found


def exit_code_of(found: RunRecord | None, status: str) -> int:
    """What `logs -f` and `status` exit with for an ended run: the run's own code (0 for
    `succeeded` and `stopped`), 1 if lost or cancelled."""
    if status in (Status.LOST, Status.CANCELLED) or found is None:
        return ExitCode.FAILURE
    return found.exit_code or 0
