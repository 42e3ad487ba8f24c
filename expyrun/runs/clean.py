"""`expyrun rm RUN...` and `expyrun clean [PATH] --status ... --older-than ... --where ...`.

Both list what would go (with sizes), ask on a terminal (`--yes` for scripts; without a
terminal and without `--yes` they refuse), and never remove a run that is running, pending
in Slurm or being launched (a line says why).

A removal is atomic per run: the run folder is first renamed into `.trash/` under its output
dir (one rename(2): `ls` sees the whole run or nothing), then deleted. A crash or SIGKILL
mid-way leaves whole runs in place and, at worst, a partly deleted folder in `.trash/`, which
every command that lists runs ignores (names starting with "."), and which the next `rm` or
`clean` under that output dir finishes deleting.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from expyrun import console
from expyrun.errors import ExitCode, RunFolderError, UsageError
from expyrun.run.folder import RUN_FOLDER_PATTERN
from expyrun.run.record import RECORD_FILE, Status
from expyrun.runs.fields import ListedRun
from expyrun.runs.ls import (
    ask_slurm_about_pending,
    check_keys,
    find_runs,
    format_table,
    search_roots,
)
from expyrun.runs.naming import resolve_run
from expyrun.runs.query import parse_where
from expyrun.runs.reading import UNREADABLE, load_json_checked, status_of_json
from expyrun.runs.text import short_time, size, timestamp
from expyrun.runs.trash import (
    TRASH_FOLDER,
    delete_tree,
    finish_leftovers,
    folder_bytes,
    move_to_trash,
    output_dir_of,
    trash_folders,
)

# A `prepared` record younger than this may be a launch in progress (prepare -> running takes
# milliseconds; --slurm: prepare -> pending, the time of one sbatch): it is left alone.
LAUNCH_SECONDS = 60.0
_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def remove_runs(names: Sequence[str], yes: bool, dry_run: bool) -> int:
    """`expyrun rm`: remove the named run folders (not a running one).

    Exit status: 0 when every named run was removed (or would be, with `dry_run`); 2 when a
    named run was refused (the others are removed); 1 when the question was answered no.

    Raises:
        RunFolderError: a name is not a run folder (nothing is removed).
    """
    runs = [_named_run(name) for name in names]
    ask_slurm_about_pending(runs)
    unique = list({os.path.realpath(run.path): run for run in runs}.values())
    code = _remove(unique, yes, dry_run, extra_trash=[])
    refused = any(refusal(run) for run in unique)
    return ExitCode.USAGE if refused and code == ExitCode.OK else code


def clean_runs(
    paths: Sequence[str],
    statuses: Sequence[str],
    older_than: str | None,
    where: str | None,
    yes: bool,
    dry_run: bool,
    config: str | None = None,
) -> int:
    """`expyrun clean`: remove the runs under `paths` (default: the current folder; with
    `config`, its output dir) that have one of `statuses` ("failed,killed" lists allowed),
    ended more than `older_than` ago (`7d`, `12h`) and match `where`.

    Raises:
        UsageError: no --status nor --where; a bad status or age.
        QueryError: `where` does not parse or names a key no run has.
    """
    wanted = parse_statuses(statuses)
    if not wanted and where is None:
        raise UsageError(
            "clean needs --status or --where to select runs",
            hint="e.g. expyrun clean outputs --status failed,killed,lost",
        )
    age = parse_age(older_than) if older_than else None
    query = parse_where(where) if where else None
    roots = search_roots(paths, config, "clean")
    runs = find_runs(roots, missing_ok=config is not None)
    if query is not None:
        check_keys(runs, [], query)
    now = time.time()
    selected = [
        run
        for run in runs
        if (not wanted or run.status in wanted)
        and (age is None or _ended_before(run, now - age))
        and (query is None or query.matches(run.value))
    ]
    return _remove(selected, yes, dry_run, extra_trash=trash_folders(roots))


def parse_statuses(values: Sequence[str]) -> set[str]:
    """`--status failed,killed --status lost` -> the set of statuses.

    Raises:
        UsageError: an unknown status.
    """
    known = [status.value for status in Status] + [UNREADABLE]
    found = {part.strip() for value in values for part in value.split(",") if part.strip()}
    for status in sorted(found):
        if status not in known:
            raise UsageError(
                f"--status: unknown status '{status}'", hint=f"one of {', '.join(known)}"
            )
    return found


def parse_age(text: str) -> float:
    """`--older-than 7d` -> seconds (units s, m, h, d, w).

    Raises:
        UsageError: not a number and a unit.
    """
    match = _AGE.match(text.strip())
    if match is None:
        raise UsageError(
            f"--older-than: expected a number and a unit, got '{text}'",
            hint="e.g. 30m, 12h, 7d, 2w",
        )
    return float(match.group(1)) * _AGE_UNITS[match.group(2)]


def refusal(run: ListedRun) -> str | None:
    """Why `run` must not be removed now (None: it may be)."""
    data, status = run.data, run.status
    if status == Status.RUNNING:
        host = data.get("host")
        if host != os.uname().nodename:
            return f"running on {host} (its supervisor cannot be checked from here)"
        return f"running (supervisor pid {data.get('pid')}): stop it first (expyrun stop RUN)"
    if status == Status.PENDING:
        return "submitted to Slurm and not started: cancel it first (expyrun stop RUN)"
    if status == Status.PREPARED:
        try:
            age = time.time() - os.stat(os.path.join(run.path, RECORD_FILE)).st_mtime
        except OSError:
            return None
        if age < LAUNCH_SECONDS:
            return "being launched (prepared less than a minute ago)"
    return None


def _named_run(name: str) -> ListedRun:
    """The run a command line names: a run folder, a name folder (its latest run) or `last`.

    Raises:
        RunFolderError: it names no run.
    """
    found = str(resolve_run(name))
    path = os.path.abspath(found)
    if not os.path.isfile(os.path.join(path, RECORD_FILE)):
        raise RunFolderError("not a run folder (no run.json)", path=name)
    if RUN_FOLDER_PATTERN.match(os.path.basename(path)) is None:
        raise RunFolderError("not a run folder (its name is not exp.N)", path=name)
    data, problem = load_json_checked(path)
    if problem is not None:
        return ListedRun(path, {"problem": problem}, UNREADABLE, found)
    return ListedRun(path, data, status_of_json(data), found)


def _ended_before(run: ListedRun, moment: float) -> bool:
    """Whether the run ended (else started, else was recorded) before `moment`."""
    data = run.data
    when = timestamp(data.get("ended_at") or data.get("started_at"))
    if not when:
        try:
            when = os.stat(os.path.join(run.path, RECORD_FILE)).st_mtime
        except OSError:
            return False
    return when < moment


def _remove(
    selected: list[ListedRun], yes: bool, dry_run: bool, extra_trash: Iterable[Path]
) -> int:
    """List, confirm, move into the trash, delete, report. The exit status."""
    trashes = {output_dir_of(run) / TRASH_FOLDER: None for run in selected}
    trashes.update({Path(run.path).parent / TRASH_FOLDER: None for run in selected})
    trashes.update(dict.fromkeys(extra_trash))
    if not dry_run:
        finish_leftovers(trashes)
    going = []
    for run in selected:
        reason = refusal(run)
        if reason is None:
            going.append(run)
        else:
            console.warning(f"{run.shown}: not removed: {reason}")
    if not going:
        console.info("no run to remove")
        return ExitCode.OK
    sizes = {run.path: folder_bytes(run.path) for run in going}
    total = sum(sizes.values())
    rows = [("RUN", "STATUS", "STARTED", "SIZE")]
    rows += [
        (run.shown, run.status, short_time(run.data.get("started_at")), size(sizes[run.path]))
        for run in going
    ]
    console.out(format_table(rows))
    what = f"{len(going)} run{'s' if len(going) > 1 else ''} ({size(total)})"
    if dry_run:
        console.info(f"would remove {what}; nothing removed (--dry-run)")
        return ExitCode.OK
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(
                f"would remove {what}: not asking, stdin is not a terminal",
                hint="pass --yes to remove them, --dry-run to only list them",
            )
        answer = console.ask(f"remove {what}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            console.info("nothing removed")
            return ExitCode.FAILURE
    return _delete(going, sizes)


def _delete(going: list[ListedRun], sizes: dict[str, int]) -> int:
    """Rename every run into its trash (atomic each), then delete them; report bytes freed."""
    moved: list[tuple[ListedRun, Path]] = []
    for run in going:
        reason = _still_removable(run)
        if reason is not None:
            console.warning(f"{run.shown}: not removed: {reason}")
            continue
        try:
            moved.append((run, move_to_trash(run)))
        except OSError as exc:
            console.warning(f"{run.shown}: not removed: {exc.strerror or exc}")
    freed = 0
    for run, trashed in moved:
        delete_tree(trashed)
        if os.path.lexists(trashed):
            console.warning(f"{run.shown}: partly deleted in {trashed} (the next rm/clean retries)")
        else:
            freed += sizes[run.path]
    count = len(moved)
    console.info(
        f"removed {count} run{'s' if count != 1 else ''}, freed {size(freed)} ({freed} bytes)"
    )
    return ExitCode.OK if count == len(going) else ExitCode.USAGE  # refused, as a running run


def _still_removable(run: ListedRun) -> str | None:
    """Read the record again just before the rename: a run may have started since."""
    data, problem = load_json_checked(run.path)
    if problem is not None:
        return None if os.path.isdir(run.path) else "gone already"
    return refusal(ListedRun(run.path, data, status_of_json(data), run.shown))
