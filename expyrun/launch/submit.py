"""`expyrun CONFIG --slurm`: prepare the run folder now, run it in a Slurm job later.

Everything is taken at submit time: the config is resolved, the run folder allocated, the
code copied, the requirements frozen and the git state read, so that edits made while the
job waits in the queue do not reach it. The batch script, `slurm.sbatch` in the run folder,
runs that folder (`exec python -m expyrun _supervise RUN_DIR`): expyrun is the batch task and
gets Slurm's signals. The record says `pending`, with the job id, until the job starts.

An array (`__slurm__: {array: 0-3}`) gets one run folder per task, each prepared at submit
time with its config resolved as that task will see it (`$SLURM_ARRAY_TASK_ID` is set); the
script picks the task's folder. The job is submitted held and released once every record
names it, so a job that starts at once never races its own record.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from expyrun import __version__, console
from expyrun.errors import STOP_SIGNALS, ExitCode, SlurmError
from expyrun.launch.options import LaunchOptions
from expyrun.launch.prepare import PreparedRun, allocate_and_snapshot, resolve_and_check
from expyrun.launch.recording import snapshot_environment
from expyrun.run import folder, record, snapshot
from expyrun.run.folder import SCRIPT_FILE
from expyrun.run.record import Status
from expyrun.slurm import commands, script
from expyrun.slurm.script import Option

if TYPE_CHECKING:
    from expyrun.config import Resolved
    from expyrun.run.entry import EntryLocation


def slurm_mapping(resolved: Resolved) -> dict[str, Any]:
    """The `__run__.__slurm__` mapping of a resolved config ({} when absent)."""
    return dict(resolved.run.slurm)


def _resolve_tasks(
    options: LaunchOptions, cwd: Path
) -> tuple[dict[int | None, tuple[Resolved, EntryLocation]], list[Option]]:
    # A first resolution reads the sbatch options. For an array, it lacks the task's variables:
    # a key reading $SLURM_ARRAY_TASK_ID would warn (and fail under --strict) though each task
    # resolves it. So its warnings are dropped, and those of the tasks' resolutions shown.
    probe = options._replace(strict=False)
    resolved, location = resolve_and_check(probe, cwd, quiet=True)
    user = script.sbatch_options(slurm_mapping(resolved))
    spec = script.option_value(user, "array", "a")
    if spec is None:
        if options.strict and resolved.warnings:
            raise resolved.warnings[0]  # what the strict resolution raises
        for warning in resolved.warnings:
            console.warning(warning)
        return {None: (resolved, location)}, user
    ids = script.array_task_ids(spec)
    tasks: dict[int | None, tuple[Resolved, EntryLocation]] = {}
    shown: set[str] = set()
    for task in ids:
        environ = {**os.environ, **script.array_environ(task, ids)}
        tasks[task] = resolve_and_check(options, cwd, environ=environ, quiet=True)
        for text in map(str, tasks[task][0].warnings):
            if text not in shown:  # once, not once per task
                shown.add(text)
                console.warning(text)
    return tasks, user


def submit(options: LaunchOptions) -> int:
    """Prepare the run folder(s), submit the batch script, record `pending`; print the job id
    and the run folder(s), the last line of stdout."""
    cwd = Path.cwd()
    tasks, user = _resolve_tasks(options, cwd)  # every error in the input is found here
    prepared: dict[int | None, PreparedRun] = {}
    job_id: str | None = None
    try:
        for task, (resolved, location) in tasks.items():
            prepared[task] = allocate_and_snapshot(options, cwd, resolved, location)
        first = next(iter(prepared.values()))
        run_dirs = [run.run_dir for run in prepared.values()]
        environment = snapshot_environment(first.resolved.run.code_dir, run_dirs, options)
        single = first.run_dir if None in prepared else None
        sbatch = script.script_options(user, first.resolved.run.name, single, cwd)
        text = script.render_script(
            sys.executable,
            {task: run.run_dir for task, run in prepared.items()},
            sbatch,
            options.command,
            __version__,
        )
        write_scripts(run_dirs, text)
        # A stop signal during sbatch (bounded by its timeout) waits until the job id is
        # known: sbatch killed after the controller took the job, or a signal before its id
        # was read, left the job held in the queue for good, its run folder removed.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            job_id = commands.submit(first.run_dir / SCRIPT_FILE, hold=True)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # one held back is raised here
        record_pending(prepared, job_id, sbatch, cwd, environment)
        if script.option_value(user, "hold", "H") is None:
            commands.release(job_id)
    except BaseException:
        if job_id is not None:
            try:
                commands.cancel(job_id)
            except SlurmError as exc:
                console.warning(f"could not cancel job {job_id}: {exc}")
        remove_prepared(prepared)
        raise
    held = "" if script.option_value(user, "hold", "H") is None else " (held: scontrol release)"
    count = f" ({len(prepared)} array tasks)" if None not in prepared else ""
    for run_dir in run_dirs:
        console.info(f"run folder: {run_dir}")
    console.info(f"submitted Slurm job {job_id}{count}{held}")
    console.info(f"follow it with: expyrun status {run_dirs[0]}")
    console.out(job_id)
    for run_dir in run_dirs:
        console.out(str(run_dir))
    return ExitCode.OK


def write_scripts(run_dirs: list[Path], text: str, first: Path | None = None) -> None:
    """slurm.sbatch in each run folder: written once, hard-linked into the other tasks'.

    `first`: where to write it first (a sweep's: in its record), by default the first folder's.
    """
    links = run_dirs if first is not None else run_dirs[1:]
    first = first if first is not None else run_dirs[0] / SCRIPT_FILE
    snapshot.write_text_file(first, text)
    first.chmod(0o755 & ~folder.current_umask())
    for run_dir in links:
        try:
            os.link(first, run_dir / SCRIPT_FILE)
        except OSError:  # another file system, or one without hard links
            snapshot.write_text_file(run_dir / SCRIPT_FILE, text)


def record_pending(
    prepared: dict[int | None, PreparedRun],
    job_id: str,
    sbatch: list[Option],
    cwd: Path,
    environment: dict[str, Any],
) -> None:
    """Each prepared folder's record says `pending`, with the job (array task) that runs it."""
    submitted_at = record.now_iso()
    pattern = script.option_value(sbatch, "output", "o") or "slurm-%j.out"
    job_name = script.option_value(sbatch, "job-name", "J") or ""
    for task, run in prepared.items():
        fields: dict[str, Any] = {"job_id": job_id}
        if task is not None:
            fields.update(array_job_id=job_id, array_task_id=str(task))
        fields.update(
            submitted_at=submitted_at,
            submit_host=os.uname().nodename,
            script=SCRIPT_FILE,
            output=script.output_path(pattern, cwd, job_id, task, job_name),
        )
        pending = run.record.replace(status=Status.PENDING.value, slurm=fields, **environment)
        record.write_record(run.run_dir, pending)


def remove_prepared(prepared: dict[int | None, PreparedRun]) -> None:
    """Remove what preparing these run folders created (a submission that failed)."""
    for run in reversed(prepared.values()):
        folder.remove_created(list(run.created))
