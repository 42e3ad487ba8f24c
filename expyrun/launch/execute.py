"""Run a prepared run folder: the worker's payload, supervision, attempts, the final record.

A folder that already ran (a requeued Slurm job) runs a new attempt: outputs.log is appended
to after a separator line and run.json keeps every attempt.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from expyrun import console, started
from expyrun.errors import Interrupted
from expyrun.launch import final_record
from expyrun.launch.options import SourceRun
from expyrun.launch.prepare import PreparedRun
from expyrun.launch.recording import (
    RECORDING_TIMEOUT_IN_ENDING_JOB_SECONDS,
    RECORDING_TIMEOUT_SECONDS,
    run_recorder,
)
from expyrun.run import record, spawn, supervisor
from expyrun.run.folder import OUTPUTS_LOG
from expyrun.run.record import RunRecord
from expyrun.run.record_file import RESERVE_FILE, make_reserve
from expyrun.slurm import job as slurm_job
from expyrun.slurm.job import SlurmJob

if TYPE_CHECKING:  # run/tasks.py is imported by a multi-task run only
    from expyrun.run.tasks import Task

# Environment variables the worker gets (EXPYRUN_CWD, the launch folder, is the config's).
RUN_DIR_VARIABLE = "EXPYRUN_RUN_DIR"
# 1 for a run's first attempt, n for its n-th (a requeued Slurm job resumes its run folder).
ATTEMPT_VARIABLE = "EXPYRUN_ATTEMPT"


def run_prepared(
    prepared: PreparedRun,
    worker: spawn.Worker,
    terminal: bool = True,
    on_running: Callable[[], None] | None = None,
    task: Task | None = None,
    announce: bool = False,
) -> int:
    """Run a prepared run folder with a started worker, record how it ended; the exit code.

    `on_running` is called once the record says `running` (a detached launch waits for it).
    `task`: one task of a multi-task run (its own log, its entry in the record: run/tasks.py).
    `announce`: say the run folder first. A stop signal taken before the worker has its
    payload (here, or while the supervisor takes the signals over) records the run `killed`
    before its entry started: the folder must not be left `prepared` with nothing to run it.
    """
    running: list[RunRecord] = []  # the record that says `running`, once written
    try:
        if announce:
            console.info(f"run folder: {prepared.run_dir}")
        return _run(prepared, worker, terminal, on_running, task, running)
    except (KeyboardInterrupt, Interrupted) as exc:
        if not running:  # stopped before the worker had its payload: it ran nothing
            final_record.record_stopped_before_start(prepared.run_dir, prepared.record, task, exc)
        raise


def _run(
    prepared: PreparedRun,
    worker: spawn.Worker,
    terminal: bool,
    on_running: Callable[[], None] | None,
    task: Task | None,
    running: list[RunRecord],
) -> int:
    from expyrun.config.interpolation import CWD_VARIABLE  # loaded by now: resolution ran

    run_dir = prepared.run_dir
    job = SlurmJob.from_environ(os.environ)
    # A multi-task run runs once: its record's `running` is the other tasks', not a past attempt.
    earlier = [] if task else record.earlier_attempts(prepared.record)
    attempt = len(earlier) + 1
    grace = _grace_seconds(prepared.options.grace_seconds, job)
    env = {
        CWD_VARIABLE: str(prepared.cwd),
        RUN_DIR_VARIABLE: str(run_dir),
        ATTEMPT_VARIABLE: str(attempt),
        **_environment_variables(prepared.options.source),
        **(task.environment(os.environ) if task else {}),
    }
    log_path = run_dir / (_task_log_name(task) if task else OUTPUTS_LOG)
    separator_at = _start_log(log_path, attempt, job, task)
    launch = supervisor.WorkerLaunch(
        payload=_payload(prepared, terminal),
        env=env,
        run_dir=run_dir,
        log_path=log_path,
        grace_seconds=grace,
        append_log=separator_at is not None,
        terminal=terminal,
        separator_at=separator_at,
    )
    recorder = run_recorder(prepared, None if task is None else task.rank)

    def write(current: RunRecord) -> None:
        final_record.write_run_record(run_dir, task, current)

    started_at = record.now_iso()
    slurm_fields = final_record.slurm_fields(prepared.record.slurm, job)

    def on_started(child_pid: int) -> None:
        started()  # the start-up is over: the collector is back on (expyrun/__main__.py)
        # What the run's end may need is imported now (before the record says `running`),
        # while the worker runs the entry. Not at the end, which may come days later, after
        # the install changed (pip install -U, a checkout of an editable install): a module
        # missing then would cost the record.
        from expyrun.launch import closing  # noqa: F401 - the closing line
        from expyrun.run import (
            freeze,  # noqa: F401 - the recorder's, which starts below
            record_check,  # noqa: F401 - read_record (a stop's request)
        )
        from expyrun.slurm import commands  # noqa: F401 - scontrol, and _command (reap_adopted)

        current = record.new_attempt(
            prepared.record,
            earlier,
            host=os.uname().nodename,
            pid=os.getpid(),
            pid_started_at=record.process_start_time(os.getpid()),
            child_pid=child_pid,
            started_at=started_at,
            grace_s=grace,
            slurm=slurm_fields,
        )
        write(current)
        running.append(current)
        if recorder is not None:
            recorder.start()
        if on_running is not None:
            on_running()

    def on_ended(outcome: supervisor.WorkerExit) -> None:
        """Write the final record as soon as the run has ended (before the terminal catches up)."""
        nonlocal slurm_fields
        stopped = outcome.signal in ("SIGTERM", "SIGINT")
        if job is not None and stopped and slurm_fields is not None:
            # Slurm SIGKILLs KillWait after its SIGTERM: record now, say why if Slurm knows.
            reason = slurm_job.end_reason(job.job_id, job.restart_count)
            if reason is not None:
                slurm_fields = {**slurm_fields, "end_reason": reason}
        environment = (
            recorder.join(
                RECORDING_TIMEOUT_IN_ENDING_JOB_SECONDS
                if job and stopped
                else RECORDING_TIMEOUT_SECONDS
            )
            if recorder is not None
            else {}
        )
        final = record.end_attempt(
            running[0],
            status=outcome.status,
            ended_at=record.now_iso(),
            duration_s=round(outcome.duration_s, 3),
            exit_code=outcome.exit_code,
            signal=outcome.signal,
            killed_after_grace=outcome.killed_after_grace,
            peak_rss_bytes=outcome.peak_rss_bytes,
            cpu_user_s=round(outcome.cpu_user_s, 3),
            cpu_system_s=round(outcome.cpu_system_s, 3),
            output_bytes=outcome.bytes_logged,
            tracking=outcome.tracking,
            leftover_processes=outcome.leftovers,
            output_lost_bytes=outcome.bytes_lost or None,
            output_lost_since=record.now_iso(outcome.lost_since) if outcome.lost_since else None,
            slurm=slurm_fields,
            error=outcome.error,
            result=outcome.result,
            result_repr=outcome.result_repr,
            stop_request=_stop_request(run_dir, running[0], outcome, slurm_fields),
            **environment,
        )
        final_record.write_or_warn(write, final)

    # The full-disk reserve, before the entry runs (`running` is written after): a new attempt
    # of a requeued job finds it used up by the last record of the attempt before.
    make_reserve(run_dir / RESERVE_FILE)
    outcome = supervisor.run(
        worker, launch, on_started=on_started, on_ended=on_ended, say=console.info
    )
    if terminal:
        from expyrun.launch.closing import say_how_it_ended  # imported by on_started

        say_how_it_ended(outcome, run_dir, launch.log_path, task.describe() if task else None)
    return outcome.exit_code


def _stop_request(
    run_dir: Path,
    running: RunRecord,
    outcome: supervisor.WorkerExit,
    slurm_fields: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """The record's `stop_request`: the stop signal the supervisor got, and who sent it.

    `expyrun stop` recorded its request for this attempt before signalling; Slurm is named
    when it says why it ends the job (a time limit, a preemption). None when no stop signal
    came (`write_record` then keeps a request `expyrun stop` recorded, if any).
    """
    if outcome.stop_request is None:
        return None
    name, at = outcome.stop_request
    request: dict[str, Any] = {
        "signal": name,
        "by": record.STOP_BY_SIGNAL,
        "at": record.now_iso(at),
    }
    reason = (slurm_fields or {}).get("end_reason")
    if reason:
        request.update(by=record.STOP_BY_SLURM, reason=reason)
    try:
        on_disk = record.read_record(run_dir)
    except (OSError, ValueError, TypeError):
        return request
    asked = on_disk.stop_request if on_disk.started_at == running.started_at else None
    if asked and asked.get("by") == record.STOP_BY_COMMAND:
        request["by"] = record.STOP_BY_COMMAND
    return request


def _payload(prepared: PreparedRun, terminal: bool) -> dict[str, Any]:
    """What the worker is told to run (see `run/worker.py`)."""
    spec = prepared.resolved.run
    code_path = spec.code_dir if prepared.options.debug else prepared.run_dir
    return {
        "entry": spec.entry,
        "module": spec.module,
        "function": spec.function,
        "name": spec.name,
        "config": prepared.resolved.entry_config,
        "sys_path": [str(code_path)],
        "run_dir": str(prepared.run_dir),
        "stdout_isatty": terminal and os.isatty(1),
        "stderr_isatty": terminal and os.isatty(2),
        # The command line the user typed (the worker's sys.argv), and python -u.
        "argv": list(prepared.record.command),
        "unbuffered": bool(getattr(sys.__stdout__, "write_through", False)),
        "merged_output": prepared.options.merged_output,
    }


def _environment_variables(source: SourceRun | None) -> dict[str, str]:
    """A reproduced run's virtual environment, as activated: `python` and its tools come first."""
    if source is None or source.environment is None:
        return {}
    bin_dir = str(source.environment / "bin")
    path = os.environ.get("PATH")
    return {
        "VIRTUAL_ENV": str(source.environment),
        "PATH": f"{bin_dir}{os.pathsep}{path}" if path else bin_dir,
    }


