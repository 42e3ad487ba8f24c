"""A sweep member's run folder: prepared, discarded before it ran, or recorded stopped early.

A member's run folder is an ordinary run folder (`launch.prepare.allocate_and_snapshot`) whose
record names the sweep (`sweep: {id, index, count, values}`). Prepared here for a local sweep
(`schedule.py`) and, all at submit time, for a --slurm one (`slurm.py`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from expyrun.launch.options import LaunchOptions
from expyrun.launch.prepare import PreparedRun, allocate_and_snapshot
from expyrun.run import record as run_record
from expyrun.run.folder import RUN_FOLDER_PATTERN
from expyrun.run.record import RunRecord, Status
from expyrun.sweep import record as sweep_record
from expyrun.sweep.expand import Member

# The run.json key a member's sweep fields go under.
SWEEP_FIELD = "sweep"


def prepare_member(
    launch: LaunchOptions,
    cwd: Path,
    sweep_id: str,
    count: int,
    member: Member,
    warn_paths: bool,
    gpus: tuple[str, ...] = (),
) -> PreparedRun:
    """Allocate and snapshot a member's run folder; its record (`prepared`) names the sweep.

    `count`: the sweep's number of members; `gpus`: the GPUs it will hold (recorded). The
    caller notes the folder in the sweep record (`record.append_member`) once it is kept.
    """
    options = launch._replace(
        overrides=(*launch.overrides, *member.overrides),
        command=("expyrun", launch.config_path, *launch.overrides, *member.overrides),
        print_config=False,
        detach=False,
        slurm=False,
    )
    prepared = allocate_and_snapshot(
        options, cwd, member.resolved, member.location, warn_paths=warn_paths
    )
    fields: dict[str, Any] = {
        "id": sweep_id,
        "index": member.number,
        "count": count,
        "values": json.loads(json.dumps(member.values, default=str)),
    }
    if gpus:
        fields["cuda_visible_devices"] = ",".join(gpus)
    extra = {**(prepared.record.extra or {}), SWEEP_FIELD: fields}
    kept = prepared.record.replace(extra=extra)
    run_record.write_record(prepared.run_dir, kept)
    return prepared._replace(record=kept)


def discard(prepared: PreparedRun) -> None:
    """Remove a prepared run folder that will never run, and the parents made for it if empty.

    Not `folder.remove_created`, which removes those parents whole: another launch may have
    allocated a run folder in a name folder the sweep made meanwhile.
    """
    import shutil  # only here, as in `folder.remove_created`: rarely needed

    shutil.rmtree(prepared.run_dir, ignore_errors=True)
    for parent in reversed(prepared.created[:-1]):
        try:
            os.rmdir(parent)
        except OSError:
            return


def record_stopped_before_start(run_dir: str, signum: int, supervisor_pid: int) -> None:
    """Record a member `killed` by `signum` before its entry point started, if still `prepared`.

    For a member whose supervisor got the sweep's stop signal while it was starting, before it
    took the signals over: it died of it (SIGTERM's default action) without a word, leaving the
    record `prepared`. The record then reads as that supervisor's own would
    (`launch.execute`: a run stopped before its entry point started). A record that moved on
    meanwhile is left as it is.

    Raises:
        RecordError: run.json cannot be read or written.
    """

    def stopped(current: RunRecord) -> RunRecord:
        if current.status != Status.PREPARED:
            return current
        earlier = run_record.earlier_attempts(current)
        host = os.uname().nodename
        return run_record.stopped_before_start(
            current, earlier, signum, host=host, pid=supervisor_pid
        )

    run_record.update_record(Path(run_dir), stopped)


def remove_unrecorded(sweep_folder: Path, sweep_id: str, name_folders: Iterable[Path]) -> int:
    """Remove the member run folders an earlier supervisor of the sweep prepared, never noted
    in members.jsonl, and never ran; return how many.

    A supervisor SIGKILLed with a member prepared ahead (schedule.py, `_prepare_ahead`), or
    between preparing a member and noting it, leaves such a folder: `prepared` for good, and
    outside the sweep's record. It is this sweep's by its record (`sweep.id`); any other folder
    (another sweep's, a plain run's, one that ran) is left alone. Call it only while no
    supervisor of the sweep runs (its start lock held, or the record says it is gone).
    """
    import shutil  # rarely needed, as in `discard`

    noted = {run for runs in sweep_record.member_runs(sweep_folder).values() for run in runs}
    removed = 0
    for parent in set(name_folders):
        try:
            entries = [
                entry for entry in os.scandir(parent) if RUN_FOLDER_PATTERN.match(entry.name)
            ]
        except OSError:
            continue
        for entry in entries:
            if entry.path in noted or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                data = json.loads(Path(entry.path, run_record.RECORD_FILE).read_bytes())
                mine = data["status"] == Status.PREPARED and data[SWEEP_FIELD]["id"] == sweep_id
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if mine:
                shutil.rmtree(entry.path, ignore_errors=True)
                removed += 1
    return removed
