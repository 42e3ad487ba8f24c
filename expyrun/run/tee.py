"""Copy the worker's stdout and stderr pipes, byte for byte, into outputs.log and the terminal.

outputs.log comes first: on Linux the bytes move from the pipe into the file with splice(2), so
they never sit in the supervisor's memory, and a supervisor killed at any instant loses nothing
(what is still in the pipe is saved by the worker, which holds a read end too). Elsewhere, or
when the file system refuses splice, a plain read and write do the same job.

The terminal copy is read back from the file's page cache by a thread of its own, so a terminal
that does not read (`| less` paused, Ctrl-S, a stalled ssh) never delays outputs.log nor the
supervisor's handling of signals. It keeps the order of the bytes across stdout and stderr. It
is best effort: if the supervisor's stdout or stderr goes away (terminal closed, `| head`), that
copy stops and the run and outputs.log go on. Bytes are never decoded.
"""

from __future__ import annotations

import _thread
import errno
import os
import select
import stat
import time
from _queue import SimpleQueue
from collections import deque
from collections.abc import Callable
from typing import Any

from expyrun.run.output_index import IndexWriter

# Largest chunk moved per call: big enough for throughput, small enough to stay responsive.
CHUNK_BYTES = 1 << 20
# The terminal copy's backlog is a list of (stream, start, length) runs of the log; past this
# many, the supervisor stops reading the pipes until the terminal catches up (memory bound:
# ~100 bytes a run). Runs of one stream merge, so only stream switches count.
TERMINAL_BACKLOG_RUNS = 100_000
# Output the log could not take (a full disk) goes to the terminal from memory, up to this much
# waiting at a time; past it, the terminal copy skips it too.
TERMINAL_MEMORY_BYTES = 8 << 20
# write(2)/splice(2) errors of a full file system or file size limit: the run goes on.
LOG_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _is_dev_null(fd: int) -> bool:
    try:
        st = os.fstat(fd)
        null = os.stat(os.devnull)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == null.st_rdev


class _TerminalCopy:
    """A thread that copies runs of outputs.log to the terminal streams, in order."""

    def __init__(self, log_fd: int) -> None:
        self._log_fd = log_fd
        self._runs: deque[list[Any]] = deque()  # [sink, start, length, bytes or None]
        self._memory = 0  # bytes held in runs that are not in the log
        self._lock = _thread.allocate_lock()
        self._wakeup: SimpleQueue[None] = SimpleQueue()
        self._idle = True
        self._closed = False
        self._abandoned = False
        self._finished = _thread.allocate_lock()
        self._finished.acquire()  # released when the thread has copied everything and ended
        self.dead_sinks: set[int] = set()
        _thread.start_new_thread(self._copy_forever, ())

    def add(self, sink: int, start: int, length: int) -> None:
        with self._lock:
            if sink in self.dead_sinks:
                return
            last = self._runs[-1] if self._runs else None
            if (
                last is not None
                and last[3] is None
                and last[0] == sink
                and last[1] + last[2] == start
            ):
                last[2] += length
            else:
                self._runs.append([sink, start, length, None])
            wake, self._idle = self._idle, False
        if wake:
            self._wakeup.put(None)

    def add_bytes(self, sink: int, data: bytes) -> bool:
        """Queue bytes that are not in the log; False when they are dropped (too much waits)."""
        with self._lock:
            if sink in self.dead_sinks:
                return True
            if self._memory + len(data) > TERMINAL_MEMORY_BYTES:
                return False
            self._memory += len(data)
            self._runs.append([sink, 0, len(data), data])
            wake, self._idle = self._idle, False
        if wake:
            self._wakeup.put(None)
        return True

    def backlog(self) -> int:
        return len(self._runs)

    def close(self) -> None:
        """No more runs will come: the thread ends once it has copied the backlog."""
        with self._lock:
            self._closed = True
            wake, self._idle = self._idle, False
        if wake:
            self._wakeup.put(None)

    def wait(self, timeout: float) -> bool:
        if self._finished.acquire(timeout=timeout):
            self._finished.release()
            return True
        return False

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            self._runs.clear()
        self.close()

    def _next(self) -> list[Any] | None:
        while True:
            with self._lock:
                if self._runs and not self._abandoned:
                    run = self._runs.popleft()
                    if run[3] is not None:
                        self._memory -= run[2]
                    return run
                if self._closed:
                    return None
                self._idle = True
            self._wakeup.get()

    def _copy_forever(self) -> None:
        try:
            while (run := self._next()) is not None:
                sink, start, length, data = run
                if sink in self.dead_sinks:
                    continue
                if data is not None:
                    self._write(sink, data)
                else:
                    self._copy(sink, start, length)
        finally:
            self._finished.release()

    def _copy(self, sink: int, start: int, length: int) -> None:
        while length > 0 and not self._abandoned:
            data = os.pread(self._log_fd, min(length, CHUNK_BYTES), start)
            if not data or not self._write(sink, data):
                return
            start += len(data)
            length -= len(data)

    def _write(self, sink: int, data: bytes) -> bool:
        try:
            _write_all(sink, data)
            return True
        except OSError:
            # EPIPE (`| head` exited), EIO (terminal closed): stop copying, keep logging.
            with self._lock:
                self.dead_sinks.add(sink)
            return False


