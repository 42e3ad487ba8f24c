"""Copy the code into the run folder, so that the run imports its own copy; report the copy.

The code copy holds the entry point's top-level package (or module) and the other top-level
packages and modules of the code folder, so that sibling imports keep working from the copy
(expyrun 0.2 copied only the entry's package and only its .py files). Inside a package, every
file is copied except what `code_exclusions` leaves out (caches, hidden entries, what git
ignores, `__run__.__code_exclude__`, the output dir and run folders). A symbolic link is
copied as a link, never followed: it points where it pointed (`_CodeCopier.copy_link`).
`CodeCopy` accounts for the copy: run.json's `code_copy`, the warnings and the notes.
docs/run-folder.md, "The code copy", says all this for users.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from expyrun.errors import RunFolderError
from expyrun.run.code_exclusions import (
    OUTPUT_DIR_REASON,
    RUN_FOLDER_REASON,
    SKIPPED_NAMES,
    Exclusions,
    is_skipped,
)
from expyrun.run.snapshot import copy_file, git_ignored

# Above either size, the code copy is reported with its largest files: data, checkpoints or a
# node_modules probably sit in the package (docs/run-folder.md, "The code copy").
CODE_COPY_WARNING_BYTES = 50 * 1000 * 1000
CODE_COPY_WARNING_FILES = 10_000
LARGEST_FILES_SHOWN = 3
# run.json lists at most this many left-out paths, outside and broken links (and counts all).
RECORDED_PATHS = 100


class CodeCopy:
    """What the code copy holds and what it left out, for the record and for messages.

    Paths are relative to the code folder, `/`-separated (`pkg/data/train.npy`).
    """

    def __init__(self) -> None:
        self.copied: list[str] = []  # top-level names copied
        self.total_bytes = 0
        self.files = 0
        self.links = 0
        self.outside_links: list[dict[str, str]] = []  # {"path", "target"}: absolute targets
        self.broken_links: list[dict[str, str]] = []  # {"path", "target", "problem"}
        self.excluded: list[dict[str, str]] = []  # {"path", "reason"}
        self.largest: list[tuple[int, str]] = []  # (bytes, path), largest first

    def add_file(self, path: str, size: int) -> None:
        """Count a copied file of `size` bytes."""
        self.files += 1
        self.total_bytes += size
        if len(self.largest) < LARGEST_FILES_SHOWN or size > self.largest[-1][0]:
            self.largest.append((size, path))
            self.largest.sort(key=lambda item: item[0], reverse=True)
            del self.largest[LARGEST_FILES_SHOWN:]

    def warnings(self) -> list[str]:
        """Broken links; a copy past CODE_COPY_WARNING_BYTES or _FILES, with its largest files."""
        messages = [
            f"{link['path']} -> {link['target']}: {link['problem']}, copied as a link"
            for link in self.broken_links
        ]
        if self.total_bytes > CODE_COPY_WARNING_BYTES or self.files > CODE_COPY_WARNING_FILES:
            largest = ", ".join(f"{path} {_size(size)}" for size, path in self.largest)
            messages.append(
                f"the code copy takes {_size(self.total_bytes)} in {self.files} files "
                f"(largest: {largest}): data inside the package? (leave it out with "
                ".gitignore or __run__.__code_exclude__)"
            )
        return messages

    def notes(self) -> list[str]:
        """What the user should know though nothing is wrong: run folders left out."""
        return [
            f"{item['path']}: the {item['reason']} is inside the code, left out of the code copy"
            for item in self.excluded
            if item["reason"] in (OUTPUT_DIR_REASON, RUN_FOLDER_REASON)
        ]

    def to_record(self) -> dict[str, Any]:
        """run.json's `code_copy`; `copied` names what rerun/reproduce copy again."""
        return {
            "copied": self.copied,
            "bytes": self.total_bytes,
            "files": self.files,
            "largest": [{"path": path, "bytes": size} for size, path in self.largest],
            "links": self.links,
            "outside_links": self.outside_links[:RECORDED_PATHS],
            "broken_links": self.broken_links[:RECORDED_PATHS],
            "excluded": self.excluded[:RECORDED_PATHS],
            "excluded_count": len(self.excluded),
        }


