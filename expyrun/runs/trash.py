"""The trash folder of rm and clean: a run folder is renamed into it (atomic), then deleted.

`{output_dir}/.trash/` (or `{name folder}/.trash/` when the name folder is on another file
system than the output dir: rename(2) does not cross file systems). Every command that lists
runs skips names starting with ".", so a run in the trash, even half deleted, is never listed;
what a killed rm/clean left there is finished by the next one.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from expyrun import console
from expyrun.run.folder import DEBUG_FOLDER, RUN_FOLDER_PATTERN
from expyrun.run.record import RECORD_FILE
from expyrun.runs.fields import ListedRun
from expyrun.runs.text import size

TRASH_FOLDER = ".trash"


def trash_folders(roots: Sequence[str]) -> list[Path]:
    """The `.trash` folders under `roots` (not looking inside run folders)."""
    found = []
    pending = [Path(root) for root in roots]
    while pending:
        folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            if entry.name == TRASH_FOLDER:
                found.append(Path(entry.path))
            elif not entry.name.startswith((".", "__")) and not (
                RUN_FOLDER_PATTERN.match(entry.name)
                and os.path.isfile(os.path.join(entry.path, RECORD_FILE))
            ):
                pending.append(Path(entry.path))
    return found


def folder_bytes(path: str) -> int:
    """The disk space of a folder tree (as du: allocated blocks, hard links counted once,
    symbolic links not followed, `path` itself included: a link to a run folder is a link)."""
    if os.path.islink(path):
        return _lstat_bytes(path)
    total = 0
    seen: set[tuple[int, int]] = set()
    pending = [path]
    while pending:
        folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if info.st_nlink > 1 and not stat.S_ISDIR(info.st_mode):
                if (info.st_dev, info.st_ino) in seen:
                    continue
                seen.add((info.st_dev, info.st_ino))
            total += info.st_blocks * 512
            if stat.S_ISDIR(info.st_mode):
                pending.append(entry.path)
    return total + _lstat_bytes(path)


def _lstat_bytes(path: str) -> int:
    try:
        return os.lstat(path).st_blocks * 512
    except OSError:
        return 0


def output_dir_of(run: ListedRun) -> Path:
    """The output dir a run folder lies in: `{out}[/DEBUG]/{name}/exp.N` -> `{out}`; the name
    folder when the record's name does not fit the path (a moved or unreadable run)."""
    name_folder = Path(run.path).parent
    name = run.data.get("name")
    if isinstance(name, str) and name and str(name_folder).endswith(os.sep + name):
        out = Path(str(name_folder)[: -len(name) - 1])
        return out.parent if out.name == DEBUG_FOLDER and run.data.get("debug") else out
    return name_folder


def move_to_trash(run: ListedRun) -> Path:
    """Rename the run folder into `.trash/` of its output dir (its name folder's, when the
    output dir is on another file system); the new path."""
    tag = f"{time.time_ns()}-{os.getpid()}-{os.path.basename(run.path)}"
    trashes = [output_dir_of(run) / TRASH_FOLDER, Path(run.path).parent / TRASH_FOLDER]
    for trash in dict.fromkeys(trashes):
        target = trash / tag
        try:
            trash.mkdir(exist_ok=True)
            os.rename(run.path, target)
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                continue  # a name folder linked to another disk: its own trash
            raise
        return target
    raise OSError(errno.EXDEV, "cannot move it into a trash folder on its file system")


def finish_leftovers(trashes: Iterable[Path]) -> None:
    """Delete what an interrupted rm/clean left in these trash folders, and say so."""
    for trash in trashes:
        try:
            leftovers = [entry.path for entry in os.scandir(trash) if not _deleting(entry.name)]
        except OSError:
            continue
        if not leftovers:
            continue
        freed = sum(folder_bytes(path) for path in leftovers)
        for path in leftovers:
            delete_tree(Path(path))
        console.info(
            f"finished removing {len(leftovers)} run folder{'s' if len(leftovers) > 1 else ''} "
            f"an interrupted rm/clean left in {trash} (freed {size(freed)})"
        )


def _deleting(name: str) -> bool:
    """Whether the rm/clean that moved this entry (`{ns}-{pid}-exp.N`) still runs: it is
    deleting it now. A reused pid only leaves the entry to a later rm/clean."""
    parts = name.split("-")
    if len(parts) < 3 or not parts[1].isdecimal() or int(parts[1]) == os.getpid():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process
    return True


def delete_tree(path: Path) -> None:
    """Delete a folder tree, making read-only folders writable on the way (best effort)."""

    def retry(function: object, failed: str, info: object) -> None:
        parent = os.path.dirname(failed)
        try:
            os.chmod(parent, os.stat(parent).st_mode | stat.S_IWUSR | stat.S_IXUSR)
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, os.stat(failed).st_mode | stat.S_IRWXU)
                shutil.rmtree(failed, ignore_errors=True)
            else:
                os.unlink(failed)
        except OSError:
            pass

    shutil.rmtree(path, onerror=retry)
