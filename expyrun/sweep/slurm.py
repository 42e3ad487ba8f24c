"""`expyrun CONFIG --sweep ... --slurm`: the sweep as Slurm job arrays, submitted and left.

Every member to run is prepared at submit time, as a single `--slurm` run is (config resolved,
run folder allocated, code copied, requirements frozen, git state read): code edited after the
submission never reaches a member. The members then go to Slurm as one job array: array task
N runs `expyrun _supervise` of its member's run folder, the mapping from task id to run folder
being written into the batch script (`{sweep record}/array-K.sbatch`, hard-linked as each
member's `slurm.sbatch`). `--parallel P` is the array's `%P` throttle. Nothing of expyrun's
stays on the login node: the command returns once the arrays are queued.

Task ids are the members' numbers, so `squeue` and the member lines agree (`--array=3,7,12`
on a resume). Slurm refuses a task id >= `MaxArraySize` (`scontrol show config`): a larger
sweep is split into arrays of at most that many ids, array k taking the members
k*MaxArraySize .. (k+1)*MaxArraySize-1 as task ids 0..MaxArraySize-1, each array after the
first depending on the previous one (`afterany`) so that `%P` still bounds the whole sweep.

The sweep record (`sweep.json`) keeps every job id in `slurm_jobs`; `expyrun stop SWEEP_ID`
cancels them all. Members' run.json are `pending` until their task starts, as for any
`--slurm` run, and Slurm's state of a pending member is asked (one squeue for all) by resume
and by `ls --sweep`.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from expyrun import __version__, console
from expyrun.errors import ConfigError, ExitCode, SlurmError, UsageError
from expyrun.launch.options import LaunchOptions
from expyrun.launch.prepare import PreparedRun
from expyrun.launch.recording import snapshot_environment
from expyrun.launch.submit import record_pending, remove_prepared, slurm_mapping, write_scripts
from expyrun.run.record import now_iso
from expyrun.slurm import commands, script
from expyrun.slurm.script import Option
from expyrun.sweep import record
from expyrun.sweep.expand import Member
from expyrun.sweep.member import prepare_member
from expyrun.sweep.plan import SKIP, Plan

# Test hook: the MaxArraySize expyrun assumes instead of asking `scontrol show config`. Read
# only by expyrun (Slurm ignores it); the tests use it to split a sweep without restarting the
# test cluster's slurmctld (MaxArraySize is read at its start only).
MAX_ARRAY_SIZE_VARIABLE = "EXPYRUN_TEST_MAX_ARRAY_SIZE"
# Slurm's default (slurm.conf(5)), assumed when the configuration does not say.
DEFAULT_MAX_ARRAY_SIZE = 1001
SCRIPT_PATTERN = "array-{}.sbatch"
_MAX_ARRAY_SIZE = re.compile(r"^\s*MaxArraySize\s*=\s*(\d+)\s*$", re.MULTILINE)


def parse_max_array_size(text: str) -> int:
    """MaxArraySize from the text of `scontrol show config` (Slurm's default when absent)."""
    match = _MAX_ARRAY_SIZE.search(text)
    return int(match.group(1)) if match else DEFAULT_MAX_ARRAY_SIZE


def max_array_size() -> int:
    """The cluster's MaxArraySize: task ids go from 0 to MaxArraySize - 1 (slurm.conf(5)).

    The test hook `EXPYRUN_TEST_MAX_ARRAY_SIZE` wins; else `scontrol show config`.
    Raises SlurmError when scontrol fails, UsageError for a bad hook value.
    """
    hook = os.environ.get(MAX_ARRAY_SIZE_VARIABLE)
    if hook:
        if not hook.isdigit() or int(hook) < 1:
            raise UsageError(f"{MAX_ARRAY_SIZE_VARIABLE}={hook!r} is not a positive integer")
        return int(hook)
    return parse_max_array_size(commands.call(["scontrol", "show", "config"]))


def split_arrays(numbers: Sequence[int], size: int) -> list[dict[int, int]]:
    """Member numbers as arrays of task ids below `size`: [{task id: member number}, ...].

    Array k holds the members k*size .. (k+1)*size - 1 as task ids 0 .. size-1 (so below
    `size`, a task id is its member's number); arrays without a member are left out.
    """
    arrays: dict[int, dict[int, int]] = {}
    for number in sorted(numbers):
        arrays.setdefault(number // size, {})[number % size] = number
    return [arrays[k] for k in sorted(arrays)]


def array_spec(task_ids: Sequence[int], parallel: int | None) -> str:
    """`--array` of these ids, runs of consecutive ids as ranges: `1-6%2`, `3,7,12`."""
    parts: list[str] = []
    ids = sorted(task_ids)
    start = previous = ids[0]
    for task in [*ids[1:], None]:
        if task is not None and task == previous + 1:
            previous = task
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if task is not None:
            start = previous = task
    spec = ",".join(parts)
    return spec if parallel is None else f"{spec}%{parallel}"


def check_members(members: Sequence[Member]) -> None:
    """Refuse, before anything is made, members that cannot share one array (see below)."""
    _sbatch_options(members)


def _sbatch_options(members: Sequence[Member]) -> list[Option]:
    """The members' `__slurm__` options: one array, so they must be the same for all.

    Raises UsageError (members differ), ConfigError (an `array` of the user's).
    """
    first = script.sbatch_options(slurm_mapping(members[0].resolved))
    for member in members[1:]:
        if script.sbatch_options(slurm_mapping(member.resolved)) != first:
            raise UsageError(
                f"member {member.number} asks Slurm for other resources than member "
                f"{members[0].number}: the members of a --slurm sweep share one job array",
                hint="sweep __slurm__ keys in separate sweeps",
            )
    if script.option_value(first, "array", "a") is not None:
        raise ConfigError(
            "a --slurm sweep makes its own job array of the members",
            key="__run__.__slurm__.array",
            hint="remove array: the sweep's members are the array's tasks",
        )
    return first


def submit_sweep(
    folder: Path, found: record.SweepRecord, plan: Plan, launch: LaunchOptions, parallel: int | None
) -> int:
    """Prepare the plan's members to run and submit them as job array(s); record the jobs.

    Prints the sweep id then each job id on stdout. Raises SlurmError (nothing is kept of
    this submission: folders removed, jobs cancelled), UsageError/ConfigError (bad input).
    """
    cwd = Path.cwd()
    steps = [step for step in plan.steps if step.action != SKIP]
    if not steps:
        console.info(f"sweep {found.id}: every member is done or queued; nothing submitted")
        console.out(found.id)
        return ExitCode.OK
    user = _sbatch_options([step.member for step in steps])
    held = script.option_value(user, "hold", "H") is not None
    user = [(name, value) for name, value in user if name not in ("hold", "H")]
    size = max_array_size()
    count = len(plan.steps)
    prepared: dict[int, PreparedRun] = {}
    jobs: list[dict[str, Any]] = []
    try:
        for step in steps:
            prepared[step.member.number] = prepare_member(
                launch, cwd, found.id, count, step.member, warn_paths=not prepared
            )
        environment = _snapshot_environments(list(prepared.values()), launch)
        first_job = len(found.slurm_jobs or [])
        previous: str | None = None
        for k, tasks in enumerate(split_arrays(list(prepared), size), start=first_job):
            spec = array_spec(list(tasks), parallel)
            options = script.script_options(_defaults(user, folder), f"sweep-{found.id}", None, cwd)
            options.append(("array", spec))
            if previous is not None:  # %P bounds the whole sweep: one array after the other
                options.append(("dependency", f"afterany:{previous}"))
            by_task = {task: prepared[number] for task, number in tasks.items()}
            text = script.render_script(
                sys.executable,
                {task: run.run_dir for task, run in by_task.items()},
                options,
                launch.command,
                __version__,
            )
            batch = folder / SCRIPT_PATTERN.format(k)
            write_scripts([run.run_dir for run in by_task.values()], text, first=batch)
            job_id = commands.submit(batch, hold=True)
            jobs.append(
                {
                    "job_id": job_id,
                    "array": spec,
                    "members": {str(task): number for task, number in tasks.items()},
                    "script": str(batch),
                    "submitted_at": now_iso(),
                }
            )
            previous = job_id
            for task, run in by_task.items():
                one: dict[int | None, PreparedRun] = {task: run}
                record_pending(one, job_id, options, cwd, environment[run.run_dir])
        for step in steps:
            number = step.member.number
            record.append_member(folder, number, step.member.digest, prepared[number].run_dir)
        submitted = found.replace(
            state=record.SUBMITTED,
            slurm_jobs=[*(found.slurm_jobs or []), *jobs],
            submitted_at=now_iso(),
            ended_at=None,  # of its last submission, if it had ended: it runs again
            summary=None,
        )
        record.write(folder, submitted)
        if not held:
            for job in jobs:
                commands.release(job["job_id"])
    except BaseException:
        _undo(jobs, prepared)
        if not found.slurm_jobs and not (folder / record.MEMBERS_FILE).exists():
            shutil.rmtree(folder, ignore_errors=True)  # a new sweep that never was
        raise
    _say_submitted(found.id, jobs, len(prepared), held, plan.output_dir)
    return ExitCode.OK


def _say_submitted(
    sweep_id: str, jobs: list[dict[str, Any]], count: int, held: bool, output_dir: Path
) -> None:
    """What was submitted (stderr); the sweep id, then each job id (stdout)."""
    ids = [job["job_id"] for job in jobs]
    arrays = ", ".join(f"{job['job_id']} (--array={job['array']})" for job in jobs)
    members = "1 member" if count == 1 else f"{count} members"
    console.info(f"sweep {sweep_id}: {members} submitted as Slurm job {arrays}")
    if held:
        console.info("held: scontrol release " + " ".join(ids))
    console.info(f"follow it with: expyrun ls --sweep {sweep_id} {output_dir}")
    console.out(sweep_id)
    for job_id in ids:
        console.out(job_id)


def _defaults(user: list[Option], folder: Path) -> list[Option]:
    """The user's options, with Slurm's own output file in the sweep record by default."""
    if script.option_value(user, "output", "o") is None:
        return [("output", str(folder / "slurm-%A_%a.out")), *user]
    return user


def _snapshot_environments(
    runs: list[PreparedRun], launch: LaunchOptions
) -> dict[Path, dict[str, Any]]:
    """Each run folder's frozen requirements and git state (record fields), computed once per
    code folder (usually one for the whole sweep)."""
    by_code: dict[Path, list[Path]] = {}
    for run in runs:
        by_code.setdefault(run.resolved.run.code_dir, []).append(run.run_dir)
    environment: dict[Path, dict[str, Any]] = {}
    for code_dir, run_dirs in by_code.items():
        fields = snapshot_environment(code_dir, run_dirs, launch)
        environment.update(dict.fromkeys(run_dirs, fields))
    return environment


def _undo(jobs: list[dict[str, Any]], prepared: dict[int, PreparedRun]) -> None:
    for job in jobs:
        try:
            commands.cancel(job["job_id"])
        except SlurmError as exc:
            console.warning(f"could not cancel job {job['job_id']}: {exc}")
    for run in reversed(prepared.values()):
        one: dict[int | None, PreparedRun] = {None: run}
        remove_prepared(one)


def cancel_sweep(found: record.SweepRecord) -> int:
    """`expyrun stop SWEEP_ID` of a --slurm sweep: scancel every array it submitted."""
    ids = [str(job["job_id"]) for job in found.slurm_jobs or []]
    if not ids:
        console.info(f"sweep {found.id} has no Slurm job")
        return ExitCode.OK
    commands.call(["scancel", *ids])
    console.info(f"stopped: sweep {found.id}: cancelled Slurm job(s) {', '.join(ids)}")
    return ExitCode.OK
