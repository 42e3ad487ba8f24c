"""The sweep record: `{output_dir}/.sweeps/{ID}/`, beside the members' name folders.

- `sweep.json`: the definition (command line, config, overrides, dimensions, options), its
  members (index, hash, values, run name), and the state of the sweep's supervisor (pid,
  `running` / `ended` / `interrupted`); replaced whole, atomically, as run.json is.
- `members.jsonl`: one line appended per member run folder allocated (index, hash, run
  folder): an append is atomic enough for a line this short and costs the same for the 10th
  and the 10,000th member, where rewriting sweep.json would not. Resume reads it.
- `sweep.log`: the messages of a detached sweep's supervisor.
- `array-K.sbatch`, `slurm-JOB_TASK.out`: a `--slurm` sweep's batch scripts (each maps its
  array task ids to the members' run folders) and, by default, Slurm's output files.

The members' own records (run.json) say how each run went; sweep.json keeps a snapshot of
each member's last run folder and status as of the sweep's end (`ls --sweep` reads run.json).

A `--slurm` sweep has no supervisor of expyrun's once its arrays are queued: its state,
`submitted` in sweep.json, is derived from its members' records wherever it is shown
(`slurm_state`: running, submitted or ended), and the first command that finds every member
ended records the end (`record_slurm_end`), as a local sweep's supervisor does at its end.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from expyrun.errors import RunFolderError
from expyrun.run.record import ENDED as ENDED_STATUSES
from expyrun.run.record import NOT_STARTED as WAITING_STATUSES
from expyrun.run.record import Status

SWEEPS_FOLDER = ".sweeps"
SWEEP_FILE = "sweep.json"
MEMBERS_FILE = "members.jsonl"
SWEEP_LOG = "sweep.log"
ID_BYTES = 4  # 8 hex digits: typed by hand in `expyrun stop ID`
# How deep below a search root `find_sweep` looks for an output dir holding `.sweeps/`.
SEARCH_DEPTH = 3

# The states of a sweep's supervisor, as sweep.json records them.
RUNNING, ENDED, INTERRUPTED = "running", "ended", "interrupted"
# A --slurm sweep's state once queued: Slurm runs its members, no supervisor of expyrun's.
SUBMITTED = "submitted"


class SweepRecord(NamedTuple):
    """The content of sweep.json."""

    id: str
    created_at: str
    command: list[str]
    cwd: str
    config_path: str  # as typed (relative to cwd)
    overrides: list[str]
    sweep_flags: list[list[str]]  # each --sweep LABEL VALUES as typed
    dimensions: list[dict[str, Any]]  # {"keys": [...], "values": [[text, ...], ...]}
    options: dict[str, Any]  # SweepOptions and the launch flags a resume needs
    line_key: str  # the hash of the command line's definition (same command: same key)
    definition: str  # the hash of the dimensions and every member's config
    members: list[dict[str, Any]]  # {"index", "digest", "values", "name"[, "run_dir", "status"]}
    state: str = RUNNING
    pid: int | None = None
    pid_started_at: float | None = None
    host: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    summary: dict[str, int] | None = None  # members by status at the end
    # A --slurm sweep (sweep/slurm.py): every job array submitted, oldest first
    # ({"job_id", "array", "members": {task id: member number}, "script", "submitted_at"}).
    slurm_jobs: list[dict[str, Any]] | None = None
    submitted_at: str | None = None  # its last submission

    def replace(self, **changes: Any) -> SweepRecord:
        """A copy with some fields changed."""
        return self._replace(**changes)


def slurm_state(statuses: Iterable[str]) -> tuple[str, dict[str, int]]:
    """The state of a submitted (--slurm) sweep from its members' statuses; members by status.

    `statuses`: each member's last run folder's status (`ls --sweep`'s, Slurm asked for the
    pending ones), `not started` for a member without one. The state is `running` while a
    member runs, else `submitted` while one waits in Slurm (`pending`, or `prepared` while
    being submitted), else `ended`: nothing of the sweep is left to run on its own (a member
    never submitted waits for a resume). No process rewrites a queued sweep's record, so this
    is what every command shows (issue 16: the record never says `submitted` forever).
    """
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    if Status.RUNNING.value in counts:
        return RUNNING, counts
    if any(status in WAITING_STATUSES for status in counts):
        return SUBMITTED, counts
    return ENDED, counts


def record_slurm_end(
    folder: Path, seen: SweepRecord, members: list[dict[str, Any]], ended_at: str | None
) -> bool:
    """Record in sweep.json that a submitted sweep ended: state, summary, members, end time.

    `seen`: the record as read (`submitted`); `members`: the recorded members, each with its
    last `run_dir` and `status`, every one ended (`slurm_state`). Written only if the record
    did not change since it was read, under the start lock taken without waiting: a command
    resubmitting the sweep (or resuming it here) holds that lock while it rewrites the record,
    and its record must not be overwritten by this stale one. False when not written (the lock
    is taken, the record changed, or it cannot be written): the next reader tries again.
    """
    fd = _try_start_lock(folder.parent.parent)
    if fd is None:
        return False
    try:
        current = read(folder)
        if current != seen:
            return False
        summary: dict[str, int] = {}
        for member in members:
            status = str(member.get("status"))
            if status in ENDED_STATUSES:
                summary[status] = summary.get(status, 0) + 1
        write(
            folder,
            seen.replace(state=ENDED, ended_at=ended_at, summary=summary, members=members),
        )
        return True
    except RunFolderError:
        return False
    finally:
        os.close(fd)


def sweeps_folder(output_dir: Path) -> Path:
    """Where the sweeps of runs kept in `output_dir` are recorded."""
    return output_dir / SWEEPS_FOLDER


def create_folder(output_dir: Path) -> tuple[str, Path]:
    """Make a new, empty sweep folder with a fresh id: (id, folder)."""
    parent = sweeps_folder(output_dir)
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        sweep_id = secrets.token_hex(ID_BYTES)
        folder = parent / sweep_id
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return sweep_id, folder


def start_lock(output_dir: Path) -> int:
    """Take the right to start a sweep whose runs go to `output_dir`: an open fd to close.

    Held from planning until the sweep is recorded `running` (by this process, or by the
    background supervisor it waits for), so that the same command started meanwhile plans
    after that and sees it running, instead of planning the same members again. A flock on
    the `.sweeps` folder: it waits for the holder (a second or so); a dead holder's goes too.
    """
    parent = sweeps_folder(output_dir)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise RunFolderError(f"cannot write the sweep record: {exc.strerror}", path=parent) from exc
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _try_start_lock(output_dir: Path) -> int | None:
    """`start_lock` if it is free now (an open fd to close), else None; never waits."""
    try:
        fd = os.open(sweeps_folder(output_dir), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def write(folder: Path, record: SweepRecord) -> None:
    """Replace sweep.json with `record`, atomically (readers never see half a file)."""
    temporary = folder / f".{SWEEP_FILE}.{os.getpid()}.tmp"
    try:
        temporary.write_text(json.dumps(record._asdict(), indent=1, default=str), encoding="utf-8")
        os.replace(temporary, folder / SWEEP_FILE)
    except OSError as exc:
        raise RunFolderError(
            f"cannot write the sweep record: {exc.strerror}", path=folder / SWEEP_FILE
        ) from exc


def read(folder: Path) -> SweepRecord:
    """The record in `folder`. Raises RunFolderError when it is missing or unreadable."""
    try:
        data = json.loads((folder / SWEEP_FILE).read_text(encoding="utf-8"))
        names = set(SweepRecord._fields)
        return SweepRecord(**{k: v for k, v in data.items() if k in names})
    except (OSError, ValueError, TypeError) as exc:
        raise RunFolderError(f"not a sweep record: {exc}", path=folder / SWEEP_FILE) from exc


def append_member(folder: Path, index: int, digest: str, run_dir: Path) -> None:
    """Note in members.jsonl that member `index` got the run folder `run_dir`."""
    line = json.dumps({"index": index, "digest": digest, "run_dir": str(run_dir)}) + "\n"
    try:
        fd = os.open(folder / MEMBERS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise RunFolderError(
            f"cannot write the sweep record: {exc.strerror}", path=folder / MEMBERS_FILE
        ) from exc


def member_runs(folder: Path) -> dict[str, list[str]]:
    """The run folders of each member hash, oldest first (a torn last line is skipped)."""
    runs: dict[str, list[str]] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in (folder / MEMBERS_FILE).read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                entry = json.loads(line)
                runs.setdefault(str(entry["digest"]), []).append(str(entry["run_dir"]))
    return runs


def records_in(output_dir: Path) -> Iterator[tuple[Path, SweepRecord]]:
    """Every readable sweep record under `output_dir` (unreadable ones are skipped)."""
    parent = sweeps_folder(output_dir)
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in sorted(parent.iterdir()):
            with contextlib.suppress(RunFolderError):
                yield entry, read(entry)


def find_sweep(text: str, roots: Sequence[str] = (".",)) -> Path:
    """The folder of the sweep `text` names: a sweep folder, or an id searched under `roots`.

    An id is looked up in `ROOT/.sweeps/ID` and in the `.sweeps/ID` of folders up to
    `SEARCH_DEPTH` levels below each root (the output dir is usually `outputs/`).

    Raises:
        RunFolderError: no sweep of that id, or the id names sweeps in two output dirs.
    """
    if (Path(text) / SWEEP_FILE).is_file():
        return Path(os.path.abspath(text))
    if not text or "/" in text or text.startswith("."):
        raise RunFolderError("not a sweep folder or a sweep id", path=text)
    found = []
    for root in roots:
        for parent in _output_dirs(Path(root), SEARCH_DEPTH):
            candidate = parent / SWEEPS_FOLDER / text
            if (candidate / SWEEP_FILE).is_file():
                found.append(Path(os.path.abspath(candidate)))
    if not found:
        raise RunFolderError(
            f"no sweep '{text}' under {', '.join(roots)}",
            hint="give the output dir (expyrun ls --sweep ID OUTPUT_DIR) or the sweep folder",
        )
    if len(set(found)) > 1:
        raise RunFolderError(f"two sweeps named '{text}': {found[0]} and {found[1]}")
    return found[0]


def _output_dirs(root: Path, depth: int) -> Iterator[Path]:
    """`root` and its sub-folders down to `depth` levels, skipping dot folders and runs."""
    yield root
    if depth == 0:
        return
    with contextlib.suppress(OSError):
        for entry in os.scandir(root):
            if entry.name.startswith(".") or entry.name.startswith("exp."):
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from _output_dirs(Path(entry.path), depth - 1)
