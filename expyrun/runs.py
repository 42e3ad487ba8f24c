"""`expyrun ls`, `logs`, `status`, `stop`: look at runs and act on them through their records.

They read run.json files only, never configs, so they are fast and work on any run folder,
whatever expyrun version or config made it. A record left `running` by a supervisor that is
gone is shown as `lost`. A `pending` record (a `--slurm` run whose job has not started) is
the only one Slurm is asked about, all of them in one `squeue`: a job cancelled before it
started shows as `cancelled`, one Slurm ended or forgot without running it as `lost`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from expyrun import console, slurm
from expyrun.errors import ExitCode, RunFolderError, UsageError
from expyrun.run.record import (
    RECORD_FILE,
    RunRecord,
    now_iso,
    process_matches,
    read_record,
    supervisor_alive,
    write_record,
)

OUTPUTS_LOG = "outputs.log"
ENDED = ("succeeded", "failed", "killed", "cancelled", "lost")
STATUSES = ("prepared", "pending", "running", *ENDED)
_RUN_FOLDER = re.compile(r"^exp\.\d+$")
# How often `logs -f` and `stop` look at the files of a run they follow, and how often they
# ask Slurm about a pending job (squeue costs the controller more than reading a file).
POLL_SECONDS = 0.1
SLURM_POLL_SECONDS = 5.0
STOP_POLL_SLURM_SECONDS = 0.3
# Slurm job states after which a job that has not started its run never will.
SLURM_ENDED_STATES = frozenset(
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


def effective_status(record: RunRecord, ask_slurm: bool = True) -> str:
    """The record's status; `lost` for a `running` record whose supervisor is gone; for a
    `pending` one, what Slurm says of its job (`cancelled`, `lost`) unless `ask_slurm` is
    False or Slurm cannot be asked."""
    if record.status == "running" and supervisor_alive(record) is False:
        return "lost"
    if record.status == "pending" and ask_slurm:
        handle = slurm.job_handle(record.slurm or {})
        if handle is not None:
            states = slurm.job_states([handle])
            if states is not None:
                return pending_status(states.get(handle))
    return record.status


def pending_status(state: str | None) -> str:
    """The status of a `pending` record whose job Slurm says is in `state` (None: unknown)."""
    if state is None:
        return "lost"  # Slurm forgot the job (MinJobAge) or never had it: it did not run
    if state == "CANCELLED":
        return "cancelled"
    return "lost" if state in SLURM_ENDED_STATES else "pending"


def _status_of(data: dict[str, Any]) -> str:
    """`effective_status` on a record as read from JSON (ls reads thousands: no objects)."""
    status = str(data.get("status"))
    if status == "running":
        alive = process_matches(data.get("pid"), data.get("host"), data.get("pid_started_at"))
        if alive is False:
            return "lost"
    return status


def find_run_folders(root: str) -> Iterator[str]:
    """Run folders under `root` (folders `exp.N` holding run.json), not looking inside them."""
    if os.path.isfile(os.path.join(root, RECORD_FILE)):
        yield root
        return
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            entries = os.scandir(folder)
        except OSError:
            continue
        with entries:
            for entry in entries:
                if entry.name.startswith((".", "__")) or not entry.is_dir(follow_symlinks=False):
                    continue
                is_run = _RUN_FOLDER.match(entry.name) is not None
                if is_run and os.path.isfile(os.path.join(entry.path, RECORD_FILE)):
                    yield entry.path
                    continue
                pending.append(entry.path)


def _load(run_dir: Path) -> RunRecord | None:
    try:
        return read_record(run_dir)
    except (OSError, ValueError, TypeError):
        return None


def _load_json(run_dir: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(run_dir, RECORD_FILE), "rb") as f:
            data = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "status" in data else None


def _open_run(path: str) -> tuple[Path, RunRecord]:
    run_dir = Path(path)
    if not (run_dir / RECORD_FILE).is_file():
        raise RunFolderError("not a run folder (no run.json)", path=run_dir)
    found = _load(run_dir)
    if found is None:
        raise RunFolderError("run.json is not a run record", path=run_dir / RECORD_FILE)
    return run_dir, found


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"expyrun {prog}", description=description)

    def fail(message: str) -> None:
        raise UsageError(message, hint=f"see expyrun {prog} --help")

    parser.error = fail  # type: ignore[method-assign, assignment]
    return parser


# --- ls ---------------------------------------------------------------------------------------


def ls(args: list[str]) -> int:
    """`expyrun ls [PATH ...] [--json] [--status S]`: the runs under PATHs, newest first."""
    parser = _parser("ls", "List the runs under output folders, newest first.")
    parser.add_argument("paths", nargs="*", default=["."], metavar="PATH")
    parser.add_argument("--json", action="store_true", help="one JSON list, for scripts")
    parser.add_argument(
        "--status", action="append", choices=STATUSES, help="only runs with this status"
    )
    options = parser.parse_args(args)
    rows = []
    for path in options.paths:
        if not os.path.isdir(path):
            raise RunFolderError("no such folder", path=path)
        for run_dir in find_run_folders(os.path.abspath(path)):
            data = _load_json(run_dir)
            if data is None:
                continue
            rows.append((run_dir, data, _status_of(data)))
    rows = _ask_slurm_about_pending(rows)
    if options.status:
        rows = [row for row in rows if row[2] in options.status]
    rows.sort(key=lambda row: _timestamp(_start_or_submit_time(row[1])), reverse=True)
    if options.json:
        console.out(json.dumps([_summary(d, r, s) for d, r, s in rows], indent=2))
    else:
        console.out(_table(rows))
    return ExitCode.OK


def _ask_slurm_about_pending(
    rows: list[tuple[str, dict[str, Any], str]],
) -> list[tuple[str, dict[str, Any], str]]:
    """The status of each `pending` row from Slurm, one squeue for all of them."""
    handles = {}
    for i, (_, data, status) in enumerate(rows):
        fields = data.get("slurm")
        if status == "pending" and isinstance(fields, dict):
            handle = slurm.job_handle(fields)
            if handle is not None:
                handles[i] = handle
    if not handles:
        return rows
    states = slurm.job_states(sorted(set(handles.values())))
    if states is None:
        return rows  # Slurm cannot be asked from here: the records say pending
    rows = list(rows)
    for i, handle in handles.items():
        run_dir, data, _ = rows[i]
        status = pending_status(states.get(handle))
        if status != "pending":
            # The job may have started and ended since the record was read: read it again.
            fresh = _load_json(run_dir)
            if fresh is not None and fresh.get("status") != "pending":
                data, status = fresh, _status_of(fresh)
        rows[i] = (run_dir, data, status)
    return rows


def _start_or_submit_time(data: dict[str, Any]) -> str | None:
    fields = data.get("slurm")
    submitted = fields.get("submitted_at") if isinstance(fields, dict) else None
    return data.get("started_at") or submitted


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
)


def _summary(run_dir: str, data: dict[str, Any], status: str) -> dict[str, Any]:
    return {"run_dir": run_dir, "status": status, **{k: data.get(k) for k in _SUMMARY_KEYS}}


def _timestamp(iso: str | None) -> float:
    """Seconds since the epoch of an ISO 8601 time (0 when missing): the sort key of `ls`."""
    if not iso:
        return 0.0
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return 0.0


def _table(rows: list[tuple[str, dict[str, Any], str]]) -> str:
    header = ("RUN", "STATUS", "STARTED", "DURATION", "EXIT", "PEAK MEM")
    cells = [header]
    here = os.getcwd() + os.sep
    for path, data, status in rows:
        code = data.get("exit_code")
        cells.append(
            (
                path[len(here) :] if path.startswith(here) else path,
                status,
                _short_time(data.get("started_at")),
                _duration(data.get("duration_s"), data.get("started_at"), status),
                "" if code is None else str(code),
                _bytes(data.get("peak_rss_bytes")),
            )
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def _short_time(iso: str | None) -> str:
    """The time as the launching host saw it: `2026-11-25 07:34:35`."""
    return iso[:19].replace("T", " ") if iso else "-"


def _duration(seconds: float | None, started_at: str | None, status: str) -> str:
    if seconds is None and started_at and status == "running":
        started = _timestamp(started_at)
        seconds = time.time() - started if started else None
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _bytes(count: int | None) -> str:
    if count is None:
        return "-"
    size = float(count)
    for unit in ("B", "K", "M", "G", "T"):
        if size < 1024 or unit == "T":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return "-"  # pragma: no cover - the loop always returns


# --- logs -------------------------------------------------------------------------------------


def logs(args: list[str]) -> int:
    """`expyrun logs RUN [-f]`: print outputs.log; -f follows it until the run ends."""
    parser = _parser("logs", "Print a run's outputs.log; with -f, follow it until the run ends.")
    parser.add_argument("run", metavar="RUN", help="a run folder")
    parser.add_argument("-f", "--follow", action="store_true", help="follow until the run ends")
    options = parser.parse_args(args)
    run_dir, _ = _open_run(options.run)
    log_path = run_dir / OUTPUTS_LOG
    out = sys.stdout.buffer
    offset = 0
    asked_slurm = -SLURM_POLL_SECONDS
    while True:
        offset += _copy_new_bytes(log_path, offset, out)
        if not options.follow:
            return ExitCode.OK
        current = _load(run_dir)
        ask = time.monotonic() - asked_slurm >= SLURM_POLL_SECONDS
        if ask and current is not None and current.status == "pending":
            asked_slurm = time.monotonic()
        status = effective_status(current, ask_slurm=ask) if current else "lost"
        if status in ENDED:
            offset += _copy_new_bytes(log_path, offset, out)  # what came with the end
            return _exit_code(current, status)
        time.sleep(POLL_SECONDS)


def _copy_new_bytes(path: Path, offset: int, out: Any) -> int:
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
            raise SystemExit(ExitCode.OK) from None
    return len(data)


def _exit_code(found: RunRecord | None, status: str) -> int:
    if status in ("lost", "cancelled") or found is None:
        return ExitCode.FAILURE
    return found.exit_code or 0


# --- status -----------------------------------------------------------------------------------


def status(args: list[str]) -> int:
    """`expyrun status RUN [--json]`: the run record, readable; exit 0 if succeeded or running."""
    parser = _parser("status", "Show a run's record. Exit 0 if it succeeded or runs.")
    parser.add_argument("run", metavar="RUN", help="a run folder")
    parser.add_argument("--json", action="store_true", help="the record as JSON, with `status`")
    options = parser.parse_args(args)
    run_dir, found = _open_run(options.run)
    current = effective_status(found)
    if options.json:
        console.out(json.dumps({**found.to_dict(), "status": current}, indent=2))
    else:
        console.out(_describe(run_dir, found, current))
    if current in ("succeeded", "running", "prepared", "pending"):
        return ExitCode.OK
    return _exit_code(found, current)


def _describe(run_dir: Path, found: RunRecord, current: str) -> str:
    lines = [
        f"run        {run_dir}",
        f"status     {current}" + (f" ({found.signal})" if found.signal else ""),
        f"name       {found.name}",
        f"entry      {found.entry}" + ("  [debug]" if found.debug else ""),
        f"started    {_short_time(found.started_at)}",
        f"ended      {_short_time(found.ended_at)}",
        f"duration   {_duration(found.duration_s, found.started_at, current)}",
        f"exit code  {'-' if found.exit_code is None else found.exit_code}",
        f"peak mem   {_bytes(found.peak_rss_bytes)}",
        f"host       {found.host} (user {found.user}, supervisor pid {found.pid})",
        f"command    {' '.join(found.command)}",
    ]
    if found.git:
        dirty = ", dirty" if found.git.get("dirty") else ""
        lines.append(f"git        {found.git.get('commit')} ({found.git.get('branch')}{dirty})")
    if found.slurm:
        lines.append(f"slurm      {_describe_job(found.slurm)}")
    if len(found.attempts) > 1:
        lines.append(f"attempts   {len(found.attempts)}")
        for entry in found.attempts:
            stopped = f" ({entry['signal']})" if entry.get("signal") else ""
            reason = (
                f", Slurm: {entry['slurm_end_reason']}" if entry.get("slurm_end_reason") else ""
            )
            lines.append(
                f"  {entry.get('attempt')}. {entry.get('status')}{stopped}{reason}, "
                f"{_short_time(entry.get('started_at'))} -> {_short_time(entry.get('ended_at'))}"
                f" on {entry.get('host')}"
            )
    return "\n".join(lines)


def _describe_job(fields: dict[str, Any]) -> str:
    text = f"job {fields.get('job_id')}"
    if fields.get("array_task_id") is not None:
        text += f" (array {fields.get('array_job_id')}, task {fields.get('array_task_id')})"
    details = [
        f"{label} {fields[key]}"
        for key, label in (
            ("partition", "partition"),
            ("node_list", "nodes"),
            ("restart_count", "restarts"),
            ("end_reason", "ending:"),
        )
        if fields.get(key) not in (None, "")
    ]
    if details:
        text += ", " + ", ".join(details)
    if fields.get("output"):
        text += f"; output {fields['output']}"
    return text


# --- stop -------------------------------------------------------------------------------------


def stop(args: list[str]) -> int:
    """`expyrun stop RUN [--kill]`: stop a run as Ctrl-C does (forward, grace, kill)."""
    parser = _parser(
        "stop", "Stop a run the way Ctrl-C does: SIGTERM, the grace period, then kill."
    )
    parser.add_argument("run", metavar="RUN", help="a run folder")
    parser.add_argument("--kill", action="store_true", help="kill at once, without the grace")
    options = parser.parse_args(args)
    run_dir, found = _open_run(options.run)
    current = effective_status(found)
    if current in ENDED:
        console.info(f"the run has already ended ({current})")
        return ExitCode.OK
    handle = slurm.job_handle(found.slurm or {})
    submitted = bool((found.slurm or {}).get("submitted_at"))
    if current == "pending" and handle is not None:
        return _stop_pending(run_dir, handle)
    if current == "running" and submitted and handle is not None:
        return _stop_slurm_run(run_dir, found, handle, options.kill)
    if current != "running" or found.pid is None:
        raise RunFolderError(f"the run is {current}: there is nothing to stop yet", path=run_dir)
    if supervisor_alive(found) is None:
        job = f", or `scancel {handle}`" if handle is not None else ""
        raise RunFolderError(
            f"the run's supervisor runs on {found.host}: run `expyrun stop` there{job}",
            path=run_dir,
        )
    _signal_supervisor(found.pid, signal.SIGTERM)
    if options.kill:
        _wait_until_taken(found.pid, signal.SIGTERM)
        _signal_supervisor(found.pid, signal.SIGTERM)  # a second stop signal kills at once
    return _await_stopped(run_dir, found)


def _stop_pending(run_dir: Path, handle: str) -> int:
    """scancel a job that has not started its run; record `cancelled` once Slurm ended it."""
    slurm.cancel(handle)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        current = _load(run_dir)
        if current is not None and current.status != "pending":
            # It started meanwhile: scancel's SIGTERM takes the graceful path.
            return _await_stopped(run_dir, current)
        states = slurm.job_states([handle])
        if states is not None and pending_status(states.get(handle)) != "pending":
            current = _load(run_dir)
            if current is not None and current.status == "pending":
                write_record(run_dir, current.replace(status="cancelled", ended_at=now_iso()))
                console.info(f"cancelled Slurm job {handle} before it started")
                return ExitCode.OK
            continue  # it started and ended meanwhile: the record says how
        time.sleep(STOP_POLL_SLURM_SECONDS)
    raise RunFolderError(f"Slurm did not cancel job {handle} in time", path=run_dir)


def _stop_slurm_run(run_dir: Path, found: RunRecord, handle: str, kill: bool) -> int:
    """Stop a running `--slurm` run through Slurm (its supervisor may run on another node).

    `scancel` sends SIGTERM to the batch task, expyrun, which takes the graceful path within
    KillWait. `--kill`: two SIGTERMs to the batch task (the second kills at once); on this
    host, the second waits until the supervisor took the first.
    """
    if not kill:
        slurm.cancel(handle)
    elif supervisor_alive(found) and found.pid is not None:
        slurm.cancel(handle, "TERM", batch=True)
        _wait_until_taken(found.pid, signal.SIGTERM)
        _signal_supervisor(found.pid, signal.SIGTERM)
    else:
        for _ in range(2):  # two scancel calls: two signals, not one merged pending signal
            slurm.cancel(handle, "TERM", batch=True)
    return _await_stopped(run_dir, found, f" (Slurm job {handle})")


def _await_stopped(run_dir: Path, found: RunRecord, where: str = "") -> int:
    """Wait until the record says the run ended: its grace period, plus time to record it."""
    grace = found.grace_s if found.grace_s is not None else 10.0
    ended = _wait_for_end(run_dir, timeout=grace + 30)
    if ended is None:
        raise RunFolderError("the run did not end in time", path=run_dir)
    console.info(f"stopped: {effective_status(ended)}{where}")
    return ExitCode.OK


def _signal_supervisor(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass  # it ended meanwhile: the record tells how


def _wait_until_taken(pid: int, signum: int, timeout: float = 5.0) -> None:
    """Wait until a signal sent to `pid` is no longer pending (its supervisor took it)."""
    deadline = time.monotonic() + timeout
    bit = 1 << (signum - 1)
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/status") as f:
                pending = {
                    key: int(value, 16)
                    for key, _, value in (line.partition(":\t") for line in f)
                    if key in ("SigPnd", "ShdPnd")
                }
        except (OSError, ValueError):
            return
        if not any(mask & bit for mask in pending.values()):
            return
        time.sleep(0.01)


def _wait_for_end(run_dir: Path, timeout: float) -> RunRecord | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = _load(run_dir)
        if current is not None and effective_status(current) in ENDED:
            return current
        time.sleep(POLL_SECONDS)
    return None
