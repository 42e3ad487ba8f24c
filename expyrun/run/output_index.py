"""outputs.index: when and from which stream each stretch of outputs.log arrived.

outputs.log keeps the worker's bytes exactly; this small binary file beside it says, for each
stretch of the log, the wall-clock time its first byte was moved and the stream it came from
(Guild AI's `output.index` is the precedent). `expyrun logs --timestamps/--stdout/--stderr`
read it; a log without an index (an older expyrun, a lost file) still renders.

Format (little-endian): an 8-byte magic `EXPYIDX1`, then fixed-size records of 17 bytes,
`<QdB`: the log offset of the stretch's first byte (u64), its time in seconds since the epoch
(f64, from a monotonic clock anchored once to the wall clock, so times never go backwards within
one supervisor), and its stream (u8: 1 stdout, 2 stderr, 0 both merged into one pipe). A stretch
ends where the next record starts (the last one at the end of the log). A record is appended only
when the stream changes or `COALESCE_SECONDS` have passed since the current stretch started, so
the file stays small (a few records per second of steady output) and a line's time is at most
that late. Several supervisors of one log (Slurm requeues) append to the same index.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from expyrun.run.folder import OUTPUTS_LOG

INDEX_FILE = "outputs.index"
MAGIC = b"EXPYIDX1"
RECORD = struct.Struct("<QdB")
# A stretch of one stream spans at most this long: the precision of `logs --timestamps`.
COALESCE_SECONDS = 0.01
# Records are written in batches at most this old (the supervisor also flushes at the end).
FLUSH_SECONDS = 0.2
STDOUT, STDERR, MERGED = 1, 2, 0


class Chunk(NamedTuple):
    """One stretch of outputs.log: bytes [offset, offset + length) of one stream."""

    offset: int
    length: int
    time: float  # seconds since the epoch when its first byte was moved
    stream: int  # STDOUT, STDERR or MERGED


class IndexWriter:
    """Appends records to outputs.index as the tee moves bytes; never raises on a full disk."""

    def __init__(self, path: Path) -> None:
        """Open (create) `path` for appending, writing the magic when it is new.

        Raises OSError when the file cannot be opened (the caller runs without an index).
        """
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        self._pending = bytearray(MAGIC if os.fstat(self._fd).st_size == 0 else b"")
        self._wall_minus_monotonic = time.time() - time.monotonic()
        self._stream = -1
        self._started = 0.0
        self._last_flush = time.monotonic()
        self.failed = False  # True once a write failed (the index is then abandoned)

    def moved(self, offset: int, stream: int) -> None:
        """Note that bytes of `stream` were appended to the log at `offset` just now."""
        now = time.monotonic()
        if stream != self._stream or now - self._started >= COALESCE_SECONDS:
            self._stream, self._started = stream, now
            self._pending += RECORD.pack(offset, now + self._wall_minus_monotonic, stream)
            if now - self._last_flush >= FLUSH_SECONDS:
                self.flush()

    def flush_due_in(self) -> float | None:
        """Flush when pending records are `FLUSH_SECONDS` old; seconds until the next is due.

        None when nothing waits (the poll loop then needs no wake-up for the index).
        """
        if not self._pending or self.failed:
            return None
        left = self._last_flush + FLUSH_SECONDS - time.monotonic()
        if left > 0:
            return left
        self.flush()
        return None

    def flush(self) -> None:
        """Write the pending records (a failure abandons the index; the log is unaffected)."""
        self._last_flush = time.monotonic()
        if not self._pending or self.failed:
            return
        try:
            written = os.write(self._fd, self._pending)
            del self._pending[:written]
        except OSError:
            self.failed = True
            self._pending.clear()

    def close(self) -> None:
        """Flush, then close the file (never raises: the index is best effort)."""
        self.flush()
        try:
            os.close(self._fd)
        except OSError:
            self.failed = True


def index_path(log_path: Path) -> Path:
    """The index of a log: outputs.index for outputs.log, outputs.task1.index for a task's log."""
    return log_path.with_suffix(Path(INDEX_FILE).suffix)


def open_index(log_path: Path, fresh: bool) -> IndexWriter | None:
    """The writer of the index of `log_path`, None when it cannot be opened (the run goes on).

    `fresh`: the log starts empty, so an index left there (of another log) is removed first;
    otherwise (a new attempt appending to the log) records are appended.
    """
    path = index_path(log_path)
    try:
        if fresh:
            path.unlink(missing_ok=True)
        return IndexWriter(path)
    except OSError:
        return None


def read_index(
    run_dir: Path, log_size: int | None = None, log: str = OUTPUTS_LOG
) -> Iterator[Chunk]:
    """The chunks of `run_dir`'s outputs.log, in log order; nothing when there is no index.

    Args:
        run_dir: the run folder.
        log_size: the log's size in bytes (the end of the last chunk); default: its size now.
        log: the log's file name in the run folder (a task's: `outputs.task1.log`).

    A missing, unreadable or foreign file yields nothing; a truncated last record is ignored;
    records whose offsets go backwards (a damaged file) are skipped.
    """
    if log_size is None:
        try:
            log_size = (run_dir / log).stat().st_size
        except OSError:
            log_size = 0
    try:
        with open(index_path(run_dir / log), "rb") as file:
            if file.read(len(MAGIC)) != MAGIC:
                return
            previous: tuple[int, float, int] | None = None
            while block := file.read(RECORD.size * 4096):
                usable = len(block) - len(block) % RECORD.size
                for offset, when, stream in RECORD.iter_unpack(block[:usable]):
                    if previous is not None and offset >= previous[0]:
                        if offset > previous[0]:
                            yield Chunk(previous[0], offset - previous[0], previous[1], previous[2])
                        previous = (offset, when, stream)
                    elif previous is None:
                        previous = (offset, when, stream)
                if usable < len(block):
                    break
    except OSError:
        return
    if previous is not None and log_size > previous[0]:
        yield Chunk(previous[0], log_size - previous[0], previous[1], previous[2])
