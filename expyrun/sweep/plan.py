"""Which sweep a command is, and what is left to run in it: new, resumed, or changed.

A sweep's *line key* hashes what the command line defines (the config file, the cwd, the
overrides, the --sweep flags, --sample/--seed, --debug); its *definition* hashes the
dimensions and every member's resolved config. The same command again finds the newest record
with its line key under the output dir: the same definition resumes it; another one (the
config or its files were edited) is said and starts a new sweep, never mixing the two.

Within a resumed sweep, members are matched by the hash of their resolved config: those whose
last run folder succeeded, is running or is pending in Slurm (asked) are skipped; failed,
killed, lost and never-started ones run again in a new run folder (the old one is kept as it is).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from expyrun.launch.options import LaunchOptions
from expyrun.run.record import RECORD_FILE, Status, process_matches
from expyrun.runs.reading import status_of_json
from expyrun.slurm import commands as slurm_commands
from expyrun.sweep import record
from expyrun.sweep.expand import Expansion, Member
from expyrun.sweep.options import SweepOptions

# What a plan does with a member.
NEW, RERUN, SKIP = "new", "rerun", "skip"
NOT_STARTED = "not started"


class Step(NamedTuple):
    """One member and what the plan does with it."""

    member: Member
    action: str  # NEW, RERUN or SKIP
    last_status: str | None = None  # the status of its last run folder, if any
    last_run: str | None = None


class Plan(NamedTuple):
    """The sweep a command is, and its steps (one per member, in order)."""

    output_dir: Path
    line_key: str
    definition: str
    steps: tuple[Step, ...]
    existing: tuple[Path, record.SweepRecord] | None = None  # the sweep resumed
    changed: record.SweepRecord | None = None  # a sweep of this command with another definition

    def summary(self) -> str:
        """`9 done, 2 to rerun, 1 new` (and `1 running`, `3 queued` in Slurm)."""
        skipped = [s.last_status for s in self.steps if s.action == SKIP]
        running = skipped.count(Status.RUNNING.value)
        queued = skipped.count(Status.PENDING.value)
        done = len(skipped) - running - queued
        rerun = sum(1 for s in self.steps if s.action == RERUN)
        new = sum(1 for s in self.steps if s.action == NEW)
        parts = [f"{done} done", f"{rerun} to rerun", f"{new} new"]
        if running:
            parts.append(f"{running} running")
        if queued:
            parts.append(f"{queued} queued")
        return ", ".join(parts)


def line_key(launch: LaunchOptions, sweep: SweepOptions, cwd: Path) -> str:
    """The hash of what the command line defines (not how it schedules the members)."""
    defined = [
        os.path.abspath(os.path.join(cwd, launch.config_path)),
        str(cwd),
        list(launch.overrides),
        [list(pair) for pair in sweep.dimensions],
        sweep.sample,
        sweep.seed,
        launch.debug,
    ]
    return _hash(defined)


def definition_of(expansion: Expansion) -> str:
    """The hash of the dimensions and of every member's resolved config."""
    dimensions = [[list(d.keys), [list(v) for v in d.values]] for d in expansion.dimensions]
    return _hash([dimensions, [member.digest for member in expansion.members]])


def make_plan(
    expansion: Expansion,
    launch: LaunchOptions,
    sweep: SweepOptions,
    cwd: Path,
    folder: Path | None = None,
) -> Plan:
    """Find the sweep this command continues, if any, and say what each member needs.

    `folder`: the sweep to continue (`sweep resume`, a detached sweep's supervisor), instead
    of the newest one of this command line.
    """
    output_dir = expansion.members[0].resolved.run.output_dir
    key = line_key(launch, sweep, cwd)
    definition = definition_of(expansion)
    if folder is not None:
        same_line = [(folder, record.read(folder))]
    else:
        same_line = [(f, r) for f, r in record.records_in(output_dir) if r.line_key == key]
        same_line.sort(key=lambda found: found[1].created_at)
    if not same_line:
        steps = tuple(Step(member, NEW) for member in expansion.members)
        return Plan(output_dir, key, definition, steps)
    found_folder, latest = same_line[-1]
    if latest.definition != definition:
        steps = tuple(Step(member, NEW) for member in expansion.members)
        return Plan(output_dir, key, definition, steps, changed=latest)
    runs = record.member_runs(found_folder)
    asked = slurm_statuses([dirs[-1] for dirs in runs.values()])
    steps = tuple(_step(member, runs.get(member.digest, []), asked) for member in expansion.members)
    return Plan(output_dir, key, definition, steps, existing=(found_folder, latest))


def _step(member: Member, run_dirs: Sequence[str], asked: dict[str, str]) -> Step:
    if not run_dirs:
        return Step(member, NEW)
    last = run_dirs[-1]
    status = asked.get(last) or run_status(last)
    action = SKIP if status in (Status.SUCCEEDED, Status.RUNNING, Status.PENDING) else RERUN
    return Step(member, action, status, last)


def run_status(run_dir: str) -> str:
    """A member run folder's status: its record's, `lost` for a dead supervisor."""
    data = read_run_json(run_dir)
    if data is None:
        return Status.LOST.value  # a folder allocated, then its record lost: run it again
    return status_of_json(data)


def slurm_statuses(run_dirs: Sequence[str]) -> dict[str, str]:
    """The status of each `pending` run folder (a --slurm member) as Slurm says: one squeue.

    `pending` while its job waits, `cancelled` or `lost` once its job ended without starting
    it (`commands.pending_status`). Folders not pending are left out; so are all of them when
    Slurm cannot be asked (they stay `pending`: a resume does not submit them twice).
    """
    handles: dict[str, str] = {}
    for run_dir in run_dirs:
        data = read_run_json(run_dir)
        if data is not None and data.get("status") == Status.PENDING:
            handle = slurm_commands.job_handle(data.get("slurm") or {})
            if handle is not None:
                handles[run_dir] = handle
    if not handles:
        return {}
    states = slurm_commands.job_states(sorted(set(handles.values())))
    if states is None:
        return {}
    return {
        run_dir: slurm_commands.pending_status(states.get(handle)).value
        for run_dir, handle in handles.items()
    }


def read_run_json(run_dir: str) -> dict[str, Any] | None:
    """A member's run.json as JSON, or None when it cannot be read."""
    try:
        with open(os.path.join(run_dir, RECORD_FILE), encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def supervisor_running(found: record.SweepRecord) -> bool:
    """Whether the sweep's supervisor still runs (False when it ended or runs elsewhere)."""
    if found.state != record.RUNNING:
        return False
    return bool(process_matches(found.pid, found.host, found.pid_started_at))


def _hash(value: object) -> str:
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
