"""A detached sweep, `expyrun stop SWEEP_ID`, `expyrun ls --sweep ID`.

`--detach` starts one sweep supervisor, `expyrun _sweep SWEEP_DIR`, in a new session (no
controlling terminal, stdin /dev/null, its messages in the sweep folder's sweep.log), as a
detached run's supervisor is started (launch/detach.py); it supervises the members as a
foreground sweep does. `stop` sends it SIGTERM: it starts no more members and stops the
running ones the usual way, then records how the sweep ended.

A `--slurm` sweep has no supervisor: `ls --sweep` and `stop` show the state its members'
records give (`record.slurm_state`), and record its end once every member ended.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import time
from pathlib import Path
from typing import Any

from expyrun import console
from expyrun.errors import ExitCode, RunFolderError
from expyrun.launch.detach import start_background
from expyrun.run.record import Status
from expyrun.run.supervisor import DEFAULT_GRACE_SECONDS
from expyrun.sweep import record, tables
from expyrun.sweep.plan import run_status, supervisor_running

POLL_SECONDS = 0.1
# Beyond the members' grace period: time to kill their processes and write the records.
STOP_MARGIN_SECONDS = 30.0


def start_in_background(folder: Path, cwd: Path) -> int:
    """Start the supervisor of the recorded sweep in `folder` in the background; its pid.

    Returns once it recorded the sweep `running`. Raises RunFolderError when it did not.
    """
    command = ["_sweep", str(folder)]
    return start_background(command, folder / record.SWEEP_LOG, "the sweep", cwd=cwd)


def stop_sweep(folder: Path, kill: bool) -> int:
    """Stop the sweep recorded in `folder`; wait until its supervisor recorded the end.

    Raises:
        RunFolderError: its supervisor runs as another user, or did not end in time.
    """
    found = record.read(folder)
    if found.slurm_jobs and not supervisor_running(found):  # its members are Slurm's to stop
        from expyrun.sweep.slurm import cancel_sweep

        listed = tables.members_of_record(found.members, record.member_runs(folder))
        state, counts = sweep_state(folder, found, listed)
        if state == record.ENDED:
            console.info(f"sweep {found.id} is not running ({_state_text(state, counts)})")
            return ExitCode.OK
        return cancel_sweep(found)
    if not supervisor_running(found) or found.pid is None:
        return _stop_members(folder, found, kill)
    try:
        os.kill(found.pid, signal.SIGTERM)
        if kill:
            time.sleep(POLL_SECONDS)  # two signals, not one merged pending signal
            os.kill(found.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise RunFolderError(
            f"cannot signal the sweep's supervisor (process {found.pid}): another user's"
        ) from exc
    grace = found.options.get("grace_seconds")
    timeout = (DEFAULT_GRACE_SECONDS if grace is None else float(grace)) + STOP_MARGIN_SECONDS
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = record.read(folder)
        if not supervisor_running(current):
            summary = ", ".join(f"{n} {s}" for s, n in (current.summary or {}).items())
            console.info(f"stopped: sweep {found.id} {current.state} ({summary or 'no member'})")
            # Members it skipped as running (started by an earlier, lost supervisor) run on.
            return _stop_members(folder, current, kill, after_stop=True)
        time.sleep(POLL_SECONDS)
    raise RunFolderError(f"sweep {found.id} did not stop in time", path=folder)


def _stop_members(
    folder: Path, found: record.SweepRecord, kill: bool, after_stop: bool = False
) -> int:
    """A sweep without a supervisor: stop the members still running, as `expyrun stop RUN`.

    Its supervisor was killed outright, or it was resumed while members of the lost
    supervisor still ran (skipped as running): each member's own supervisor still runs it.
    `after_stop`: its supervisor was just stopped (and said so).
    """
    from expyrun.runs.stop import stop_run

    state = "lost" if found.state == record.RUNNING else found.state
    running = [
        runs[-1]
        for runs in record.member_runs(folder).values()
        if run_status(runs[-1]) == Status.RUNNING
    ]
    if not running:
        if not after_stop:
            console.info(f"sweep {found.id} is not running ({state})")
        return ExitCode.OK
    said = "" if after_stop else f" is not running ({state})"
    console.info(f"sweep {found.id}{said}: stopping its {len(running)} running")
    for run_dir in running:
        stop_run(run_dir, kill)
    return ExitCode.OK


def list_sweep(text: str, paths: list[str], as_json: bool) -> int:
    """`expyrun ls --sweep ID [PATH ...]`: the sweep's members, the swept keys as columns."""
    folder = record.find_sweep(text, paths or ["."])
    found = record.read(folder)
    listed = tables.members_of_record(found.members, record.member_runs(folder))
    state, counts = sweep_state(folder, found, listed)
    if as_json:
        document: dict[str, Any] = {"sweep": found.id, "state": state, "summary": counts}
        document.update(command=found.command, members=listed)
        console.out(json.dumps(document, indent=1, default=str))
        return ExitCode.OK
    keys = [key for dimension in found.dimensions for key in dimension["keys"]]
    console.info(f"sweep {found.id} ({_state_text(state, counts)}): {shlex.join(found.command)}")
    console.out(tables.members_table(listed, keys))
    return ExitCode.OK


def sweep_state(
    folder: Path, found: record.SweepRecord, listed: list[dict[str, Any]]
) -> tuple[str, dict[str, int] | None]:
    """The sweep's state as it is now, and its members by status (None: not known).

    A sweep queued in Slurm (`submitted`) has no process to rewrite its record: its state comes
    from `listed` (`tables.members_of_record`), and once every member ended the end is recorded
    (`record.record_slurm_end`). A `running` sweep whose supervisor is gone is `lost`. Else
    the record's state and its summary at the end, as its supervisor wrote them.
    """
    if found.state == record.SUBMITTED:
        state, counts = record.slurm_state(str(member["status"]) for member in listed)
        if state == record.ENDED:
            ended = [str(m["ended_at"]) for m in listed if m.get("ended_at")]
            members = [
                {**member, "run_dir": shown["run_dir"], "status": shown["status"]}
                for member, shown in zip(found.members, listed, strict=True)
            ]
            record.record_slurm_end(folder, found, members, max(ended, default=None))
        return state, counts
    if found.state == record.RUNNING and not supervisor_running(found):
        return "lost", found.summary  # its supervisor is gone without recording the end
    return found.state, found.summary


def _state_text(state: str, counts: dict[str, int] | None) -> str:
    """`ended: 5 succeeded, 1 failed` (the state alone when the counts are not known)."""
    if not counts:
        return state
    return f"{state}: " + ", ".join(f"{n} {status}" for status, n in counts.items())
