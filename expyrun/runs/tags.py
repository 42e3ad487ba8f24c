"""Tags and notes of runs: `--tag`/`--note` at launch, `expyrun tag` and `expyrun note` later.

run.json keeps `tags` (a list of names, in the order they were added, no repeats) and `note`
(free text; an empty note is no note). Edits rewrite the record atomically under its lock
(`run/record.py` `update_record`), also while the run runs: the supervisor's own writes keep
them (`write_record`), and an edit keeps every field the supervisor wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from expyrun import console
from expyrun.errors import ExitCode, UsageError
from expyrun.run.record import RunRecord, update_record
from expyrun.run.record_check import check_tag
from expyrun.runs.reading import open_run


def split_tag_arguments(args: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """`expyrun tag RUN... +NAME -NAME` -> (runs, names to add, names to remove).

    Raises:
        UsageError: no RUN, or an invalid tag name (nothing is changed then).
    """
    runs: list[str] = []
    added: list[str] = []
    removed: list[str] = []
    for arg in args:
        if arg.startswith("+"):
            added.append(check_tag(arg[1:]))
        elif arg.startswith("-"):
            removed.append(check_tag(arg[1:]))
        else:
            runs.append(arg)
    if not runs:
        raise UsageError("missing the run", hint="expyrun tag RUN... [+NAME] [-NAME]")
    return runs, added, removed


def edit_tags(run_dirs: Sequence[str], added: Sequence[str], removed: Sequence[str]) -> int:
    """Add and remove tags of runs (each run's record rewritten once); with no change asked,
    print each run's tags. Every RUN is checked before any record is changed.

    Raises:
        RunFolderError: a RUN is not a readable run folder.
        RecordError: a record cannot be rewritten (its lock, permissions).
    """
    checked = [open_run(run_dir) for run_dir in run_dirs]
    if not added and not removed:
        for run_dir, found in checked:
            console.out(f"{run_dir}: {' '.join(found.tags)}".rstrip())
        return ExitCode.OK
    gone = set(removed)

    def change(current: RunRecord) -> RunRecord:
        kept = [tag for tag in current.tags if tag not in gone]
        new = [tag for tag in added if tag not in gone]
        return current.replace(tags=tuple(dict.fromkeys([*kept, *new])))

    for run_dir, _ in checked:
        written = update_record(run_dir, change)
        console.info(f"{run_dir}: tags: {', '.join(written.tags) or '(none)'}")
    return ExitCode.OK


def edit_note(run_dir: str, text: str | None) -> int:
    """Set a run's note (`text`; empty: remove it), or print it when `text` is None.

    Raises:
        RunFolderError: not a readable run folder.
        RecordError: the record cannot be rewritten.
    """
    path, found = open_run(run_dir)
    if text is None:
        if found.note:
            console.out(found.note)
        return ExitCode.OK
    note = text if text.strip() else None
    update_record(Path(path), lambda current: current.replace(note=note))
    console.info(f"{path}: note {'set' if note else 'removed'}")
    return ExitCode.OK
