"""Allocate `{output_dir}/{name}/exp.{i}` atomically; a name never escapes its output dir.

`i` is the smallest integer whose folder does not exist (gaps are filled, as in expyrun 0.2).
Concurrent launches race on `os.mkdir`, which is atomic: the loser takes the next free `i`.

This module owns the run folder's layout: its name pattern and the names of the files the
supervisor writes into it (run.json is `record.RECORD_FILE`; the snapshot's files are named in
`snapshot`, frozen_requirements.txt in `freeze`, which also runs as a script).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from expyrun.errors import RunFolderError

DEBUG_FOLDER = "DEBUG"
RUN_FOLDER_PATTERN = re.compile(r"^exp\.(\d+)$")
RUN_FOLDER_NAME = "exp.{index}"
# The worker's output, as the terminal saw it (attempts separated by a line).
OUTPUTS_LOG = "outputs.log"
# A detached supervisor's own messages (`--detach`).
SUPERVISOR_LOG = "supervisor.log"
# The batch script of a `--slurm` submission.
SCRIPT_FILE = "slurm.sbatch"


def name_folder(output_dir: Path, name: str, debug: bool) -> Path:
    """The folder that holds every run of `name`: `{output_dir}[/DEBUG]/{name}`."""
    base = output_dir / DEBUG_FOLDER if debug else output_dir
    folder = base / name
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise RunFolderError(f"run name '{name}' would leave the output dir {output_dir}")
    return folder


def _next_free_index(parent: Path) -> int:
    try:
        taken = {
            int(match.group(1))
            for entry in os.listdir(parent)
            if (match := RUN_FOLDER_PATTERN.match(entry))
        }
    except FileNotFoundError:
        return 0
    except NotADirectoryError as exc:
        raise RunFolderError("not a folder", path=parent) from exc
    i = 0
    while i in taken:
        i += 1
    return i


def peek_run_folder(output_dir: Path, name: str, debug: bool) -> Path:
    """The run folder a launch would get now, without creating anything."""
    parent = name_folder(output_dir, name, debug)
    for ancestor in (parent, *parent.parents):
        if ancestor.exists() and not ancestor.is_dir():
            raise RunFolderError("exists and is not a folder", path=ancestor)
    return parent / RUN_FOLDER_NAME.format(index=_next_free_index(parent))


def allocate_run_folder(output_dir: Path, name: str, debug: bool) -> tuple[Path, list[Path]]:
    """Create the next free run folder.

    Returns the run folder and the folders created on the way (outermost first), so that a
    launch that fails before the run starts can remove exactly what it made.
    """
    parent = name_folder(output_dir, name, debug)
    created = _make_parents(parent)
    while True:
        folder = parent / RUN_FOLDER_NAME.format(index=_next_free_index(parent))
        try:
            os.mkdir(folder)
        except FileExistsError:
            continue  # another launch took this index first
        except OSError as exc:
            remove_created(created)
            raise RunFolderError(
                f"cannot create the run folder: {exc.strerror}", path=folder
            ) from exc
        return folder, [*created, folder]


def _make_parents(folder: Path) -> list[Path]:
    missing = []
    for ancestor in (folder, *folder.parents):
        if ancestor.is_dir():
            break
        missing.append(ancestor)
    created: list[Path] = []
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except FileExistsError:
            if not path.is_dir():
                remove_created(created)
                raise RunFolderError("exists and is not a folder", path=path) from None
            continue
        except OSError as exc:
            remove_created(created)
            raise RunFolderError(f"cannot create folder: {exc.strerror}", path=path) from exc
        created.append(path)
    return created


def remove_created(created: list[Path]) -> None:
    """Remove folders made by `allocate_run_folder`, innermost first (best effort)."""
    import shutil

    for path in reversed(created):
        shutil.rmtree(path, ignore_errors=True)


def current_umask() -> int:
    """The process's umask (files expyrun makes get `mode & ~umask`, as open(2) does)."""
    mask = os.umask(0o022)  # reading the umask means setting it: set it straight back
    os.umask(mask)
    return mask
