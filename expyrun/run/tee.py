"""Copy the worker's stdout and stderr pipes, byte for byte, into outputs.log and the terminal.

outputs.log comes first: on Linux the bytes move from the pipe into the file with splice(2), so
they never sit in the supervisor's memory, and a supervisor killed at any instant loses nothing
(what is still in the pipe is saved by the worker, which holds a read end too). Elsewhere, or
when the file system refuses splice, a plain read and write do the same job.

The terminal copy is read back from the file's page cache by a thread of its own
(`terminal_copy`), so a terminal that does not read (`| less` paused, Ctrl-S, a stalled ssh)
never delays outputs.log nor the supervisor's handling of signals. It keeps the order of the
bytes across stdout and stderr. It is best effort: if the supervisor's stdout or stderr goes
away (terminal closed, `| head`), that copy stops and the run and outputs.log go on. Each
stretch moved is noted in outputs.index (`output_index`). Bytes are never decoded.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable

from expyrun.run.output_index import IndexWriter
from expyrun.run.terminal_copy import TerminalCopy

# Largest chunk moved per call: big enough for throughput, small enough to stay responsive.
CHUNK_BYTES = 1 << 20
# The terminal copy's backlog is a list of (stream, start, length) runs of the log; past this
# many, the supervisor stops reading the pipes until the terminal catches up (memory bound:
# ~100 bytes a run). Runs of one stream merge, so only stream switches count.
TERMINAL_BACKLOG_RUNS = 100_000
# write(2)/splice(2) errors of a full file system or file size limit: the run goes on.
LOG_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _is_dev_null(fd: int) -> bool:
    try:
        st = os.fstat(fd)
        null = os.stat(os.devnull)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == null.st_rdev


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
        self._terminal = TerminalCopy(log_fd) if wanted else None
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
