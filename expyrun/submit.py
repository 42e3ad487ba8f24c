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
import sys
from pathlib import Path
from typing import Any

from expyrun import __version__, console, pipeline, slurm
from expyrun.errors import ExitCode, SlurmError
from expyrun.run import folder, record, snapshot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from expyrun.config import Resolved
    from expyrun.run.entry import EntryLocation

Option = tuple[str, str | None]
# Each default applies unless one of the names is among the user's options.
_DEFAULTS: tuple[tuple[tuple[str, ...], str, str | None], ...] = (
    (("job-name", "J"), "job-name", None),  # the run's name
    (("output", "o"), "output", None),  # the run folder, or the launch folder for an array
    (("open-mode",), "open-mode", "append"),  # a requeued job appends to its output file
    (("requeue", "no-requeue"), "requeue", None),  # preempted or failed node: requeue, resume
)


def slurm_mapping(resolved: Resolved) -> dict[str, Any]:
    """The `__run__.__slurm__` mapping of a resolved config ({} when absent)."""
    return dict(resolved.run.slurm)


def script_options(user: list[Option], name: str, run_dir: Path | None, cwd: Path) -> list[Option]:
    """expyrun's defaults (unless the user set them), then the user's options in order."""
    given = {option for option, _ in user}
    options: list[Option] = []
    for names, option, value in _DEFAULTS:
        if given.intersection(names):
            continue
        if option == "job-name":
            value = name
        elif option == "output":
            value = str(run_dir / "slurm-%j.out") if run_dir else str(cwd / "slurm-%A_%a.out")
        options.append((option, value))
    return options + user


def output_path(pattern: str, cwd: Path, job_id: str, task: int | None, job_name: str) -> str:
    """Where Slurm writes the job's output: the pattern with what is known at submit filled in.

    An array task gets its own job id (`%j`) only when it starts: the job fills it in
    (`slurm.fill_job_id`).
    """
    path = pattern.replace("%A", job_id).replace("%x", job_name)
    path = path.replace("%j", job_id) if task is None else path.replace("%a", str(task))
    return str(cwd / path)


def _resolve_tasks(
    options: pipeline.LaunchOptions, cwd: Path
) -> tuple[dict[int | None, tuple[Resolved, EntryLocation]], list[Option]]:
    # A first resolution reads the sbatch options. For an array, it lacks the task's variables:
    # a key reading $SLURM_ARRAY_TASK_ID would warn (and fail under --strict) though each task
    # resolves it. So its warnings are dropped, and those of the tasks' resolutions shown.
    probe = options._replace(strict=False)
    resolved, location = pipeline.resolve_and_check(probe, cwd, quiet=True)
    user = slurm.sbatch_options(slurm_mapping(resolved))
    spec = slurm.option_value(user, "array", "a")
    if spec is None:
        if options.strict and resolved.warnings:
            raise resolved.warnings[0]  # what the strict resolution raises
        for warning in resolved.warnings:
            console.warning(warning)
        return {None: (resolved, location)}, user
    ids = slurm.array_task_ids(spec)
    tasks: dict[int | None, tuple[Resolved, EntryLocation]] = {}
    shown: set[str] = set()
    for task in ids:
        environ = {**os.environ, **slurm.array_environ(task, ids)}
        tasks[task] = pipeline.resolve_and_check(options, cwd, environ=environ, quiet=True)
        for text in map(str, tasks[task][0].warnings):
            if text not in shown:  # once, not once per task
                shown.add(text)
                console.warning(text)
    return tasks, user


def submit(options: pipeline.LaunchOptions) -> int:
    """Prepare the run folder(s), submit the batch script, record `pending`; print the job id
    and the run folder(s), the last line of stdout."""
    cwd = Path.cwd()
    tasks, user = _resolve_tasks(options, cwd)  # every error in the input is found here
    prepared: dict[int | None, pipeline.PreparedRun] = {}
    try:
        for task, (resolved, location) in tasks.items():
            prepared[task] = pipeline.allocate_and_snapshot(options, cwd, resolved, location)
        first = next(iter(prepared.values()))
        run_dirs = [run.run_dir for run in prepared.values()]
        environment = pipeline.snapshot_environment(first.resolved.run.code_dir, run_dirs, options)
        single = first.run_dir if None in prepared else None
        sbatch = script_options(user, first.resolved.run.name, single, cwd)
        text = slurm.render_script(
            sys.executable,
            {task: run.run_dir for task, run in prepared.items()},
            sbatch,
            options.command,
            __version__,
        )
        _write_scripts(run_dirs, text)
        job_id = slurm.submit(first.run_dir / slurm.SCRIPT_FILE, hold=True)
    except BaseException:
        _remove(prepared)
        raise
    try:
        _record_pending(prepared, job_id, sbatch, cwd, environment)
        if slurm.option_value(user, "hold", "H") is None:
            slurm.release(job_id)
    except BaseException:
        try:
            slurm.cancel(job_id)
        except SlurmError as exc:
            console.warning(f"could not cancel job {job_id}: {exc}")
        _remove(prepared)
        raise
    held = "" if slurm.option_value(user, "hold", "H") is None else " (held: scontrol release)"
    count = f" ({len(prepared)} array tasks)" if None not in prepared else ""
    for run_dir in run_dirs:
        console.info(f"run folder: {run_dir}")
    console.info(f"submitted Slurm job {job_id}{count}{held}")
    console.info(f"follow it with: expyrun status {run_dirs[0]}")
    console.out(job_id)
    for run_dir in run_dirs:
        console.out(str(run_dir))
    return ExitCode.OK


def _write_scripts(run_dirs: list[Path], text: str) -> None:
    """slurm.sbatch in each run folder: written once, hard-linked into the other tasks'."""
    script = run_dirs[0] / slurm.SCRIPT_FILE
    snapshot.write_text_file(script, text)
    script.chmod(0o755 & ~_umask())
    for run_dir in run_dirs[1:]:
        try:
            os.link(script, run_dir / slurm.SCRIPT_FILE)
        except OSError:  # another file system, or one without hard links
            snapshot.write_text_file(run_dir / slurm.SCRIPT_FILE, text)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _record_pending(
    prepared: dict[int | None, pipeline.PreparedRun],
    job_id: str,
    sbatch: list[Option],
    cwd: Path,
    environment: dict[str, Any],
) -> None:
    submitted_at = record.now_iso()
    pattern = slurm.option_value(sbatch, "output", "o") or "slurm-%j.out"
    job_name = slurm.option_value(sbatch, "job-name", "J") or ""
    for task, run in prepared.items():
        fields: dict[str, Any] = {"job_id": job_id}
        if task is not None:
            fields.update(array_job_id=job_id, array_task_id=str(task))
        fields.update(
            submitted_at=submitted_at,
            submit_host=os.uname().nodename,
            script=slurm.SCRIPT_FILE,
            output=output_path(pattern, cwd, job_id, task, job_name),
        )
        pending = run.record.replace(status="pending", slurm=fields, **environment)
        record.write_record(run.run_dir, pending)


def _remove(prepared: dict[int | None, pipeline.PreparedRun]) -> None:
    for run in reversed(prepared.values()):
        folder.remove_created(list(run.created))