class Tee:
    """Pump bytes from pipes to the log and to each pipe's terminal stream."""

    def __init__(
        self,
        log_fd: int,
        sinks: dict[int, int | None],
        index: IndexWriter | None = None,
        streams: dict[int, int] | None = None,
    ) -> None:
        """Args:
        log_fd: outputs.log, opened for reading and writing (the terminal copy is read back).
        sinks: for each pipe read end, the fd of the terminal stream it is copied to, or None.
        index: where each stretch of the log is noted (outputs.index), or None.
        streams: for each pipe read end, its stream number in the index (output_index.STDOUT,
            STDERR or MERGED); default: the sink's fd number.
        """
        self._log_fd = log_fd
        self._index = index
        self._streams = streams or {pipe: sink or 0 for pipe, sink in sinks.items()}
        self._log_offset = os.lseek(log_fd, 0, os.SEEK_END)
        self._sinks = {
            pipe: (None if sink is None or _is_dev_null(sink) else sink)
            for pipe, sink in sinks.items()
        }
        self._can_splice = hasattr(os, "splice")
        wanted = any(sink is not None for sink in self._sinks.values())
        self._terminal = _TerminalCopy(log_fd) if wanted else None
        # Output the log could not take (a full disk): how much, since when (time.time()).
        self.bytes_lost = 0
        self.lost_since: float | None = None
        self.on_loss: Callable[[OSError], None] | None = None  # called at the first loss

    @property
    def bytes_logged(self) -> int:
        return self._log_offset

    def pump(self, pipe_fd: int) -> bool:
        """Move what `pipe_fd` holds (at least one byte, or EOF); return False at EOF.

        When the log cannot take the bytes (a full disk, a file size limit), they are read
        anyway, so the worker is never blocked by it, counted in `bytes_lost`, and still
        copied to the terminal; the log is tried again at the next chunk.
        """
        start = self._log_offset
        moved, unlogged = self._to_log(pipe_fd)
        if moved == 0 and not unlogged:
            return False
        self._log_offset += moved
        if moved and self._index is not None:
            self._index.moved(start, self._streams[pipe_fd])
        sink = self._sinks.get(pipe_fd)
        if sink is not None and self._terminal is not None:
            if moved:
                self._terminal.add(sink, start, moved)
            if unlogged:
                self._terminal.add_bytes(sink, unlogged)
        return True

    def _to_log(self, pipe_fd: int) -> tuple[int, bytes]:
        """(bytes moved into the log, bytes read that the log could not take)."""
        if self._can_splice:
            try:
                return os.splice(pipe_fd, self._log_fd, CHUNK_BYTES), b""
            except OSError as exc:
                if exc.errno in LOG_FULL_ERRNOS:
                    return self._lose(0, os.read(pipe_fd, CHUNK_BYTES), exc)
                if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                self._can_splice = False  # e.g. a file system without splice support
        data = os.read(pipe_fd, CHUNK_BYTES)
        written = 0
        try:
            while written < len(data):
                written += os.write(self._log_fd, data[written:])
        except OSError as exc:
            if exc.errno not in LOG_FULL_ERRNOS:
                raise
            return self._lose(written, data[written:], exc)
        return written, b""

    def _lose(self, written: int, data: bytes, exc: OSError) -> tuple[int, bytes]:
        if data:
            if self.lost_since is None:
                self.lost_since = time.time()
                if self.on_loss is not None:
                    self.on_loss(exc)
            self.bytes_lost += len(data)
        return written, data

    def flush_index(self) -> int | None:
        """Write the index's pending records when due; ms until the next is due, else None."""
        if self._index is None:
            return None
        left = self._index.flush_due_in()
        return None if left is None else max(1, int(left * 1000) + 1)

    def close_index(self) -> None:
        """Write the index's last records and close it (call after the last pump)."""
        if self._index is not None:
            self._index.close()
            self._index = None

    def backlogged(self) -> bool:
        """True while the terminal copy is too far behind to take more (see the constant)."""
        return self._terminal is not None and self._terminal.backlog() >= TERMINAL_BACKLOG_RUNS

    def terminal_done(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the terminal copy to finish (call after the last pump)."""
        if self._terminal is None:
            return True
        self._terminal.close()
        return self._terminal.wait(timeout)

    def abandon_terminal(self) -> None:
        """Stop copying to the terminal; a write under way is left to finish by itself."""
        if self._terminal is not None:
            self._terminal.abandon()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            # A non-blocking terminal inherited from the caller: wait until it takes more.
            select.select([], [fd], [])
