"""Name a run on the command line: a run folder, a name folder, or `last`.

Every command that takes a RUN (`logs`, `status`, `stop`, `rerun`, `reproduce`, `tag`,
`note`, `diff`) resolves it here first:

- a run folder (a folder holding run.json): itself;
- a name folder, `{output_dir}/{name}`: its latest run, the `exp.N` with the largest N that
  holds a run.json (folders still being made, without one, are skipped);
- `last`: the newest run among the runs under the current folder, found as `expyrun ls` finds
  them (any depth, names starting with "." or "__" skipped, symbolic links followed); newest
  by start time (a `--slurm` run not started yet: its submission time; a run that has neither:
  the time its run.json was written). An existing file or folder named `last` is a path, not
  this word. None found: an error, naming the folder searched.

Errors are `RunFolderError`s (one line, exit 2): no such path, a folder that is neither (with
the run folders or names below it as a hint), a folder holding the runs of several names
(ambiguous: name one of them).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from expyrun.errors import RunFolderError
from expyrun.run.folder import RUN_FOLDER_PATTERN
from expyrun.run.record import RECORD_FILE
from expyrun.runs.reading import find_run_folders, load_json
from expyrun.runs.text import timestamp

# The word naming the newest run under the current folder.
LAST = "last"
# How many names an error about an ambiguous folder lists.
_NAMES_SHOWN = 5


def resolve_run(text: str, cwd: Path | None = None) -> Path:
    """The run folder that `text` names on a command line (see the module's docstring).

    Args:
        text: a run folder, a name folder, or `last`; relative paths are taken from `cwd`.
        cwd: the current folder (default: the process's).

    Returns:
        The run folder: `text` itself for a run folder, `text/exp.N` for a name folder (as
        typed, relative or not), an absolute path for `last`.

    Raises:
        RunFolderError: nothing there, a folder that names no run, or names several.
    """
    base = Path.cwd() if cwd is None else cwd
    path = Path(text)
    where = path if path.is_absolute() else base / path
    if text == LAST and not os.path.lexists(where):
        return last_run(base)
    if not where.exists():
        raise RunFolderError(
            "no such run folder or name folder", path=text, hint=_nearby(where, path)
        )
    if not where.is_dir():
        raise RunFolderError("not a run folder: a file", path=text)
    try:
        has_record = (where / RECORD_FILE).exists()
    except OSError:  # cannot look inside (another user's run): `open_run` says so
        return path
    if has_record or RUN_FOLDER_PATTERN.match(where.name):
        return path  # a run folder (`open_run` says what is wrong with a broken one)
    latest = latest_run_of_name(where)
    if latest is not None:
        return path / latest.name
    names = _names_below(where)
    if len(names) > 1:
        shown = ", ".join(names[:_NAMES_SHOWN]) + (", ..." if len(names) > _NAMES_SHOWN else "")
        raise RunFolderError(
            f"ambiguous: it holds the runs of {len(names)} names ({shown})",
            path=text,
            hint="name one of them, or a run folder",
        )
    hint = f"did you mean {path / names[0]}?" if names else None
    raise RunFolderError(
        "not a run folder: no run.json, and not a name folder: no exp.N run folder in it",
        path=text,
        hint=hint,
    )


def latest_run_of_name(name_folder: Path) -> Path | None:
    """The `exp.N` of `name_folder` with the largest N that holds run.json; None if none."""
    try:
        entries = os.listdir(name_folder)
    except OSError:
        return None
    found = sorted(
        (int(match.group(1)), entry)
        for entry in entries
        if (match := RUN_FOLDER_PATTERN.match(entry))
    )
    for _, entry in reversed(found):
        if os.path.isfile(os.path.join(name_folder, entry, RECORD_FILE)):
            return name_folder / entry
    return None


def last_run(root: Path) -> Path:
    """The newest run under `root` (see the module's docstring for "newest").

    Raises:
        RunFolderError: `root` holds no run folder.
    """
    best: tuple[float, str] | None = None
    for run_dir in find_run_folders(os.path.abspath(root)):
        key = (_start_time(run_dir), run_dir)
        if best is None or key > best:
            best = key
    if best is None:
        raise RunFolderError(
            f"no run folder under the current folder ({root})",
            path=LAST,
            hint="run it from the output dir of your runs or a folder above it, or name a run "
            "folder",
        )
    return Path(best[1])


def _start_time(run_dir: str) -> float:
    data = load_json(run_dir) or {}
    slurm = data.get("slurm")
    submitted = slurm.get("submitted_at") if isinstance(slurm, dict) else None
    when = timestamp(data.get("started_at") or submitted)
    if when:
        return when
    try:
        return os.stat(os.path.join(run_dir, RECORD_FILE)).st_mtime
    except OSError:
        return 0.0


def _names_below(folder: Path) -> list[str]:
    """The names (paths relative to `folder`) whose runs lie below `folder`, sorted."""
    runs = find_run_folders(str(folder))
    return sorted({os.path.relpath(os.path.dirname(run_dir), folder) for run_dir in runs})


def _nearby(missing: Path, typed: Path) -> str | None:
    """A did-you-mean hint: the closest existing name beside a missing path (as typed)."""
    try:
        siblings = os.listdir(missing.parent)
    except OSError:
        return None
    close = difflib.get_close_matches(missing.name, siblings, n=1)
    return f"did you mean {typed.parent / close[0]}?" if close else None
