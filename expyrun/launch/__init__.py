"""A launch, from `LaunchOptions` to a recorded run: here, detached, or via Slurm.

`launch()` chooses the mode: `--print-config` (nothing is created), `--slurm` (`submit`),
`--detach` (`detach`), a requeued Slurm job resuming its run folder, else here: the worker's
interpreter starts first and waits, so its start-up overlaps the preparation (`prepare`),
then the run is supervised and recorded (`execute`). Slow recording work (frozen requirements,
git state) runs in a thread while the worker runs (`recording`).

`submit` and `detach` are imported when asked for: a plain launch does not pay for them. The
worker is spawned before the config engine, YAML and the supervisor are imported, so its
interpreter's start-up (~20 ms) overlaps those imports too (benchmarks/launch_overhead.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from expyrun import started
from expyrun.errors import UsageError
from expyrun.launch.options import LaunchOptions
from expyrun.run import spawn
from expyrun.slurm import tasks as slurm_tasks

if TYPE_CHECKING:
    from expyrun.run.tasks import Task

__all__ = ["LaunchOptions", "launch", "supervise"]


def launch(options: LaunchOptions) -> int:
    """`expyrun CONFIG ...`: prepare the run folder, then run it here, in the background, or
    in a Slurm job; in a requeued Slurm job, resume the run folder of its earlier start."""
    if options.print_config:
        from expyrun.launch.prepare import print_config

        return print_config(options)
    several_tasks = slurm_tasks.several_tasks_here(os.environ)
    if several_tasks and (options.slurm or options.detach) and not options.nproc:
        # Each task would make a run of its own (and wait for the others' entries for good).
        flag = "--slurm" if options.slurm else "--detach"
        world = os.environ.get(slurm_tasks.STEP_TASKS_VARIABLE)
        raise UsageError(
            f"{flag} in a job step of {world} tasks: each task would make a run of its own",
            hint="run `srun expyrun CONFIG` without it, or --slurm from outside the step",
        )
    if options.nproc or several_tasks:
        return _launch_tasks(options)
    if options.slurm:
        if options.detach:
            raise UsageError("--slurm and --detach exclude each other: a Slurm job runs apart")
        from expyrun.launch.submit import submit

        return submit(options)
    if options.detach:
        from expyrun.launch.detach import detach

        return detach(options)
    # The worker's interpreter starts now and waits: its start-up overlaps the imports below
    # and the preparation.
    worker = spawn.spawn_worker(
        options.worker_python.executable, merged_output=options.merged_output
    )
    try:
        from expyrun.launch.execute import run_prepared
        from expyrun.launch.prepare import prepare
        from expyrun.slurm import job as slurm_job

        resumed = None
        if slurm_job.restart_count(os.environ) > 0:
            resumed = _requeued_run_folder(options)
        prepared = None if resumed is not None else prepare(options)
    except BaseException:
        spawn.discard_worker(worker)
        raise
    if resumed is not None:
        # A requeued job resumes its run folder with the interpreter recorded there.
        spawn.discard_worker(worker)
        from expyrun.launch.prepared_folder import supervise_run_folder

        return supervise_run_folder(resumed, terminal=True)
    assert prepared is not None  # noqa: S101 - for the type checker
    return run_prepared(prepared, worker, announce=True)


def _launch_tasks(options: LaunchOptions) -> int:
    """`--nproc N`, or this process is a task of a Slurm job step of several tasks."""
    task = None if options.slurm or options.detach else slurm_tasks.step_task(os.environ)
    _check_nproc(options, task)
    if options.nproc:
        from expyrun.launch.nproc import launch_nproc

        started()  # the launcher waits for its tasks as long as the run lasts
        return launch_nproc(options, options.nproc)
    assert task is not None  # noqa: S101 - several_tasks_here said so
    from expyrun.launch.tasks import launch_task

    return launch_task(options, task)


def _check_nproc(options: LaunchOptions, task: Task | None) -> None:
    """--nproc N runs N workers here: not in a job step that already has several tasks, nor
    detached or submitted (a --slurm job gets its tasks from `ntasks` in __slurm__)."""
    if not options.nproc:
        return
    if options.slurm:
        raise UsageError(
            "--nproc and --slurm exclude each other",
            hint="ask Slurm for tasks in the config: --__run__.__slurm__.ntasks N",
        )
    if options.detach:
        raise UsageError("--nproc cannot be detached yet: run it in tmux or screen, or --slurm")
    if task is not None:
        raise UsageError(
            f"--nproc in a job step of {task.world_size} tasks: srun starts the tasks already"
        )


def supervise(
    run_dir: Path,
    notify_fd: int | None = None,
    copy_output: bool = False,
    rank: int | None = None,
    ntasks: int | None = None,
) -> int:
    """`expyrun _supervise RUN_DIR`: run a prepared run folder (internal).

    `--detach` starts it with `notify_fd` (its output goes to outputs.log only), a `--slurm`
    batch script with `copy_output` (also to the job's output file). `--nproc` starts one per
    task with `rank` and `ntasks`; in a Slurm job step of several tasks (`srun` in a `--slurm`
    script), each task finds its rank in srun's variables.
    """
    # The worker's interpreter starts before the supervisor's modules are imported, as in
    # `launch` (a sweep member, a --detach or --nproc task, a Slurm job start pays a launch).
    worker = _early_worker(run_dir, detached=not copy_output)
    try:
        from expyrun.launch.prepared_folder import supervise_run_folder

        task: Task | None
        if rank is not None:
            from expyrun.launch.nproc import local_task

            task = local_task(rank, ntasks or 1)
        else:
            task = slurm_tasks.step_task(os.environ)

        on_running = None
        if notify_fd is not None:
            from expyrun.launch.detach import notifier

            on_running = notifier(notify_fd)
    except BaseException:
        if worker is not None:
            spawn.discard_worker(worker)
        raise
    return supervise_run_folder(
        run_dir, terminal=copy_output, on_running=on_running, task=task, worker=worker
    )


def _early_worker(run_dir: Path, detached: bool) -> spawn.Worker | None:
    """A worker for the interpreter the folder's run.json names; None when it cannot tell.

    Only a guess to save time: `supervise_run_folder` reads the record properly, and
    discards this worker when the folder cannot run or wants another interpreter.
    """
    import json

    from expyrun.run.record import RECORD_FILE

    try:
        with open(run_dir / RECORD_FILE, encoding="utf-8") as file:
            data = json.load(file)
        python = data["python"]["executable"]
        merged = bool(data.get("merged_output"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(python, str):
        return None
    try:
        return spawn.spawn_worker(python, detached=detached, merged_output=merged)
    except Exception:  # the guess failed: supervise_run_folder says why
        return None


def _requeued_run_folder(options: LaunchOptions) -> Path | None:
    """In a requeued Slurm job: the run folder an earlier start of the job made, if any."""
    from expyrun import console
    from expyrun.config import resolve
    from expyrun.launch.prepare import stored_configs
    from expyrun.run import folder, snapshot
    from expyrun.slurm import job as slurm_job

    cwd = Path.cwd()
    resolved = resolve(options.config_path, options.overrides, strict=options.strict, cwd=cwd)
    spec = resolved.run
    parent = folder.name_folder(spec.output_dir, spec.name, options.debug)
    run_dir = slurm_job.find_requeued_run(parent, os.environ)
    if run_dir is None:
        return None
    try:
        stored = (run_dir / snapshot.CONFIG_FILE).read_text(encoding="utf-8")
    except OSError:
        stored = None
    if stored != stored_configs(resolved, run_dir, options.debug)[0]:
        console.warning(
            f"{options.config_path} now resolves to another config than when the run started: "
            "the resumed run keeps its own config.yml and code copy"
        )
    return run_dir
