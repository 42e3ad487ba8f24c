"""What the file system of a folder allows a path: NAME_MAX and PATH_MAX, from pathconf(3).

Asked once per folder in a process: each member of a sweep resolves its config again, and two
pathconf calls per folder tried were a fifth of a 10,000-member preview.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

# Linux's limits (<linux/limits.h>), used where the file system does not say.
NAME_MAX, PATH_MAX = 255, 4096


@functools.lru_cache(maxsize=64)
def file_system_limits(folder: Path) -> tuple[int, int]:
    """(NAME_MAX, PATH_MAX) in bytes for the file system of `folder` or its nearest existing
    ancestor (`folder` need not exist yet); Linux's when the system does not say."""
    for candidate in (folder, *folder.parents):
        try:
            name_max, path_max = (os.pathconf(candidate, f"PC_{n}_MAX") for n in ("NAME", "PATH"))
        except (OSError, ValueError):  # not there yet, or the system does not say
            continue
        # -1: no limit for this file system; the system's calls still use Linux's.
        return name_max if name_max > 0 else NAME_MAX, path_max if path_max > 0 else PATH_MAX
    return NAME_MAX, PATH_MAX
