"""run.json on disk: its atomic replacement, the reserve for a full disk, and its lock.

Readers (`expyrun ls`, `status`, `logs -f`, a dashboard) may read run.json at any time, so it
is always replaced whole: written to a temporary file in the run folder, then renamed.
Writers hold the record's lock (flock(2) on run.json itself, see `_lock`) while they read and
replace it: the supervisor writes the record while people edit its tags and note (`expyrun
tag`, `note`) or `expyrun stop` records its request, and no write may lose another's fields.
`record.py` works on `RunRecord`s on top of this JSON layer.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from expyrun.errors import RunFolderError

RECORD_FILE = "run.json"
# Room set aside in the run folder while it runs, for the records still to come: a disk that
# the entry fills must not cost the run its final record (run.json is a few KiB; requeued
# Slurm runs keep every attempt).
RESERVE_FILE = ".run.json.reserve"
RESERVE_BYTES = 256 * 1024
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# How long a writer waits for the lock. A supervisor then writes without it (its record must
# not wait on an edit stopped mid-way, e.g. a suspended `expyrun tag`); an edit gives up.
LOCK_TIMEOUT_SECONDS = 5.0
_LOCK_POLL_SECONDS = 0.005
# The fields people edit while a run may run (`expyrun tag`, `expyrun note`): the record on
# disk holds their latest values, which a supervisor's write keeps (`write_json`).
EDITED_FIELDS = ("tags", "note")


class RecordError(RunFolderError):
    """run.json cannot be written (the run folder is gone, the disk is full, no lock)."""


def write_json(run_dir: Path, data: dict[str, Any], ended: bool) -> None:
    """Replace run.json with `data`, keeping the edits made to the record on disk.

    Under the record's lock, the fields people edit (`EDITED_FIELDS`) are taken from the
    record on disk, and a `stop_request` recorded there for the same attempt (same
    `started_at`: `expyrun stop` records it before it signals) is kept when `data` has none:
    the supervisor's record, built from what it read earlier, loses neither. Without the lock
    after LOCK_TIMEOUT_SECONDS, it writes all the same. The first record of a folder (no
    run.json yet) is written without it: there is nothing to lock, and nobody else writes a
    folder before its first record. `ended`: the run has ended (its reserve goes). See
    `_replace` for the full-disk rules and errors (RecordError).
    """
    try:
        lock = _lock(run_dir)
    except FileNotFoundError:  # the first record: nothing to keep
        _replace(run_dir, data, ended)
        return
    try:
        _replace(run_dir, _with_edits(run_dir, lock, data), ended)
    finally:
        if lock is not None:
            os.close(lock)


def update_json(
    run_dir: Path, change: Callable[[dict[str, Any]], tuple[dict[str, Any], bool]]
) -> dict[str, Any]:
    """Read run.json, apply `change` (-> the new data, and whether the run has ended), and
    replace it, all under the record's lock; the data written.

    Raises:
        RecordError: the lock cannot be had (another writer holds it for more than
            LOCK_TIMEOUT_SECONDS, a record not writable), or run.json cannot be written.
        OSError, ValueError: run.json cannot be read (from `change` too: not a record).
    """
    lock = _lock(run_dir)
    if lock is None:
        raise RecordError(
            "cannot lock the record: another writer holds it, or run.json is not writable",
            path=run_dir / RECORD_FILE,
        )
    try:
        changed, ended = change(json.loads(_read_all(lock)))
        _replace(run_dir, changed, ended)
        return changed
    finally:
        os.close(lock)


def _with_edits(run_dir: Path, lock: int | None, data: dict[str, Any]) -> dict[str, Any]:
    """`data` with the edited fields of the record on disk, read from the locked run.json, or
    from run.json as it is when the lock could not be had (see `write_json`)."""
    try:
        if lock is None:
            with open(run_dir / RECORD_FILE, "rb") as f:
                disk = json.loads(f.read())
        else:
            disk = json.loads(_read_all(lock))
    except (OSError, ValueError):
        return data  # gone, or unreadable: nothing to keep
    if not isinstance(disk, dict):
        return data
    kept = {field: disk[field] for field in EDITED_FIELDS if field in disk}
    tags = kept.get("tags")
    if tags is not None and not (
        isinstance(tags, list) and all(isinstance(tag, str) for tag in tags)
    ):
        del kept["tags"]
    asked = disk.get("stop_request")
    same_attempt = disk.get("started_at") == data.get("started_at")
    if data.get("stop_request") is None and isinstance(asked, dict) and same_attempt:
        kept["stop_request"] = asked
    return {**data, **kept} if kept else data


def _lock(run_dir: Path) -> int | None:
    """Take the record's lock, waiting up to LOCK_TIMEOUT_SECONDS: an fd of run.json, locked
    (flock(2)), whose file is still run.json; None when it cannot be had (held too long, a
    record not writable, no flock here).

    The lock is run.json's own: no file is made for it (creating a file costs up to ~0.3 ms
    on some file systems, at each of a run's three writes). As every write replaces run.json
    by a rename, the file a writer waited for may no longer be run.json once it has its lock
    (the writer before it replaced it, and let go): it then tries again with the new one.
    Opened for writing, as flock on NFS takes a POSIX write lock (flock(2), "NFS details").

    Raises FileNotFoundError when there is no run.json.
    """
    path = run_dir / RECORD_FILE
    deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
    while True:
        try:
            fd = _open_record(path)
        except FileNotFoundError:
            raise
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _same_file(fd, path):
                return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(_LOCK_POLL_SECONDS)
        except OSError:
            os.close(fd)
            return None
        os.close(fd)


def _open_record(path: Path) -> int:
    """run.json, opened for writing where allowed (a record made read-only: for reading, as
    flock on a local file system needs no write access)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except PermissionError:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def _same_file(fd: int, path: Path) -> bool:
    try:
        held, named = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)


