"""`srun expyrun CONFIG` in a job step of several tasks: one run folder, one worker per task.

Task 0 resolves, checks, allocates and snapshots, then publishes the run folder in a claim
(`run/task_claim.py`); its worker starts early, as in a plain launch. Every other task
resolves the config only to find the claim's place (its output dir and name), waits for the
claim, and runs its worker in that folder from its config.yml, as a `--slurm` job does.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from expyrun import console, started
from expyrun.launch.execute import run_prepared
from expyrun.launch.options import LaunchOptions
from expyrun.launch.prepare import allocate_and_snapshot, resolve_and_check
from expyrun.launch.prepared_folder import supervise_run_folder
from expyrun.run import folder, spawn, task_claim
from expyrun.run.tasks import Task


def launch_task(options: LaunchOptions, task: Task) -> int:
    """Run this task of a multi-task job step in the step's one run folder; its exit code."""
    if task.rank == 0:
        return _launch_first(options, task)
    from expyrun.config import resolve

    # Only where the claim is (a bad config fails here as in task 0); task 0 checks the entry
    # point and shows the warnings.
    resolved = resolve(options.config_path, options.overrides, cwd=Path.cwd())
    claim = _claim(options, resolved.run.output_dir, resolved.run.name, task)
    who = f"{task.describe()} ({task.group})"
    timeout = task_claim.wait_seconds()

    def on_wait() -> None:
        # The wait may last minutes (EXPYRUN_TASK_WAIT): not with the collector off.
        started()
        console.info(f"{who}: waiting for task 0's run folder (at most {timeout:g} s)")

    run_dir = task_claim.wait_for_claim(claim, timeout, who, on_wait)
    return supervise_run_folder(run_dir, terminal=True, task=task)


def _launch_first(options: LaunchOptions, task: Task) -> int:
    worker = spawn.spawn_worker(
        options.worker_python.executable, merged_output=options.merged_output
    )
    prepared = None
    try:
        cwd = Path.cwd()
        resolved, location = resolve_and_check(options, cwd)
        prepared = allocate_and_snapshot(options, cwd, resolved, location)
        claim = _claim(options, resolved.run.output_dir, resolved.run.name, task)
        task_claim.publish(claim, prepared.run_dir)
    except BaseException as exc:
        spawn.discard_worker(worker)
        if prepared is not None:
            folder.remove_created(list(prepared.created))
        found = _find_claim(options, task)
        if found is not None:  # the other tasks stop now, with the same error
            with contextlib.suppress(OSError):
                task_claim.publish(found, None, error=str(exc) or type(exc).__name__)
        raise
    console.info(f"run folder: {prepared.run_dir}")
    console.info(f"{task.world_size} tasks share it ({task.group})")
    return run_prepared(prepared, worker, task=task)


def _find_claim(options: LaunchOptions, task: Task) -> Path | None:
    """The claim's place, from the config resolved without --strict; None if it cannot be."""
    from expyrun.config import resolve
    from expyrun.errors import ExpyrunError

    try:
        resolved = resolve(options.config_path, options.overrides, cwd=Path.cwd())
        return _claim(options, resolved.run.output_dir, resolved.run.name, task)
    except ExpyrunError:
        return None


def _claim(options: LaunchOptions, output_dir: Path, name: str, task: Task) -> Path:
    return task_claim.claim_path(folder.name_folder(output_dir, name, options.debug), task.group)
