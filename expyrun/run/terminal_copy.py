"""The terminal copy: runs of outputs.log copied to the supervisor's stdout/stderr, in order.

A thread of its own reads outputs.log back (from the page cache), so a terminal that does not
read (`| less` paused, Ctrl-S, a stalled ssh) never delays outputs.log nor the supervisor's
handling of signals. Where the sink allows it the bytes stay in the kernel: splice(2) to a
pipe, copy_file_range(2) to a regular file. It is best effort: a sink that fails (EPIPE when
`| head` exited, EIO when the terminal closed) is dropped, and the run and outputs.log go on.
"""

from __future__ import annotations

import _thread
import errno
import os
import select
import stat
from _queue import SimpleQueue
from collections import deque
from typing import Any

# Largest piece copied per call (as the tee's chunks).
COPY_BYTES = 1 << 20
# Output the log could not take (a full disk) goes to the terminal from memory, up to this much
# waiting at a time; past it, the terminal copy skips it too.
TERMINAL_MEMORY_BYTES = 8 << 20
# errno of an in-kernel copy that this sink, kernel or file system does not do: copy by hand.
_NOT_HERE_ERRNOS = (
    errno.EINVAL,
    errno.ENOSYS,
    errno.EXDEV,
    errno.EBADF,
    errno.EOPNOTSUPP,
    errno.ETXTBSY,
)
# How bytes of the log reach a sink inside the kernel: splice(2) to a pipe, copy_file_range(2)
# to a regular file; a sink of neither kind (a terminal) is written from a read-back copy.
PIPE, FILE = "pipe", "file"


def _sink_kind(sink: int) -> str | None:
    """PIPE, FILE, or None when the kernel cannot copy log bytes to `sink` (see above)."""
    try:
        mode = os.fstat(sink).st_mode
    except OSError:
        return None
    if stat.S_ISFIFO(mode) and hasattr(os, "splice"):
        return PIPE
    if stat.S_ISREG(mode) and hasattr(os, "copy_file_range"):
        return FILE
    return None


class TerminalCopy:
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
        self._kinds: dict[int, str | None] = {}  # sink -> `_sink_kind`, None: no kernel copy
        _thread.start_new_thread(self._copy_forever, ())

    def add(self, sink: int, start: int, length: int) -> None:
        """Copy `length` bytes of the log from `start` to `sink`, after the runs added before.

        Called by one thread only (the supervisor's). A pipe that takes the bytes at once gets
        them here, without waking the thread: while nothing waits, a non-blocking splice(2)
        moves what the pipe has room for, and only the rest is queued. A line printed to
        stdout then one to stderr (the common pattern) otherwise cost a thread wake-up each,
        ~25 us a line (benchmarks/stream_switches.py); a full pipe (`| less` paused) still
        never blocks the caller.
        """
        with self._lock:
            if sink in self.dead_sinks:
                return
            inline = self._idle and not self._runs and not self._closed
        if inline:
            moved = self._splice_now(sink, start, length)
            start, length = start + moved, length - moved
            if length <= 0 or sink in self.dead_sinks:
                return
        with self._lock:
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

    def _splice_now(self, sink: int, start: int, length: int) -> int:
        """Bytes moved to `sink` now, if it is a pipe with room: 0 when it would block or is
        not a pipe (then the thread copies, as for any other sink)."""
        if self._kind(sink) != PIPE:
            return 0
        moved = 0
        while moved < length:
            try:
                count = os.splice(
                    self._log_fd,
                    sink,
                    min(length - moved, COPY_BYTES),
                    offset_src=start + moved,
                    flags=os.SPLICE_F_NONBLOCK,
                )
            except BlockingIOError:
                return moved
            except OSError as exc:
                if exc.errno in _NOT_HERE_ERRNOS:
                    self._kinds[sink] = None
                else:
                    with self._lock:
                        self.dead_sinks.add(sink)  # EPIPE (`| head` exited)
                return moved
            if count == 0:
                return moved
            moved += count
        return moved

    def _kind(self, sink: int) -> str | None:
        if sink not in self._kinds:
            self._kinds[sink] = _sink_kind(sink)
        return self._kinds[sink]

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
            count = min(length, COPY_BYTES)
            moved = self._copy_in_kernel(sink, start, count)
            if moved is None:
                data = os.pread(self._log_fd, count, start)
                if not data or not self._write(sink, data):
                    return
                moved = len(data)
            elif moved == 0:
                return  # the log is shorter than its runs say (it was truncated): stop
            start += moved
            length -= moved

    def _copy_in_kernel(self, sink: int, start: int, count: int) -> int | None:
        """Copy log bytes to `sink` without bringing them into our memory; None: not here.

        A pipe (`| less`, `| tee`) takes them by splice(2), a regular file (`> file`, a Slurm
        job's output file) by copy_file_range(2); a terminal, or a sink that refuses (`>>`
        opens with O_APPEND, which copy_file_range rejects; an old kernel, another file
        system), is written to from a read-back copy. A dead sink returns 0 too (no more).
        """
        kind = self._kind(sink)
        if kind is None:
            return None
        while True:
            try:
                if kind == PIPE:
                    return os.splice(self._log_fd, sink, count, offset_src=start)
                return os.copy_file_range(self._log_fd, sink, count, start)
            except BlockingIOError:
                select.select([], [sink], [])  # a non-blocking sink inherited from the caller
            except OSError as exc:
                if exc.errno in _NOT_HERE_ERRNOS:
                    self._kinds[sink] = None
                    return None
                with self._lock:
                    self.dead_sinks.add(sink)  # EPIPE (`| head` exited): stop, keep logging
                return 0

    def _write(self, sink: int, data: bytes) -> bool:
        try:
            _write_all(sink, data)
            return True
        except OSError:
            # EPIPE (`| head` exited), EIO (terminal closed): stop copying, keep logging.
            with self._lock:
                self.dead_sinks.add(sink)
            return False


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            # A non-blocking terminal inherited from the caller: wait until it takes more.
            select.select([], [fd], [])