def _read_all(fd: int) -> bytes:
    """The whole file behind `fd`, from its start."""
    parts = []
    offset = 0
    while chunk := os.pread(fd, 1 << 16, offset):
        parts.append(chunk)
        offset += len(chunk)
    return b"".join(parts)


def _replace(run_dir: Path, data: dict[str, Any], ended: bool) -> None:
    """Replace run.json atomically, even on a full disk.

    A run folder keeps a reserve file (`RESERVE_FILE`, RESERVE_BYTES) from its first record
    on (`prepared`: the entry may fill the disk before `running`): when the disk is full
    (ENOSPC, EDQUOT), the record is written into it and it takes run.json's place
    (`replace_from_reserve`), so a run whose output filled the disk still ends with a true
    record. The record that ends a run is written into the reserve, which becomes run.json:
    no new file, and none deleted (on ext4 without a journal, each deleted inode slows the
    next ones made near it). A failed write leaves no temporary file behind.

    Raises RecordError when run.json cannot be written (the run folder was deleted or moved
    while the run ran; a disk full even without the reserve).
    """
    path = run_dir / RECORD_FILE
    temporary = run_dir / f".{RECORD_FILE}.{os.getpid()}.tmp"
    text = json.dumps(data, indent=2) + "\n"
    reserve_path = run_dir / RESERVE_FILE
    if ended and replace_from_reserve(reserve_path, path, text):
        return
    try:
        temporary.write_text(text, encoding="utf-8")
        # The reserve before the rename: once run.json is replaced, the next writer may take
        # its lock (the new file's) while this one still holds the old file's.
        if ended:
            _remove(reserve_path)
        elif not reserve_path.exists():
            make_reserve(reserve_path)
        os.replace(temporary, path)
    except OSError as exc:
        _remove(temporary)
        if not run_dir.is_dir():
            raise RecordError(
                "cannot write the record: the run folder is gone (deleted or moved while "
                "the run ran)",
                path=run_dir,
            ) from exc
        if exc.errno not in _DISK_FULL or not replace_from_reserve(reserve_path, path, text):
            raise RecordError(f"cannot write the record: {exc.strerror or exc}", path=path) from exc


def replace_from_reserve(reserve: Path, path: Path, text: str) -> bool:
    """Replace `path` with `text` written into the reserve file `reserve`: on a full disk, and
    for the record that ends a run (`_replace`).

    The reserve's blocks were set aside when the disk had room (posix_fallocate): writing into
    them takes no new block, so another writer filling the disk meanwhile (a task's output)
    cannot take them, as it could take blocks freed by deleting the reserve. The reserve is
    renamed over `path`; the next record makes a new one when there is room. False when there
    is no reserve or the write failed all the same (`text` larger than the reserve).
    """
    data = text.encode("utf-8")
    try:
        fd = os.open(reserve, os.O_WRONLY)
    except OSError:
        return False
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.ftruncate(fd, len(data))
    except OSError:
        return False
    finally:
        os.close(fd)
    try:
        os.replace(reserve, path)
    except OSError:
        return False
    return True


def _remove(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False
    except OSError:
        return False


def make_reserve(reserve: Path, size: int = RESERVE_BYTES) -> None:
    """Set aside `size` bytes at `reserve` for the records still to come (posix_fallocate;
    best effort: a full disk is no error). See `replace_from_reserve`."""
    try:
        fd = os.open(reserve, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # as run.json
    except OSError:
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except (OSError, AttributeError):
        try:
            os.write(fd, b"\0" * size)
        except OSError:
            os.close(fd)
            _remove(reserve)
            return
    os.close(fd)
