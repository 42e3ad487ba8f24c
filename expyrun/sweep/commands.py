"""The sweep commands: run a sweep (here or detached), resume one, a detached sweep's supervisor.

`run_sweep` is `expyrun CONFIG --sweep ...` (or a config with `__sweep__`): it resolves and
checks every member first (nothing is created for bad input), prints the plan, records the
sweep (record.py) and runs the members here or, with `--detach`, in one background sweep
supervisor (`background.py`). `resume` is `expyrun sweep resume ID`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from expyrun import console
from expyrun.errors import ExitCode, RunFolderError, UsageError
from expyrun.launch.options import LaunchOptions
from expyrun.run.record import Status, now_iso, process_start_time
from expyrun.sweep import record, tables
from expyrun.sweep.expand import Expansion, expand
from expyrun.sweep.gpus import gpu_list
from expyrun.sweep.options import SweepOptions
from expyrun.sweep.plan import NOT_STARTED, Plan, make_plan, supervisor_running
from expyrun.sweep.schedule import Outcome, Scheduler


def run_sweep(launch: LaunchOptions, sweep: SweepOptions, folder: Path | None = None) -> int:
    """`expyrun CONFIG --sweep KEY VALUES ...`: preview, run here, or detach the sweep.

    `folder`: the recorded sweep to continue (`sweep resume ID`); by default the newest one
    of the same command line, if any.

    Raises:
        UsageError, ConfigError, EntryPointError: bad input; nothing is created.
        RunFolderError: the same sweep is running already.
    """
    if launch.slurm:
        _check_slurm_flags(launch, sweep)
    if launch.nproc > 1:
        raise UsageError("--nproc does not take a sweep yet: each member runs one worker")
    cwd = Path.cwd()
    expansion = expand(launch, sweep, cwd)
    for warning in expansion.warnings:
        console.warning(warning)
    gpus = gpu_list(sweep.gpus, sweep.gpus_per_run)
    if launch.print_config:
        return _preview(make_plan(expansion, launch, sweep, cwd, folder), expansion, sweep)
    if launch.slurm:
        from expyrun.sweep.slurm import check_members

        check_members(expansion.members)
    output_dir = expansion.members[0].resolved.run.output_dir
    lock = record.start_lock(output_dir)
    try:
        plan = make_plan(expansion, launch, sweep, cwd, folder)
        record_folder, found = _open_record(plan, expansion, launch, sweep, cwd)
        if launch.slurm:
            from expyrun.sweep.slurm import submit_sweep

            return submit_sweep(record_folder, found, plan, launch, sweep.parallel)
        if launch.detach:
            from expyrun.sweep.background import start_in_background

            pid = start_in_background(record_folder, cwd)
            console.info(f"sweep {found.id} started in the background (supervisor pid {pid})")
            console.info(f"follow it with: expyrun ls --sweep {found.id} {plan.output_dir}")
            console.out(found.id)
            return ExitCode.OK

        def release() -> None:  # recorded running: the same command now sees it running
            nonlocal lock
            if lock >= 0:
                os.close(lock)
                lock = -1

        return _supervise(record_folder, found, plan, expansion, launch, sweep, cwd, gpus, release)
    finally:
        if lock >= 0:
            os.close(lock)


def _check_slurm_flags(launch: LaunchOptions, sweep: SweepOptions) -> None:
    """Refuse the flags a --slurm sweep cannot honour: Slurm schedules its members."""
    refused = [
        ("--detach", launch.detach, "a --slurm sweep returns once queued"),
        ("--gpus", sweep.gpus is not None, "ask Slurm for GPUs in __slurm__ (gres: gpu:1)"),
        ("--fail-fast", sweep.fail_fast, "every member of the array runs; resume reruns"),
        ("--max-failures", sweep.max_failures is not None, "every member of the array runs"),
        ("--verbose", sweep.verbose, "read a member's output with expyrun logs RUN"),
    ]
    for flag, given, hint in refused:
        if given:
            raise UsageError(f"{flag} does not go with --slurm on a sweep", hint=hint)


def resume(text: str, paths: list[str], detach: bool = False) -> int:
    """`expyrun sweep resume ID`: run the recorded command again from its launch folder."""
    folder = record.find_sweep(text, paths)
    found = record.read(folder)
    launch, sweep = options_of(found, detach=detach)
    os.chdir(found.cwd)
    return run_sweep(launch, sweep, folder)


def supervise_sweep(folder: Path, notify_fd: int | None = None) -> int:
    """`expyrun _sweep SWEEP_DIR`: run a recorded sweep (the detached sweep's supervisor)."""
    found = record.read(folder)
    launch, sweep = options_of(found)
    os.chdir(found.cwd)
    cwd = Path(found.cwd)
    expansion = expand(launch, sweep, cwd)
    gpus = gpu_list(sweep.gpus, sweep.gpus_per_run)
    plan = make_plan(expansion, launch, sweep, cwd, folder)
    if plan.existing is None:  # its config changed since the sweep was recorded: never mix
        raise RunFolderError(
            f"sweep {found.id}: its definition changed since it was recorded", path=folder
        )
    on_running = None
    if notify_fd is not None:
        from expyrun.launch.detach import notifier

        on_running = notifier(notify_fd)
    return _supervise(folder, found, plan, expansion, launch, sweep, cwd, gpus, on_running)


def options_of(
    found: record.SweepRecord, detach: bool = False
) -> tuple[LaunchOptions, SweepOptions]:
    """The launch and sweep options a recorded sweep was started with."""
    options = found.options
    launch = LaunchOptions(
        config_path=found.config_path,
        overrides=tuple(found.overrides),
        debug=bool(options.get("debug")),
        strict=bool(options.get("strict")),
        grace_seconds=options.get("grace_seconds"),
        merged_output=bool(options.get("merged_output")),
        detach=detach,
        slurm=bool(options.get("slurm")),
        command=tuple(found.command),
    )
    fields = {k: v for k, v in options.items() if k in SweepOptions._fields}
    fields["dimensions"] = tuple(tuple(pair) for pair in found.sweep_flags)
    return launch, SweepOptions(**fields)


def _preview(plan: Plan, expansion: Expansion, sweep: SweepOptions) -> int:
    """`--print-config`: the members and what would happen to each; creates nothing."""
    sweep_id = plan.existing[1].id if plan.existing else None
    if plan.changed is not None:
        console.warning(_changed_message(plan.changed.id))
    where = f"sweep {sweep_id}" if sweep_id else "a new sweep"
    console.info(
        f"{where}: {_members(len(plan.steps))} ({_shape(expansion)}); {plan.summary()}; "
        "nothing was created"
    )
    console.out(tables.preview(plan, expansion.keys, sweep.json, sweep_id))
    return ExitCode.OK


def _remove_unrecorded(
    folder: Path, found: record.SweepRecord, expansion: Expansion, debug: bool
) -> None:
    """Remove the folders an earlier start of the sweep prepared but never noted nor ran."""
    from expyrun.run.folder import name_folder
    from expyrun.sweep.member import remove_unrecorded

    runs = (member.resolved.run for member in expansion.members)
    removed = remove_unrecorded(
        folder, found.id, {name_folder(run.output_dir, run.name, debug) for run in runs}
    )
    if removed:
        console.info(
            f"sweep {found.id}: removed {removed} run folder(s) that its last start prepared "
            "but never ran nor noted (it was killed)"
        )


def _open_record(
    plan: Plan,
    expansion: Expansion,
    launch: LaunchOptions,
    sweep: SweepOptions,
    cwd: Path,
) -> tuple[Path, record.SweepRecord]:
    """The record of the sweep resumed, or of a new sweep (made now); the plan is said."""
    if plan.existing is not None:
        folder, found = plan.existing
        if supervisor_running(found):
            raise RunFolderError(
                f"sweep {found.id} is running already (supervisor pid {found.pid})",
                hint=f"expyrun stop {found.id}, or wait for it to end",
            )
        console.info(f"resuming sweep {found.id}: {plan.summary()}")
        _remove_unrecorded(folder, found, expansion, launch.debug)
        return folder, found
    if plan.changed is not None:
        console.warning(_changed_message(plan.changed.id))
    sweep_id, folder = record.create_folder(plan.output_dir)
    found = _new_record(sweep_id, plan, expansion, launch, sweep, cwd)
    record.write(folder, found)
    console.info(f"sweep {sweep_id}: {_members(len(plan.steps))} ({_shape(expansion)})")
    return folder, found


def _new_record(
    sweep_id: str,
    plan: Plan,
    expansion: Expansion,
    launch: LaunchOptions,
    sweep: SweepOptions,
    cwd: Path,
) -> record.SweepRecord:
    """The record of a new sweep: what `sweep resume` and a detached supervisor run again."""
    options: dict[str, Any] = {
        k: v for k, v in sweep._asdict().items() if k not in ("dimensions", "json")
    }
    options.update(
        debug=launch.debug,
        strict=launch.strict,
        grace_seconds=launch.grace_seconds,
        merged_output=launch.merged_output,
    )
    if launch.slurm:
        options["slurm"] = True
    return record.SweepRecord(
        id=sweep_id,
        created_at=now_iso(),
        command=list(launch.command),
        cwd=str(cwd),
        config_path=launch.config_path,
        overrides=list(launch.overrides),
        sweep_flags=[list(pair) for pair in sweep.dimensions],
        dimensions=[
            {"keys": list(d.keys), "values": [list(v) for v in d.values]}
            for d in expansion.dimensions
        ],
        options=options,
        line_key=plan.line_key,
        definition=plan.definition,
        members=[
            {
                "index": m.number,
                "digest": m.digest,
                "values": dict(m.texts),
                "name": m.resolved.run.name,
            }
            for m in expansion.members
        ],
        state="prepared",
    )


def _supervise(
    folder: Path,
    found: record.SweepRecord,
    plan: Plan,
    expansion: Expansion,
    launch: LaunchOptions,
    sweep: SweepOptions,
    cwd: Path,
    gpus: list[str],
    on_running: Any = None,
) -> int:
    """Run the plan's members here; keep the record's state; print the final table."""
    pid = os.getpid()
    running = found.replace(
        state=record.RUNNING,
        pid=pid,
        pid_started_at=process_start_time(pid),
        host=os.uname().nodename,
        started_at=now_iso(),
        ended_at=None,
    )
    record.write(folder, running)
    if on_running is not None:
        on_running()
    scheduler = Scheduler(plan.steps, launch, sweep, cwd, folder, found.id, gpus)
    code: int = ExitCode.SOFTWARE
    started = time.monotonic()
    try:
        code = scheduler.run()
    finally:
        state = record.ENDED if scheduler.interrupted is None else record.INTERRUPTED
        summary: dict[str, int] = {}
        for outcome in scheduler.outcomes:
            summary[outcome.status] = summary.get(outcome.status, 0) + 1
        members = _member_states(running.members, plan, scheduler.outcomes)
        ended = running.replace(state=state, ended_at=now_iso(), summary=summary, members=members)
        record.write(folder, ended)
    console.out(tables.final(plan, expansion.keys, scheduler.outcomes))
    failed = sum(n for status, n in summary.items() if status != Status.SUCCEEDED)
    skipped = len(plan.steps) - len(scheduler.to_run)
    not_started = len(scheduler.to_run) - len(scheduler.outcomes)
    console.info(
        f"sweep {found.id} {state} in {time.monotonic() - started:.1f}s: "
        f"{summary.get(Status.SUCCEEDED, 0)} succeeded, {failed} did not, {skipped} skipped "
        f"(done or running), {not_started} not started"
    )
    return code


def _member_states(
    recorded: list[dict[str, Any]], plan: Plan, outcomes: list[Outcome]
) -> list[dict[str, Any]]:
    """The record's members with their last run folder and its status as the sweep ends.

    A snapshot for whoever reads sweep.json alone; `ls --sweep` reads the members' records.
    """
    ended = {outcome.member.number: outcome for outcome in outcomes}
    steps = {step.member.number: step for step in plan.steps}
    members = []
    for member in recorded:
        number = member.get("index")
        outcome = ended.get(number) if isinstance(number, int) else None
        step = steps.get(number) if isinstance(number, int) else None
        run_dir: str | None
        status: str | None
        if outcome is not None:
            run_dir, status = outcome.run_dir, outcome.status
        elif step is not None and step.last_run is not None:
            run_dir, status = step.last_run, step.last_status
        else:
            run_dir, status = None, NOT_STARTED
        members.append({**member, "run_dir": run_dir, "status": status})
    return members


def _members(count: int) -> str:
    return f"{count} member" if count == 1 else f"{count} members"


def _shape(expansion: Expansion) -> str:
    sizes = " x ".join(f"{len(d.values)} {d.label}" for d in expansion.dimensions)
    if len(expansion.members) < expansion.total:
        sizes += f", {len(expansion.members)} sampled of {expansion.total}"
    return sizes


def _changed_message(old_id: str) -> str:
    return (
        f"the sweep definition changed since sweep {old_id} (its config or its dimensions): "
        "this is a new sweep; the members of the old one are kept as they are"
    )