def _grace_seconds(requested: float | None, job: SlurmJob | None) -> float:
    """The grace period: `--grace`, else the default, kept below Slurm's KillWait in a job.

    In a job, Slurm SIGKILLs every process KillWait seconds after its SIGTERM (time limit,
    scancel, requeue, preemption): the run must be recorded before that.
    """
    default = supervisor.DEFAULT_GRACE_SECONDS
    if job is None:
        return default if requested is None else requested
    kill_wait, problem = slurm_job.kill_wait_seconds()
    if problem is not None:
        console.warning(f"could not read Slurm's KillWait ({problem}): assuming {kill_wait:g} s")
    if requested is None:
        return slurm_job.grace_within_kill_wait(kill_wait, default)
    if requested > slurm_job.grace_within_kill_wait(kill_wait, requested):
        console.warning(
            f"--grace {requested:g} s does not end before Slurm's KillWait ({kill_wait:g} s): "
            "Slurm may kill the run before expyrun records how it ended"
        )
    return requested


def _task_log_name(task: Task) -> str:
    from expyrun.run import tasks

    return tasks.log_name(task.rank)


def _start_log(log_path: Path, attempt: int, job: SlurmJob | None, task: Task | None) -> int | None:
    """Write expyrun's own line first in the log, if any; its offset (None: the log is new).

    A new attempt starts after a separator line; a task whose rank variables replace exported
    ones says so on stderr and first in its log (a task runs once: its log is new).
    """
    if attempt > 1:
        return _write_separator(log_path, attempt, job)
    rank_warning = task.rank_warning(os.environ) if task else None
    if rank_warning is None:
        return None
    console.warning(rank_warning)
    return _write_line(log_path, f"expyrun: warning: {rank_warning}\n", fresh=True)


def _write_separator(log_path: Path, attempt: int, job: SlurmJob | None) -> int:
    """Mark where a new attempt starts in outputs.log (on a line of its own); its offset."""
    where = os.uname().nodename
    if job is not None:
        where = f"{job.describe()}, on {where}"
    line = f"===== expyrun: attempt {attempt} ({where}) at {record.now_iso()} =====\n"
    console.info(line.strip().strip("= ").removeprefix("expyrun: ") + f": {log_path.parent}")
    return _write_line(log_path, line)


def _write_line(log_path: Path, line: str, fresh: bool = False) -> int:
    """Append expyrun's own `line` to a log, on a line of its own; its offset.

    `fresh`: the log starts with it (a first attempt: what was there is replaced).
    """
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | (os.O_TRUNC if fresh else 0)
    fd = os.open(log_path, flags, 0o666)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = "\n" + line
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return size + len(line) - len(line.lstrip("\n"))
