"""`srun expyrun CONFIG` in a job step of several tasks: one run folder, one worker per task.

Task 0 resolves, checks, allocates and snapshots, then publishes the run folder in a claim
(`run/task_claim.py`); its worker starts early, as in a plain launch. Every other task
resolves the config only to find the claim's place (its output dir and name), waits for the
claim, and runs its worker in that folder from its config.yml, as a `--slurm` job does.
"""

from __future__ import annotations

from pathlib import Path

from expyrun import console
from expyrun.launch.execute import run_prepared, supervise_run_folder
from expyrun.launch.options import LaunchOptions
from expyrun.launch.prepare import allocate_and_snapshot, resolve_and_check
from expyrun.run import folder, spawn, task_claim
from expyrun.run.tasks import Task


def launch_task(options: LaunchOptions, task: Task) -> int:
    """Run this task of a multi-task job step in the step's one run folder; its exit code."""
    if task.rank == 0:
        return _launch_first(options, task)
    cwd = Path.cwd()
    resolved, _ = resolve_and_check(options, cwd, quiet=True)  # task 0 shows the warnings
    claim = _claim(options, resolved.run.output_dir, resolved.run.name, task)
    run_dir = task_claim.wait_for_claim(
        claim, task_claim.wait_seconds(), f"{task.describe()} ({task.group})"
    )
    return supervise_run_folder(run_dir, terminal=True, task=task)


def _launch_first(options: LaunchOptions, task: Task) -> int:
    worker = spawn.spawn_worker(
        options.worker_python.executable, merged_output=options.merged_output
    )
    claim: Path | None = None
    try:
        cwd = Path.cwd()
        resolved, location = resolve_and_check(options, cwd)
        claim = _claim(options, resolved.run.output_dir, resolved.run.name, task)
        prepared = allocate_and_snapshot(options, cwd, resolved, location)
        task_claim.publish(claim, prepared.run_dir)
    except BaseException as exc:
        spawn.discard_worker(worker)
        if claim is not None:  # the other tasks stop now, with the same error
            task_claim.publish(claim, None, error=str(exc) or type(exc).__name__)
        raise
    console.info(f"run folder: {prepared.run_dir}")
    console.info(f"{task.world_size} tasks share it ({task.group})")
    return run_prepared(prepared, worker, task=task)


def _claim(options: LaunchOptions, output_dir: Path, name: str, task: Task) -> Path:
    return task_claim.claim_path(folder.name_folder(output_dir, name, options.debug), task.group)