def _size(count: int) -> str:
    """`count` bytes for people: 1.1 GB, 25 MB, 12 kB, 300 B (decimal units)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            digits = 1 if count < 10 * scale else 0
            return f"{count / scale:.{digits}f} {unit}"
    return f"{count} B"


def copy_code(
    code_dir: Path,
    entry_top_level: Path,
    run_dir: Path,
    only: Collection[str] | None = None,
    exclude: Sequence[str] = (),
    output_dir: Path | None = None,
) -> CodeCopy:
    """Copy the entry's top-level package and its sibling packages/modules into `run_dir`.

    `only` limits the siblings to these names: when the code folder is a past run folder, the
    names its record lists as its code copy, not files the run itself wrote there (that copy
    was filtered when it was made: .gitignore is not read again). Left out: what git ignores
    (but Python code), `exclude` (`__code_exclude__` glob patterns), `output_dir`, `run_dir`
    and other run folders (a folder holding a run.json); never the entry's own top-level
    package. Raises RunFolderError when a file cannot be read or written.
    """
    sources = [
        source
        for source in _top_level_sources(code_dir, entry_top_level)
        if only is None or source == entry_top_level or source.name in only
    ]
    ignored = git_ignored(code_dir, [s.name for s in sources]) if only is None else set()
    folders = (os.path.realpath(output_dir) if output_dir else None, os.path.realpath(run_dir))
    copier = _CodeCopier(run_dir, Exclusions(ignored, exclude, *folders))
    result = copier.result
    for source in list(sources):
        real = os.path.realpath(source)
        reason = copier.exclusions.reason(source.name, os.path.isdir(real), real)
        if reason and source != entry_top_level:
            result.excluded.append({"path": source.name, "reason": reason})
            sources.remove(source)
        else:
            copier.roots[real] = source.name
    for source in sources:
        try:
            if source.is_dir():
                copier.copy_tree(os.path.realpath(source), source.name)
            else:
                result.add_file(source.name, copy_file(source, run_dir / source.name))
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
        if name.startswith(".") or name in sources or name in SKIPPED_NAMES:
            continue
        path = Path(entry.path)
        is_module = name.endswith(".py") and entry.is_file()
        if is_module or (entry.is_dir() and (path / "__init__.py").is_file()):
            sources[name] = path
    return sorted(sources.values(), key=lambda p: p.name)


class _CodeCopier:
    """Copies package folders into the run folder, keeping what `CodeCopy` reports."""

    def __init__(self, run_dir: Path, exclusions: Exclusions) -> None:
        self.run_dir = str(run_dir)
        self.exclusions = exclusions
        self.roots: dict[str, str] = {}  # real path of each copied top-level source -> name
        self.result = CodeCopy()

    def copy_tree(self, root: str, name: str) -> None:
        """Copy the folder `root` (a real path) as `name`; links are copied as links."""
        pending = [name]
        while pending:
            relative = pending.pop()  # from the code folder, as in the copy
            folder = root + relative[len(name) :]
            os.mkdir(os.path.join(self.run_dir, relative))
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
            for entry in entries:
                if is_skipped(entry.name):
                    continue
                path = f"{relative}/{entry.name}"
                is_link = entry.is_symlink()
                is_dir = not is_link and entry.is_dir(follow_symlinks=False)
                reason = self.exclusions.reason(path, is_dir, entry.path)
                if reason:
                    self.result.excluded.append({"path": path, "reason": reason})
                elif is_link:
                    self.copy_link(entry.path, path)
                elif is_dir:
                    pending.append(path)
                elif entry.is_file(follow_symlinks=False):  # not a fifo, socket or device
                    target = Path(self.run_dir, path)
                    self.result.add_file(path, copy_file(Path(entry.path), target))

    def copy_link(self, source: str, path: str) -> None:
        """Copy the link `source` (at `path` from the code folder) as a link, never followed.

        A link to something the copy holds points at the copy, by a relative path; a link to
        anything else (outside the copied packages, or left out of the copy) keeps its absolute
        target, and a relative one gets its absolute target: the copied code finds what the
        original finds, as under --debug. A broken link is copied as it is, made absolute when
        it leads out of the copied packages.
        """
        text = os.readlink(source)
        parent = posixpath.dirname(path)
        written = text
        problem = _broken(source)
        if problem:
            self.result.broken_links.append({"path": path, "target": text, "problem": problem})
            lexical = posixpath.normpath(posixpath.join(parent, text))
            if os.path.isabs(text) or lexical.split("/")[0] not in self.roots.values():
                written = _absolute(source, text)
        else:
            inside = self._place_in_copy(os.path.realpath(source))
            if inside is None:
                written = _absolute(source, text)
            elif not (_climbs_then_names(text) and _lands_on(text, parent, inside)):
                written = posixpath.relpath(inside, parent)
        if os.path.isabs(written):
            self.result.outside_links.append({"path": path, "target": written})
        os.symlink(written, os.path.join(self.run_dir, path))
        self.result.links += 1

    def _place_in_copy(self, real: str) -> str | None:
        """Where the copy holds the real path `real` (from the run folder); None: nowhere."""
        for root, name in self.roots.items():
            if real == root:
                return name
            if real.startswith(root + os.sep):
                parts = real[len(root) + 1 :].split(os.sep)
                path, current = name, root
                for index, part in enumerate(parts):
                    path, current = f"{path}/{part}", os.path.join(current, part)
                    is_dir = index < len(parts) - 1 or os.path.isdir(current)
                    if is_skipped(part) or self.exclusions.reason(path, is_dir, current):
                        return None
                return path
        return None


def _broken(link: str) -> str | None:
    """What is wrong with the symbolic link `link`; None when it leads somewhere."""
    import errno

    try:
        os.stat(link)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link in a cycle of links"
        if exc.errno == errno.ENOENT:
            return "broken symbolic link"
        return f"symbolic link that cannot be followed ({exc.strerror})"
    return None


def _absolute(link: str, text: str) -> str:
    """The target `text` of `link` as an absolute path naming the same place.

    `link`'s folder is a real path (the copy never follows links), so `..` right after it
    climbs real folders and the join can be normalized; a `..` after another name may climb
    out of a linked folder, so such a text is joined as it is, for the kernel to resolve.
    """
    if os.path.isabs(text):
        return text
    joined = os.path.join(os.path.dirname(link), text)
    return os.path.normpath(joined) if _climbs_then_names(text) else joined


def _climbs_then_names(text: str) -> bool:
    """Whether the relative path `text` is some `..` then only names (no `..` after a name)."""
    if os.path.isabs(text):
        return False
    parts = [part for part in text.split("/") if part not in ("", ".")]
    climbs = 0
    while climbs < len(parts) and parts[climbs] == "..":
        climbs += 1
    return ".." not in parts[climbs:]


def _lands_on(text: str, parent: str, inside: str) -> bool:
    """Whether the relative link `text` in folder `parent` names `inside` (from the run folder).

    Trusted only for a text that climbs then descends (`_climbs_then_names`): `a/../b` may
    pass through a link or a folder the copy does not hold, where `..` leads elsewhere.
    """
    return posixpath.normpath(posixpath.join(parent, text)) == inside
