"""Relative paths in a config that only make sense from the launch directory.

The entry point runs in its run folder (its working directory), not where expyrun was
launched: `data: data/train.csv`, an existing file of the launch directory, names nothing
there unless the code copy holds it. A string value of the entry's config (not `__run__`)
that names an existing file or folder from the launch directory and nothing from the run
folder is warned about, once per key, with the fix (`$EXPYRUN_CWD/data/train.csv`). Keys
listed in `__run__.__no_path_warning__` (and the keys below them) are not checked.

It reads the file system (stat) and writes nothing: it runs once the run folder is made.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from expyrun.config.keys import ConfigMapping, KeyPath, format_key, walk
from expyrun.config.report import Origin
from expyrun.config.run_section import NO_PATH_WARNING_KEY, RUN_KEY
from expyrun.errors import ConfigWarning

_PATH_MAX = 4096  # longer text is no path (Linux's PATH_MAX)


def relative_path_warnings(
    config: ConfigMapping,
    origins: Mapping[KeyPath, Origin],
    quiet: tuple[tuple[str, ...], ...],
    launch_dir: Path,
    run_dir: Path,
) -> list[ConfigWarning]:
    """A warning per key of `config` holding a path of `launch_dir` that `run_dir` lacks."""
    warnings = []
    for path, value in walk({k: v for k, v in config.items() if k != RUN_KEY}):
        if not isinstance(value, str) or not _may_be_relative_path(value):
            continue
        if not _exists(launch_dir, value) or _exists(run_dir, value):
            continue
        parts = tuple(str(part) for part in path)
        if any(parts[: len(key)] == key for key in quiet):
            continue
        key = format_key(path)
        origin = origins.get(path)
        warnings.append(
            ConfigWarning(
                f"'{value}' is a path from the launch directory, but the entry point runs in "
                "the run folder, where it does not exist",
                path=origin.path if origin else None,
                line=origin.line if origin else None,
                key=key,
                hint=f"use $EXPYRUN_CWD/{value} or an absolute path; or list {key} in "
                f"{RUN_KEY}.{NO_PATH_WARNING_KEY}",
            )
        )
    return warnings


def _may_be_relative_path(text: str) -> bool:
    return (
        0 < len(text) <= _PATH_MAX
        and text.isprintable()
        and not os.path.isabs(text)
        and not text.startswith("~")
        and "://" not in text
    )


def _exists(folder: Path, text: str) -> bool:
    try:
        return (folder / text).exists()
    except (OSError, ValueError):  # a name too long for the file system, a NUL
        return False
