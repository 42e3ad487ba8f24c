"""`expyrun diff RUN_A RUN_B`: how two runs differ, from what their run folders keep.

Compared, in this order: the resolved configs (config.yml, as dotted keys: `training.lr`,
`layers.0.units`), the results (run.json `result`, when the entry returned one), the frozen
requirements (pip-sync style, as `reproduce --check` lists them; the runs' own code is not
compared), the git state (commit, dirty flag, the saved `git.diff`), and with `--code` the
code copies (a unified diff per file; a binary file is one line). Exit 0 when nothing
differs, 1 when something does (as diff(1)), 2 for bad input.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from expyrun import console
from expyrun.errors import ExitCode, RunFolderError
from expyrun.reproduce.differences import Difference, compare
from expyrun.run import freeze, snapshot
from expyrun.run.code_exclusions import SKIPPED_NAMES
from expyrun.run.record import RunRecord
from expyrun.runs.reading import open_run

# A value that is absent on one side (shown as nothing, JSON null with `kind`).
_ABSENT: Any = object()


class Change(NamedTuple):
    """One difference: a dotted key (or a requirement's name), its kind, both sides."""

    kind: str  # "added" (only in B), "removed" (only in A) or "changed"
    key: str
    before: Any = None  # in A (None when added)
    after: Any = None  # in B (None when removed)

    def text(self) -> str:
        """`changed  training.lr: 0.01 -> 0.1`, `added    model.dropout: 0.5`."""
        if self.kind == "changed":
            return f"changed  {self.key}: {_show(self.before)} -> {_show(self.after)}"
        value = self.after if self.kind == "added" else self.before
        return f"{self.kind:8s} {self.key}: {_show(value)}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "before": self.before, "after": self.after}


class FileDiff(NamedTuple):
    """One file of the code copies that differs: its path, its kind, the unified diff."""

    path: str  # relative to the run folder
    kind: str  # "added", "removed", "changed" or "binary"
    diff: str  # unified diff text ("" for a binary file)


class RunDiff(NamedTuple):
    """Every difference between two runs, by section."""

    config: list[Change]
    result: list[Change]
    requirements: list[Difference]
    git: list[Change]
    code: list[FileDiff] | None  # None: not compared (no --code)

    @property
    def same(self) -> bool:
        sections = (self.config, self.result, self.requirements, self.git, self.code or [])
        return not any(sections)


def show_diff(run_a: str, run_b: str, code: bool, as_json: bool) -> int:
    """Print how the run folders `run_a` and `run_b` differ; 0 when they do not, else 1.

    Raises:
        RunFolderError: a RUN is not a readable run folder, or its config.yml cannot be read.
    """
    dir_a, record_a = open_run(run_a)
    dir_b, record_b = open_run(run_b)
    found = diff_runs(dir_a, record_a, dir_b, record_b, code)
    if as_json:
        console.out(json.dumps(_as_json(str(dir_a), str(dir_b), found), indent=2))
    else:
        text = _as_text(found)
        if text:
            console.out(text)
        console.info(f"{dir_a} and {dir_b} " + ("are the same" if found.same else "differ"))
    return ExitCode.OK if found.same else ExitCode.DIFFERS


def diff_runs(
    dir_a: Path, record_a: RunRecord, dir_b: Path, record_b: RunRecord, code: bool
) -> RunDiff:
    """The differences between two runs (A the old side, B the new)."""
    result_a = record_a.to_dict().get("result", _ABSENT)
    result_b = record_b.to_dict().get("result", _ABSENT)
    return RunDiff(
        config=diff_values(_config(dir_a, record_a), _config(dir_b, record_b)),
        result=diff_values(result_a, result_b, "result"),
        requirements=_requirements(dir_a, dir_b),
        git=_git(dir_a, record_a, dir_b, record_b),
        code=diff_code(dir_a, record_a, dir_b, record_b) if code else None,
    )


def diff_values(before: Any, after: Any, prefix: str = "") -> list[Change]:
    """Leaf differences between two JSON/YAML values, by dotted key, sorted by key.

    Mappings are walked by key and lists by index (`layers.0.units`, as overrides name
    them); any other value, or a value whose type changed, is a leaf. A whole mapping added
    or removed is one change per leaf.
    """
    old = dict(_leaves(before, prefix)) if before is not _ABSENT else {}
    new = dict(_leaves(after, prefix)) if after is not _ABSENT else {}
    changes = []
    for key in sorted(old.keys() | new.keys()):
        if key not in new:
            changes.append(Change("removed", key, old[key]))
        elif key not in old:
            changes.append(Change("added", key, None, new[key]))
        elif not _equal(old[key], new[key]):
            changes.append(Change("changed", key, old[key], new[key]))
    return changes


def _leaves(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _leaves(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from _leaves(item, f"{prefix}.{index}" if prefix else str(index))
    elif prefix:
        yield prefix, value


def _equal(a: Any, b: Any) -> bool:
    """Equal and of the same type: `1` and `1.0`, `1` and `true` differ in a config."""
    return type(a) is type(b) and a == b


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _config(run_dir: Path, found: RunRecord) -> Any:
    """config.yml, its run's own folder written `${EXPYRUN_RUN_DIR}` (`__run__.__code__` of a
    code copy is the run folder: it differs between any two runs and says nothing)."""
    path = run_dir / snapshot.CONFIG_FILE
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return _ABSENT  # a record without its snapshot: every key counts as missing
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RunFolderError(f"cannot read the config: {exc}", path=path) from exc
    own = {os.path.abspath(run_dir), found.run_dir}
    return _own_folder_named(config, own)


# How diff writes a run's own folder in its config: the variable that names it to the run.
RUN_DIR_PLACEHOLDER = "${EXPYRUN_RUN_DIR}"


def _own_folder_named(value: Any, own: set[str]) -> Any:
    if isinstance(value, dict):
        return {key: _own_folder_named(item, own) for key, item in value.items()}
    if isinstance(value, list):
        return [_own_folder_named(item, own) for item in value]
    if isinstance(value, str):
        for folder in own:
            if value == folder or value.startswith(folder + os.sep):
                return RUN_DIR_PLACEHOLDER + value[len(folder) :]
    return value


def _requirements(dir_a: Path, dir_b: Path) -> list[Difference]:
    """pip-sync style differences of frozen_requirements.txt (A: before, B: after)."""
    texts: list[str | None] = []
    for run_dir in (dir_a, dir_b):
        try:
            texts.append((run_dir / freeze.FROZEN_REQUIREMENTS_FILE).read_text(encoding="utf-8"))
        except OSError:
            texts.append(None)  # a --debug run keeps none
    if texts[0] is None and texts[1] is None:
        return []
    before = freeze.parse_requirements(texts[0] or "")[0]
    after = freeze.parse_requirements(texts[1] or "")[0]
    return compare(before, after)


def _git(dir_a: Path, record_a: RunRecord, dir_b: Path, record_b: RunRecord) -> list[Change]:
    """Commit, branch and dirty flag, and whether the saved git.diff files differ."""
    state_a, state_b = record_a.git or {}, record_b.git or {}
    changes = [
        Change("changed", f"git.{field}", state_a.get(field), state_b.get(field))
        for field in ("commit", "branch", "dirty")
        if state_a.get(field) != state_b.get(field)
    ]
    diff_a, diff_b = (
        _read_bytes(dir_a / snapshot.GIT_DIFF_FILE),
        _read_bytes(dir_b / snapshot.GIT_DIFF_FILE),
    )
    if diff_a != diff_b:
        changes.append(
            Change("changed", f"git.{snapshot.GIT_DIFF_FILE}", _size(diff_a), _size(diff_b))
        )
    return changes


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _size(data: bytes | None) -> str | None:
    return None if data is None else f"{len(data)} bytes"


def diff_code(dir_a: Path, record_a: RunRecord, dir_b: Path, record_b: RunRecord) -> list[FileDiff]:
    """A unified diff of every file of the two code copies that differs, by path.

    The code copy is what run.json's `code_copy.copied` names (the top-level files and
    folders copied), less the `__pycache__` folders the run's imports wrote there; a run
    without one (`--debug`) has no files. Symbolic links are compared
    by their target; a file that is not UTF-8 text (or holds a NUL byte) is `binary`.
    """
    files_a, files_b = _code_files(dir_a, record_a), _code_files(dir_b, record_b)
    found = []
    for path in sorted(files_a.keys() | files_b.keys()):
        old, new = files_a.get(path), files_b.get(path)
        if old == new:
            continue
        kind = "added" if old is None else "removed" if new is None else "changed"
        texts = [_text(data) for data in (old, new)]
        if (old is not None and texts[0] is None) or (new is not None and texts[1] is None):
            found.append(FileDiff(path, "binary", ""))
            continue
        lines = difflib.unified_diff(
            (texts[0] or "").splitlines(keepends=True),
            (texts[1] or "").splitlines(keepends=True),
            fromfile=f"a/{path}" if old is not None else "/dev/null",
            tofile=f"b/{path}" if new is not None else "/dev/null",
        )
        found.append(FileDiff(path, kind, "".join(_ended(line) for line in lines)))
    return found


def _code_files(run_dir: Path, found: RunRecord) -> dict[str, bytes]:
    """The code copy's files: relative path -> content (a link: `-> target`, as bytes)."""
    copied = (found.code_copy or {}).get("copied")
    names = [name for name in copied if isinstance(name, str)] if isinstance(copied, list) else []
    files: dict[str, bytes] = {}
    for name in names:
        top = run_dir / name
        if top.is_symlink() or top.is_file():
            _add_file(files, run_dir, top)
            continue
        for folder, dirs, entries in os.walk(top):
            # Bytecode caches are written into the copy when the run imports from it.
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_NAMES)
            for entry in (*entries, *(d for d in dirs if os.path.islink(os.path.join(folder, d)))):
                _add_file(files, run_dir, Path(folder, entry))
    return files


def _add_file(files: dict[str, bytes], run_dir: Path, path: Path) -> None:
    relative = path.relative_to(run_dir).as_posix()
    try:
        if path.is_symlink():
            files[relative] = b"-> " + os.fsencode(os.readlink(path))
        else:
            files[relative] = path.read_bytes()
    except OSError:
        pass  # unreadable: left out of the comparison


def _text(data: bytes | None) -> str | None:
    if data is None:
        return None
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _ended(line: str) -> str:
    return line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"


def _as_text(found: RunDiff) -> str:
    blocks = []
    sections = {
        "config": [c.text() for c in found.config],
        "result": [c.text() for c in found.result],
        "requirements": [str(d) for d in found.requirements],
        "git": [c.text() for c in found.git],
    }
    for title, lines in sections.items():
        if lines:
            blocks.append(f"{title}:\n" + "\n".join("  " + line for line in lines))
    if found.code:
        lines = []
        for file in found.code:
            if file.kind == "binary":
                lines.append(f"Binary files a/{file.path} and b/{file.path} differ\n")
            else:
                lines.append(file.diff)
        blocks.append("code:\n" + "".join(lines).rstrip("\n"))
    return "\n".join(blocks)


def _as_json(run_a: str, run_b: str, found: RunDiff) -> dict[str, Any]:
    data: dict[str, Any] = {
        "run_a": run_a,
        "run_b": run_b,
        "same": found.same,
        "config": [c.to_json() for c in found.config],
        "result": [c.to_json() for c in found.result],
        "requirements": [d._asdict() for d in found.requirements],
        "git": [c.to_json() for c in found.git],
    }
    if found.code is not None:
        data["code"] = [file._asdict() for file in found.code]
    return data
