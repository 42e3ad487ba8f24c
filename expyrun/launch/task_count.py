"""How many workers a launch starts: `--nproc`'s limit, and the count of a past run that
`rerun` and `reproduce` run again (a run of `--nproc N` runs N workers again)."""

from __future__ import annotations

import os
from pathlib import Path

from expyrun import console
from expyrun.errors import UsageError
from expyrun.launch.options import LaunchOptions
from expyrun.run.record import RunRecord
from expyrun.run.tasks import LOCAL_GROUP_PREFIX
from expyrun.slurm import tasks as slurm_tasks

# The most workers --nproc starts: NPROC_PER_CPU per CPU of this machine, and at least
# NPROC_FLOOR (see nproc_limit).
NPROC_PER_CPU = 8
NPROC_FLOOR = 64


def nproc_limit(cpus: int | None = None) -> int:
    """The most workers `--nproc` starts on this machine (`cpus`: os.cpu_count()).

    torchrun accepts any number, but `--nproc` starts one machine's worth of workers, each
    with its own task supervisor: two interpreters (some 30 MB) per worker before the entry
    imports anything, so `--nproc 100000` (a typo, a variable gone wrong) would fork the
    machine to a halt. Data-parallel training uses one worker per GPU or per core;
    NPROC_PER_CPU (8) per CPU leaves room to oversubscribe (to try a distributed code with
    more ranks than cores), and NPROC_FLOOR (64) lets a small machine try a large world.
    """
    return max(NPROC_FLOOR, NPROC_PER_CPU * (cpus or os.cpu_count() or 1))


def check_nproc(nproc: int) -> None:
    """Raise UsageError unless `nproc` workers is from 1 to `nproc_limit()` (checked before
    anything is made)."""
    limit = nproc_limit()
    if not 1 <= nproc <= limit:
        raise UsageError(
            f"--nproc takes from 1 to {limit} workers on this machine, got {nproc}",
            hint=f"at most {NPROC_PER_CPU} per CPU, and at least {NPROC_FLOOR}",
        )


def recorded_nproc(past: RunRecord) -> int:
    """The `--nproc N` a recorded run ran with (for `rerun`, `reproduce`); 0 if it did not.

    Its task entries say so (their group is `local-PID`; N: the highest rank + 1); a record
    written before entries named their group, by its command line (`--nproc N`, `--nproc=N`).
    A run whose tasks srun started (group `slurm-...`) ran no `--nproc`.
    """
    entries = [entry for entry in past.tasks or () if isinstance(entry, dict)]
    groups = {entry.get("group") for entry in entries}
    ranks = [entry["rank"] for entry in entries if isinstance(entry.get("rank"), int)]
    if any(isinstance(group, str) and group.startswith(LOCAL_GROUP_PREFIX) for group in groups):
        return max(ranks) + 1 if ranks else 0
    if groups != {None}:
        return 0  # srun's tasks, or no tasks at all
    command = [str(word) for word in past.command or ()]
    for i, word in enumerate(command):
        value = command[i + 1] if word == "--nproc" and i + 1 < len(command) else None
        if word.startswith("--nproc="):
            value = word.partition("=")[2]
        if value is not None and value.isascii() and value.isdigit():
            return int(value)
    return 0


def as_it_ran(past: RunRecord, run_dir: Path, options: LaunchOptions) -> LaunchOptions:
    """`options` with the workers the past run `past` (in `run_dir`) ran, for `rerun` and
    `reproduce`: a run of `--nproc N` runs N workers again.

    An explicit `--nproc M` wins, and so do srun's tasks in a job step of several tasks.
    `--detach` and `--slurm` cannot start `--nproc` workers: with either, the new run has one
    worker, and a warning says so. A run whose tasks srun started runs as many tasks only
    under srun again: outside a job step, a warning says so.
    """
    if options.nproc or options.print_config or slurm_tasks.several_tasks_here(os.environ):
        return options
    nproc = recorded_nproc(past)
    workers = f"{nproc} worker{'s' if nproc > 1 else ''} (--nproc {nproc})"
    if nproc and (options.detach or options.slurm):
        flag = "--detach" if options.detach else "--slurm"
        console.warning(f"{run_dir} ran {workers}, but {flag} starts one: this run has one worker")
    elif nproc:
        console.info(f"it ran {workers}: so does this run")
        return options._replace(nproc=nproc)
    elif past.tasks:
        world = len(past.tasks)
        console.warning(
            f"{run_dir} ran {world} tasks of a Slurm job step: this run has one worker "
            f"(srun --ntasks={world} runs {world} tasks, --nproc {world} on this machine)"
        )
    return options
