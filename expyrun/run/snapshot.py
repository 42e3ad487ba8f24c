"""Snapshot what a run needs to be understood and run again: configs, code, git state.

The code copy holds the entry point's top-level package (or module) and the other top-level
packages and modules of the code folder, so that sibling imports keep working from the copy
(expyrun 0.2 copied only the entry's package and only its .py files). Inside a package, every
file is copied except caches and hidden entries; a symbolic link is followed only when it
points inside the package.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection, Iterator
from pathlib import Path

from expyrun.errors import RunFolderError, ToolError

CONFIG_FILE = "config.yml"
RAW_CONFIG_FILE = "raw_config.yml"
GIT_DIFF_FILE = "git.diff"
# Above this size, the code copy is reported: data or checkpoints probably sit in the package.
LARGE_COPY_BYTES = 100 * 1024 * 1024
_SKIPPED_NAMES = {"__pycache__"}
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
GIT_TIMEOUT_SECONDS = 20


def write_text_file(path: Path, text: str) -> None:
    """Write a snapshot file, turning OS errors into a RunFolderError naming the file."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise RunFolderError(f"cannot write: {exc.strerror}", path=path) from exc


class CodeCopy:
    """What the code copy holds, for the record and for warnings."""

    def __init__(self) -> None:
        self.copied: list[str] = []  # top-level names copied
        self.skipped_links: list[str] = []
        self.total_bytes = 0


def copy_code(
    code_dir: Path, entry_top_level: Path, run_dir: Path, only: Collection[str] | None = None
) -> CodeCopy:
    """Copy the entry's top-level package and its sibling packages/modules into `run_dir`.

    `only` limits the siblings to these names: when the code folder is a past run folder, the
    names its record lists as its code copy, not files the run itself wrote there.
    """
    result = CodeCopy()
    for source in _top_level_sources(code_dir, entry_top_level):
        if only is not None and source != entry_top_level and source.name not in only:
            continue
        target = run_dir / source.name
        try:
            if source.is_dir():
                _copy_package(source, target, result)
            else:
                result.total_bytes += _copy_file(source, target)
        except OSError as exc:
            raise RunFolderError(f"cannot copy the code: {exc.strerror}", path=source) from exc
        result.copied.append(source.name)
    return result


def _top_level_sources(code_dir: Path, entry_top_level: Path) -> list[Path]:
    sources = {entry_top_level.name: entry_top_level}
    try:
        entries = list(os.scandir(code_dir))
    except OSError:
        entries = []
    for entry in entries:
        name = entry.name
        if name.startswith(".") or name in sources or name in _SKIPPED_NAMES:
            continue
        path = Path(entry.path)
        is_module = name.endswith(".py") and entry.is_file()
        if is_module or (entry.is_dir() and (path / "__init__.py").is_file()):
            sources[name] = path
    return sorted(sources.values(), key=lambda p: p.name)


def _copy_package(source: Path, target: Path, result: CodeCopy) -> None:
    root = source.resolve()
    for folder, files in _walk(root, result):
        relative = folder.relative_to(root)
        (target / relative).mkdir(parents=True, exist_ok=True)
        for file in files:
            result.total_bytes += _copy_file(file, target / relative / file.name)


def _copy_file(source: Path, target: Path) -> int:
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
    os.chmod(target, stat.S_IMODE(os.stat(source).st_mode) & ~_umask())
    return size


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: set it straight back
    os.umask(mask)
    return mask


def _walk(root: Path, result: CodeCopy) -> Iterator[tuple[Path, list[Path]]]:
    pending = [root]
    while pending:
        folder = pending.pop()
        files = []
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name.startswith(".") or entry.name in _SKIPPED_NAMES:
                continue
            if entry.name.endswith(_SKIPPED_SUFFIXES):
                continue
            path = Path(entry.path)
            if entry.is_symlink():
                resolved = path.resolve()
                if not resolved.is_relative_to(root) or not resolved.exists():
                    result.skipped_links.append(str(path))
                    continue
            if entry.is_dir():
                pending.append(path)
            elif entry.is_file():
                files.append(path)
        yield folder, files


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
        diff = _git(code_dir, "diff", "HEAD", "--binary")
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
        _copy_file(source_run / diff, run_dir / diff)
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


def _git(code_dir: Path, *args: str) -> str | None:
    from expyrun import _command  # only here: git runs in a thread, off the launch path

    argv = ["git", "-C", str(code_dir), *args]
    try:
        done = _command.run(
            argv, timeout=GIT_TIMEOUT_SECONDS, check=False, decode_errors="surrogateescape"
        )
    except ToolError:
        return None
    return done.stdout if done.code == 0 else None
