"""`expyrun ls`: the runs under output folders, newest first, as a table or JSON."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from expyrun import console
from expyrun.errors import ExitCode, RunFolderError
from expyrun.run.record import Status
from expyrun.runs.reading import (
    UNREADABLE,
    find_run_folders,
    load_json,
    load_json_checked,
    status_of_json,
)
from expyrun.runs.text import duration, short_time, size, timestamp
from expyrun.slurm import commands as slurm_commands

# A found run: its folder, its record as JSON, its effective status.
Row = tuple[str, dict[str, Any], str]
_SUMMARY_KEYS = (
    "name",
    "entry",
    "started_at",
    "ended_at",
    "duration_s",
    "exit_code",
    "signal",
    "peak_rss_bytes",
    "host",
    "pid",
    "slurm",
    "attempts",
    "problem",
    "tags",
    "note",
    "stop_request",
)


def list_runs(paths: Sequence[str], as_json: bool, statuses: Sequence[str] = ()) -> int:
    """Print the runs under `paths`, newest first (only those with one of `statuses`, if any).

    Raises:
        RunFolderError: a path is not a folder.
    """
    rows = []
    for path in paths:
        if not os.path.isdir(path):
            raise RunFolderError("no such folder", path=path)
        for run_dir in find_run_folders(os.path.abspath(path)):
            data, problem = load_json_checked(run_dir)
            if problem is not None:
                console.warning(f"{run_dir}: unreadable record: {problem}")
                rows.append((run_dir, {"problem": problem}, UNREADABLE))
                continue
            rows.append((run_dir, data, status_of_json(data)))
    rows = _ask_slurm_about_pending(rows)
    if statuses:
        rows = [row for row in rows if row[2] in statuses]
    rows.sort(key=lambda row: timestamp(_start_or_submit_time(row[1])), reverse=True)
    if as_json:
        console.out(json.dumps([_summary(d, r, s) for d, r, s in rows], indent=2))
    else:
        console.out(_table(rows))
    return ExitCode.OK


def _ask_slurm_about_pending(rows: list[Row]) -> list[Row]:
    """The status of each `pending` row from Slurm, one squeue for all of them."""
    handles = {}
    for i, (_, data, recorded) in enumerate(rows):
        fields = data.get("slurm")
        if recorded == Status.PENDING and isinstance(fields, dict):
            handle = slurm_commands.job_handle(fields)
            if handle is not None:
                handles[i] = handle
    if not handles:
        return rows
    states = slurm_commands.job_states(sorted(set(handles.values())))
    if states is None:
        return rows  # Slurm cannot be asked from here: the records say pending
    rows = list(rows)
    for i, handle in handles.items():
        run_dir, data, _ = rows[i]
        status: str = slurm_commands.pending_status(states.get(handle)).value
        if status != Status.PENDING:
            # The job may have started and ended since the record was read: read it again.
            fresh = load_json(run_dir)
            if fresh is not None and fresh.get("status") != Status.PENDING:
                data, status = fresh, status_of_json(fresh)
        rows[i] = (run_dir, data, status)
    return rows


def _start_or_submit_time(data: dict[str, Any]) -> str | None:
    fields = data.get("slurm")
    submitted = fields.get("submitted_at") if isinstance(fields, dict) else None
    return data.get("started_at") or submitted


def _summary(run_dir: str, data: dict[str, Any], status: str) -> dict[str, Any]:
    return {"run_dir": run_dir, "status": status, **{k: data.get(k) for k in _SUMMARY_KEYS}}


def _table(rows: list[Row]) -> str:
    header = ("RUN", "STATUS", "STARTED", "DURATION", "EXIT", "PEAK MEM")
    cells = [header]
    here = os.getcwd() + os.sep
    for path, data, status in rows:
        code = data.get("exit_code")
        cells.append(
            (
                path[len(here) :] if path.startswith(here) else path,
                status,
                short_time(data.get("started_at")),
                duration(data.get("duration_s"), data.get("started_at"), status),
                "" if code is None else str(code),
                size(data.get("peak_rss_bytes")),
            )
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )
