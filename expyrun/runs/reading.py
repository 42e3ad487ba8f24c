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

    Symbolic links below `root` are not followed (as `find` without -L, `rm -r`, git): a link
    to another project's outputs, to `/` or to an ancestor (`a -> ..`) adds nothing, so `ls`
    never lists and `clean` never removes a run that lies elsewhere. One kind of link is
    expyrun's own: a name folder linked to another disk (`outputs/big -> /scratch/big`),
    whose runs were launched through it: its run folders are listed when their record says
    they were made at that very path (see `_made_through`). `root` itself may be a link (as
    `ls link/`).
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
        if (info.st_dev, info.st_ino) in seen:  # a bind mount of an ancestor: the walk ends
            entries.close()
            continue
        seen.add((info.st_dev, info.st_ino))
        with entries:
            try:
                for entry in entries:
                    if entry.name.startswith((".", "__")):
                        continue
                    if _is_link(entry):
                        yield from _linked_name_folder_runs(entry)
                        continue
                    if not _is_folder(entry):
                        continue
                    is_run = RUN_FOLDER_PATTERN.match(entry.name) is not None
                    if is_run and os.path.isfile(os.path.join(entry.path, RECORD_FILE)):
                        yield entry.path
                        continue
                    pending.append(entry.path)
            except OSError:  # the listing failed midway (/proc/PID of an ended process)
                continue


def _is_link(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_symlink()
    except OSError:  # an lstat on a file system without d_type failed: not walked either way
        return False


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _linked_name_folder_runs(link: os.DirEntry[str]) -> list[str]:
    """The run folders directly inside the linked folder `link` that were made through it.

    Costs one listing of the link's target and one record read per run folder in it, only
    for links: a link to `/` or to another output dir holds no `exp.N` and is dropped after
    one listing, never walked.
    """
    if RUN_FOLDER_PATTERN.match(link.name) is not None:
        return []  # a link to a run folder is a link, not a run (`rm` removes the link only)
    try:
        names = sorted(os.listdir(link.path))
    except OSError:  # a broken link, a link to a file, a folder we may not read
        return []
    found = []
    for name in names:
        if RUN_FOLDER_PATTERN.match(name) is None:
            continue
        run_dir = os.path.join(link.path, name)
        if os.path.isfile(os.path.join(run_dir, RECORD_FILE)) and _made_through(run_dir):
            found.append(run_dir)
    return found


def _made_through(run_dir: str) -> bool:
    """Whether the record of `run_dir` (`A/LINK/exp.N`) says the run was made at
    `A/LINK/exp.N`: its `run_dir` ends with `LINK/exp.N` below the same real folder `A`.

    A run of another project (or of this one, reached by a second path) recorded its own
    path, which fails this test, so a link to it adds nothing to `ls` or `clean`.
    """
    try:
        with open(os.path.join(run_dir, RECORD_FILE), "rb") as f:
            data = json.loads(f.read())
    except (OSError, ValueError):
        return False
    recorded = data.get("run_dir") if isinstance(data, dict) else None
    if not isinstance(recorded, str):
        return False  # nothing tells where it was made (its other fields need not be valid)
    name_folder, run_name = os.path.split(run_dir)
    recorded_name_folder, recorded_run_name = os.path.split(recorded)
    if recorded_run_name != run_name:
        return False
    if os.path.basename(recorded_name_folder) != os.path.basename(name_folder):
        return False
    try:
        return os.path.samefile(os.path.dirname(recorded_name_folder), os.path.dirname(name_folder))
    except OSError:  # the recorded path no longer exists (a moved project)
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
