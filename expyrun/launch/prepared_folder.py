"""Run a run folder prepared earlier: by `--detach`, at `--slurm` submission, a sweep member, a
task of a multi-task run, or a requeued Slurm job's first folder.

The folder is checked (a run folder runs once, except as a new attempt of its Slurm job), the
config is resolved again from its config.yml, and the run goes through `execute.run_prepared`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from expyrun.errors import Interrupted, RunFolderError
from expyrun.launch.execute import run_prepared
from expyrun.launch.final_record import record_stopped_before_start
from expyrun.launch.options import Interpreter, LaunchOptions
from expyrun.launch.prepare import PreparedRun, source_from_record
from expyrun.run import record, snapshot, spawn, tasks
from expyrun.run.record import NOT_STARTED, RunRecord, Status
from expyrun.run.tasks import Task
from expyrun.slurm import commands as slurm_commands
from expyrun.slurm import job as slurm_job
from expyrun.slurm.job import SlurmJob


def _check_runnable(run_dir: Path, found: RunRecord, task: Task | None = None) -> None:
    """Refuse to run a folder that ran already, unless this is a requeue of its Slurm job.

    A task of a multi-task run runs in a folder its other tasks may have started: it is
    refused only if this task ran there already (or a submitted folder's job is another).
    """
    recorded = found.slurm
    if task is not None and tasks.already_ran(run_dir, task.rank):
        raise RunFolderError(f"{task.describe()} already ran: a run folder runs once", path=run_dir)
    if found.status in NOT_STARTED or task is not None:
        handle = slurm_commands.job_handle(recorded or {})
        submitted = found.status == Status.PENDING and handle is not None
        current = SlurmJob.from_environ(os.environ)
        fields = current.fields() if current is not None else None
        if submitted and not slurm_job.same_job(recorded, fields):
            raise RunFolderError(
                f"the run folder waits for Slurm job {handle}: it runs in that job only",
                path=run_dir,
            )
        return
    if slurm_job.is_requeue_of(recorded, os.environ):
        return
    raise RunFolderError(f"the run is already {found.status}: a run folder runs once", path=run_dir)


def supervise_run_folder(
    run_dir: Path,
    terminal: bool,
    on_running: Callable[[], None] | None = None,
    task: Task | None = None,
    worker: spawn.Worker | None = None,
) -> int:
    """Run a run folder prepared earlier (by `--detach`, or at `--slurm` submission).

    What to run comes from the folder itself: the record says which entry point, from which
    cwd, in which mode; config.yml, resolved again, gives the same config (its round trip).
    A folder that already ran is run again only by a requeued start of its Slurm job: as a
    new attempt. `terminal`: copy the output to our stdout/stderr (the job's output file).
    `task`: run one task of a multi-task run in the folder (see run/tasks.py). `worker`: one
    spawned early by the caller (`launch.supervise`) with the record's interpreter; this
    function owns it from here on (discards it when the folder cannot run).
    """
    from expyrun.config import resolve

    prepared_record: RunRecord | None = None
    try:
        try:
            found = record.read_record(run_dir)
        except (OSError, ValueError) as exc:
            raise RunFolderError(f"not a prepared run folder: {exc}", path=run_dir) from exc
        _check_runnable(run_dir, found, task)
        prepared_record = found
        python = Interpreter(
            prepared_record.python["executable"], prepared_record.python.get("version", "")
        )
        if worker is not None and (
            worker.python != python.executable
            or worker.merged_output != prepared_record.merged_output
        ):
            spawn.discard_worker(worker)  # spawned for another interpreter or output mode
            worker = None
        if worker is None:
            worker = spawn.spawn_worker(
                python.executable,
                detached=not terminal,
                merged_output=prepared_record.merged_output,
            )
        cwd = Path(prepared_record.cwd)
        resolved = resolve(run_dir / snapshot.CONFIG_FILE, cwd=cwd)
        options = LaunchOptions(
            config_path=str(run_dir / snapshot.CONFIG_FILE),
            debug=prepared_record.debug,
            grace_seconds=prepared_record.grace_s,
            merged_output=prepared_record.merged_output,
            command=tuple(prepared_record.command),
            python=python,
            source=source_from_record(prepared_record),
        )
        prepared = PreparedRun(run_dir, resolved, options, cwd, prepared_record)
    except BaseException as exc:
        if worker is not None:
            spawn.discard_worker(worker)
        if isinstance(exc, (KeyboardInterrupt, Interrupted)) and prepared_record is not None:
            # A sweep member, a detached run or a job stopped as it starts: the folder will
            # not run, its record says so (not `prepared` for good, nor `lost`).
            record_stopped_before_start(run_dir, prepared_record, task, exc)
        raise
    return run_prepared(
        prepared,
        worker,
        terminal=terminal,
        on_running=on_running,
        task=task,
        announce=terminal and task is None,
    )
