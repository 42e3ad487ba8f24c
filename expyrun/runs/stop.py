"""`expyrun stop`: stop a run with SIGTERM (forwarded to the entry), the grace period, then kill.

A run on this host gets SIGTERM at its supervisor; a `--slurm` run is stopped through Slurm
(`scancel`: its supervisor may run on another node); a pending job is cancelled and its
record says `cancelled`. A multi-task run (its record has `tasks`) is stopped whole: a
`--nproc` run through its launcher, which forwards the signal to every task, once; the tasks
of a job step each at its supervisor, those on this host (the others' hosts are named).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from expyrun import console
from expyrun.errors import ExitCode, RunFolderError
from expyrun.run.folder import OUTPUTS_LOG
from expyrun.run.process_identity import wait_until_taken
from expyrun.run.record import (
    ENDED,
    NOT_STARTED,
    STOP_BY_COMMAND,
    RecordError,
    RunRecord,
    Status,
    now_iso,
    process_matches,
    supervisor_alive,
    update_record,
)
from expyrun.run.supervisor import DEFAULT_GRACE_SECONDS
from expyrun.run.tasks import LOCAL_GROUP_PREFIX
from expyrun.runs.reading import effective_status, load, open_run
from expyrun.slurm import commands as slurm_commands

# How often `stop` looks at the record of the run it stops, and at Slurm's state of its job.
POLL_SECONDS = 0.1
STOP_POLL_SLURM_SECONDS = 0.3
# Beyond the grace period: time to kill the run's processes and write its record.
RECORDING_MARGIN_SECONDS = 30.0
CANCEL_TIMEOUT_SECONDS = 60.0


def stop_run(run: str, kill: bool) -> int:
    """Stop the run in the run folder `run` and wait until its record says it ended.

    `kill`: no grace period (a second stop signal kills at once).

    Raises:
        RunFolderError: nothing to stop yet, the supervisor runs on another host, or the run
            did not end in time.
        SlurmError: scancel failed.
    """
    run_dir, found = open_run(run)
    current = effective_status(found)
    if current in ENDED:
        console.info(f"the run has already ended ({current})")
        return ExitCode.OK
    handle = slurm_commands.job_handle(found.slurm or {})
    submitted = bool((found.slurm or {}).get("submitted_at"))
    if current == Status.PENDING and handle is not None:
        _record_request(run_dir)
        return _stop_pending(run_dir, handle)
    if current == Status.RUNNING and submitted and handle is not None:
        _record_request(run_dir)
        return _stop_slurm_run(run_dir, found, handle, kill)
    if current != Status.RUNNING or found.pid is None:
        raise RunFolderError(f"the run is {current}: there is nothing to stop yet", path=run_dir)
    if found.tasks:
        return _stop_tasks(run_dir, found, handle, kill)
    if supervisor_alive(found) is None:
        job = f", or `scancel {handle}`" if handle is not None else ""
        raise RunFolderError(
            f"the run's supervisor runs on {found.host}: run `expyrun stop` there{job}",
            path=run_dir,
        )
    _confirm_supervisor(run_dir, found.pid, found.pid_started_at)
    _record_request(run_dir)
    _signal_supervisor(found.pid, signal.SIGTERM)
    if kill:
        wait_until_taken(found.pid, signal.SIGTERM)
        _signal_supervisor(found.pid, signal.SIGTERM)  # a second stop signal kills at once
    return _await_stopped(run_dir, found)


def _record_request(run_dir: Path) -> None:
    """Record in run.json that `expyrun stop` asks this attempt to stop, before signalling.

    The supervisor names `expyrun stop` in the final record's `stop_request` from it. Best
    effort: a record that cannot be written (another user's run) still gets the signal, and
    the supervisor then says `signal`.
    """

    def ask(current: RunRecord) -> RunRecord:
        if current.status != Status.RUNNING and current.status not in NOT_STARTED:
            return current  # it ended meanwhile: nothing was asked of it
        request = {"signal": "SIGTERM", "by": STOP_BY_COMMAND, "at": now_iso()}
        return current.replace(stop_request=request)

    try:
        update_record(run_dir, ask)
    except RecordError:
        pass


def _stop_tasks(run_dir: Path, found: RunRecord, handle: str | None, kill: bool) -> int:
    """Stop every task of a multi-task run that runs on this host; name the other hosts.

    A `--nproc` run is stopped through its launcher (the `local-PID` group of its tasks),
    confirmed as the parent of a confirmed task supervisor: it forwards the signal to every
    task once, also to one that has not recorded its entry yet; a task failing then stops no
    other a second time (which would kill it at once). Otherwise (srun's tasks), each task's
    supervisor on this host gets the signal; tasks on other hosts are named, not signalled.

    Raises RunFolderError when no task runs on this host, or the run does not end in time.
    """
    here, elsewhere = _running_tasks(run_dir, found)
    where = _elsewhere(elsewhere, handle)
    if not here:
        if where:
            raise RunFolderError(f"the run's tasks run on other hosts ({where})", path=run_dir)
        raise RunFolderError("no task of the run runs: there is nothing to stop", path=run_dir)
    launcher = _task_launcher(here)
    if launcher is not None:
        targets = [launcher]
        console.info(f"stopping the run's tasks through their launcher (process {launcher})")
    else:
        targets = [int(entry["pid"]) for entry in here]
        ranks = ", ".join(str(entry.get("rank")) for entry in here)
        console.info(f"stopping task{'s' if len(here) > 1 else ''} {ranks} on this host")
    if where:
        console.warning(f"the run's tasks on other hosts are not stopped from here ({where})")
    _record_request(run_dir)
    signalled: set[int] = set()
    _signal_all(targets, kill, signalled)
    if launcher is not None and not elsewhere:
        return _await_stopped(run_dir, found)
    return _await_tasks(run_dir, found, signalled, kill, only_here=bool(elsewhere))


def _signal_all(pids: list[int], kill: bool, signalled: set[int]) -> None:
    """SIGTERM each of `pids` (twice with `kill`, the second once the first was taken)."""
    for pid in pids:
        _signal_supervisor(pid, signal.SIGTERM)
        signalled.add(pid)
    if kill:
        for pid in pids:
            wait_until_taken(pid, signal.SIGTERM)
            _signal_supervisor(pid, signal.SIGTERM)  # a second stop signal kills at once


def _await_tasks(
    run_dir: Path, found: RunRecord, signalled: set[int], kill: bool, only_here: bool
) -> int:
    """Wait until the run ended (`only_here`: its tasks on this host), signalling the tasks
    that start on this host meanwhile (srun starts a step's tasks one by one)."""
    grace = found.grace_s if found.grace_s is not None else DEFAULT_GRACE_SECONDS
    deadline = time.monotonic() + grace + RECORDING_MARGIN_SECONDS
    while time.monotonic() < deadline:
        current = load(run_dir)
        if current is not None and effective_status(current) in ENDED:
            status = effective_status(current)
            console.info("stopped" if status == Status.STOPPED else f"stopped: {status}")
            return ExitCode.OK
        here = _running_tasks(run_dir, current)[0] if current is not None else []
        started = [entry for entry in here if int(entry["pid"]) not in signalled]
        if started:
            ranks = ", ".join(str(entry.get("rank")) for entry in started)
            console.info(f"stopping task{'s' if len(started) > 1 else ''} {ranks}, started since")
            _signal_all([int(entry["pid"]) for entry in started], kill, signalled)
            deadline = time.monotonic() + grace + RECORDING_MARGIN_SECONDS
        elif only_here and current is not None and not here:
            console.info("stopped the run's tasks on this host")
            return ExitCode.OK
        time.sleep(POLL_SECONDS)
    raise RunFolderError("the run did not end in time", path=run_dir)


def _running_tasks(
    run_dir: Path, found: RunRecord
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The entries of the tasks that run: on this host (confirmed), and on other hosts."""
    here: list[dict[str, Any]] = []
    elsewhere: list[dict[str, Any]] = []
    for entry in found.tasks or ():
        if entry.get("status") in ENDED:
            continue
        alive = process_matches(entry.get("pid"), entry.get("host"), entry.get("pid_started_at"))
        if alive is None:
            elsewhere.append(entry)
        elif alive:
            log = str(entry.get("log") or OUTPUTS_LOG)
            _confirm_supervisor(run_dir, entry["pid"], entry.get("pid_started_at"), log)
            here.append(entry)
    return here, elsewhere


def _elsewhere(entries: list[dict[str, Any]], handle: str | None) -> str:
    """`tasks 2, 3 on node7: run expyrun stop there, or scancel JOB` (empty: none)."""
    if not entries:
        return ""
    by_host: dict[str, list[str]] = {}
    for entry in entries:
        by_host.setdefault(str(entry.get("host")), []).append(str(entry.get("rank")))
    parts = [
        f"task{'s' if len(ranks) > 1 else ''} {', '.join(ranks)} on {host}"
        for host, ranks in by_host.items()
    ]
    job = f", or `scancel {handle}`" if handle is not None else ""
    return f"{'; '.join(parts)}: run `expyrun stop` there{job}"


def _task_launcher(here: list[dict[str, Any]]) -> int | None:
    """The `--nproc` launcher of these confirmed task supervisors, if it is their parent still."""
    for entry in here:
        group = str(entry.get("group") or "")
        number = group.removeprefix(LOCAL_GROUP_PREFIX)
        is_local = group.startswith(LOCAL_GROUP_PREFIX) and number.isdigit()
        if is_local and _parent_pid(int(entry["pid"])) == int(number):
            return int(number)
    return None


def _parent_pid(pid: int) -> int | None:
    """Process `pid`'s parent, from /proc (proc(5) stat field 4); None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _confirm_supervisor(
    run_dir: Path, pid: int, started_at: float | None, log_name: str = OUTPUTS_LOG
) -> None:
    """Raise unless process `pid` is this run's supervisor: never signal an unconfirmed pid.

    A record's `pid_started_at` confirms it (checked by `supervisor_alive`). A record without
    it (written by hand, copied, or by an old expyrun) is confirmed only when that process
    holds the run's log open (`log_name`: a task's own), as a supervisor does.
    """
    if started_at is not None:
        return
    log = os.path.realpath(run_dir / log_name)
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
        if any(os.readlink(f"/proc/{pid}/fd/{fd}") == log for fd in fds):
            return
    except OSError:
        pass
    raise RunFolderError(
        f"cannot confirm that process {pid} is this run's supervisor (the record has no "
        "pid_started_at, and the process does not hold the run's outputs.log): not signalling it",
        path=run_dir,
    )


def _stop_pending(run_dir: Path, handle: str) -> int:
    """scancel a job that has not started its run; record `cancelled` once Slurm ended it."""
    slurm_commands.cancel(handle)
    deadline = time.monotonic() + CANCEL_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        current = load(run_dir)
        if current is not None and current.status != Status.PENDING:
            # It started meanwhile: scancel's SIGTERM takes the graceful path.
            return _await_stopped(run_dir, current)
        states = slurm_commands.job_states([handle])
        if (
            states is not None
            and slurm_commands.pending_status(states.get(handle)) != Status.PENDING
        ):
            if _record_cancelled(run_dir):
                console.info(f"cancelled Slurm job {handle} before it started")
                return ExitCode.OK
            continue  # it started and ended meanwhile: the record says how
        time.sleep(STOP_POLL_SLURM_SECONDS)
    raise RunFolderError(f"Slurm did not cancel job {handle} in time", path=run_dir)


def _record_cancelled(run_dir: Path) -> bool:
    """Record `cancelled` if the record still says `pending`; whether it did."""

    def cancel(current: RunRecord) -> RunRecord:
        if current.status != Status.PENDING:
            return current
        return current.replace(status=Status.CANCELLED.value, ended_at=now_iso())

    return update_record(run_dir, cancel).status == Status.CANCELLED


def _stop_slurm_run(run_dir: Path, found: RunRecord, handle: str, kill: bool) -> int:
    """Stop a running `--slurm` run through Slurm (its supervisor may run on another node).

    `scancel` sends SIGTERM to the batch task, expyrun, which takes the graceful path within
    KillWait. `--kill`: two SIGTERMs to the batch task (the second kills at once); on this
    host, the second waits until the supervisor took the first.
    """
    if not kill:
        slurm_commands.cancel(handle)
    elif supervisor_alive(found) and found.pid is not None:
        slurm_commands.cancel(handle, "TERM", batch=True)
        wait_until_taken(found.pid, signal.SIGTERM)
        _signal_supervisor(found.pid, signal.SIGTERM)
    else:
        for _ in range(2):  # two scancel calls: two signals, not one merged pending signal
            slurm_commands.cancel(handle, "TERM", batch=True)
    return _await_stopped(run_dir, found, f" (Slurm job {handle})")


def _await_stopped(run_dir: Path, found: RunRecord, where: str = "") -> int:
    """Wait until the record says the run ended: its grace period, plus time to record it."""
    grace = found.grace_s if found.grace_s is not None else DEFAULT_GRACE_SECONDS
    ended = _wait_for_end(run_dir, timeout=grace + RECORDING_MARGIN_SECONDS)
    if ended is None:
        raise RunFolderError("the run did not end in time", path=run_dir)
    status = effective_status(ended)
    console.info(("stopped" if status == Status.STOPPED else f"stopped: {status}") + where)
    return ExitCode.OK


def _signal_supervisor(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass  # it ended meanwhile: the record tells how
    except PermissionError as exc:
        raise RunFolderError(
            f"cannot signal the run's supervisor (process {pid}): it runs as another user",
            hint="stop it as that user, or as root",
        ) from exc


def _wait_for_end(run_dir: Path, timeout: float) -> RunRecord | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = load(run_dir)
        if current is not None and effective_status(current) in ENDED:
            return current
        time.sleep(POLL_SECONDS)
    return None
