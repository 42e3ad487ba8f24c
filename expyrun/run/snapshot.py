"""Snapshot what a run needs to be understood and run again: its configs and the git state.

config.yml and raw_config.yml are written here (`write_text_file`), the git state and git.diff
read from the code's repository (`git_state`). This module is also the one place expyrun
starts git (`_git`): the code copy (`code_copy`) asks `git_ignored` which paths to leave out,
and copies its files with `copy_file`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from expyrun.errors import RunFolderError, ToolError
from expyrun.run.folder import current_umask

CONFIG_FILE = "config.yml"
RAW_CONFIG_FILE = "raw_config.yml"
# config.yml's values as JSON, for tools that read many runs (`ls --keys`: ~40x faster to load).
CONFIG_JSON_FILE = "config.json"
GIT_DIFF_FILE = "git.diff"
GIT_TIMEOUT_SECONDS = 20


def write_text_file(path: Path, text: str) -> None:
    """Write a snapshot file, turning OS errors into a RunFolderError naming the file."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise RunFolderError(f"cannot write: {exc.strerror}", path=path) from exc


def copy_file(source: Path, target: Path) -> int:
    """Copy a file's bytes and permission bits; return its size. (shutil costs start-up time.)"""
    with open(source, "rb") as src, open(target, "wb") as dst:
        size = os.fstat(src.fileno()).st_size
        copied = 0
        while copied < size:
            try:
                sent = os.sendfile(dst.fileno(), src.fileno(), copied, size - copied)
            except (OSError, AttributeError):
                dst.write(src.read())
                break
            if sent == 0:
                break
            copied += sent
    # Keep the source's permission bits (an executable script stays executable), minus the
    # user's umask: the copy is a new file of this user's.
    os.chmod(target, stat.S_IMODE(os.stat(source).st_mode) & ~current_umask())
    return size


def git_state(code_dir: Path, run_dir: Path) -> dict[str, object] | None:
    """Commit, branch and dirty flag of the code's git repository; save `git.diff` if dirty.

    Returns None when the code is not in a git repository or git is not installed.
    """
    if not _may_be_in_repository(code_dir):
        return None
    status = _git(code_dir, "status", "--porcelain=v2", "--branch", "--untracked-files=normal")
    if status is None:
        return None
    commit = branch = None
    changed = untracked = 0
    for line in status.splitlines():
        if line.startswith("# branch.oid "):
            commit = line.split(" ", 2)[2]
        elif line.startswith("# branch.head "):
            branch = line.split(" ", 2)[2]
        elif line.startswith("?"):
            untracked += 1
        elif line and not line.startswith("#"):
            changed += 1
    state: dict[str, object] = {
        "commit": None if commit == "(initial)" else commit,
        "branch": None if branch == "(detached)" else branch,
        "dirty": changed > 0,
        "untracked_files": untracked,
    }
    if changed and commit not in (None, "(initial)"):
        # A patch whatever the user's settings: no external diff tool nor textconv filter
        # (their output is no patch, and git would run them), no color codes.
        options = ("--binary", "--no-ext-diff", "--no-textconv", "--no-color")
        diff = _git(code_dir, "diff", "HEAD", *options)
        if diff:
            (run_dir / GIT_DIFF_FILE).write_text(diff, encoding="utf-8", errors="surrogateescape")
            state["diff"] = GIT_DIFF_FILE
    return state


def copy_git_state(
    state: dict[str, object] | None, source_run: Path, run_dir: Path
) -> dict[str, object] | None:
    """A past run's git state for a run of its code copy, with its `git.diff` copied along."""
    if state is None:
        return None
    diff = state.get("diff")
    if isinstance(diff, str) and (source_run / diff).is_file():
        copy_file(source_run / diff, run_dir / diff)
    return dict(state)


def _may_be_in_repository(code_dir: Path) -> bool:
    """False when git would find no repository: no `.git` in the folder or above, no GIT_DIR.

    Saves starting git (and importing subprocess) for code outside any repository.
    """
    if os.environ.get("GIT_DIR"):
        return True
    folder = os.path.abspath(code_dir)
    while True:
        if os.path.lexists(os.path.join(folder, ".git")):
            return True
        parent = os.path.dirname(folder)
        if parent == folder:
            return False
        folder = parent


def git_ignored(code_dir: Path, names: Sequence[str]) -> set[str]:
    """The paths under the top-level `names` of `code_dir` that git ignores.

    git's own rules, not a copy of them: .gitignore files at every level, .git/info/exclude,
    core.excludesFile; a tracked file is never ignored. An ignored folder is one path (with
    `--directory` git does not list what it holds), so a node_modules costs one line. Paths
    are relative to `code_dir`, `/`-separated. Empty outside a git repository (no git started)
    or when git fails: the copy then leaves nothing out for git.
    """
    if not names or not _may_be_in_repository(code_dir):
        return set()
    listed = _git(
        code_dir,
        *("ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory"),
        *("--", *(f":(literal){name}" for name in names)),
    )
    return {path.rstrip("/") for path in (listed or "").split("\0") if path}


def _git(code_dir: Path, *args: str) -> str | None:
    """Run git in `code_dir`: its stdout, or None when it fails, times out or is missing.

    The one place expyrun starts git. Called on the launch path (the ignored paths, before the
    code copy) and in the recording thread (the git state).
    """
    from expyrun import _command  # only here: it costs start-up time

    argv = ["git", "-C", str(code_dir), *args]
    try:
        done = _command.run(
            argv, timeout=GIT_TIMEOUT_SECONDS, check=False, decode_errors="surrogateescape"
        )
    except ToolError:
        return None
    return done.stdout if done.code == 0 else None
