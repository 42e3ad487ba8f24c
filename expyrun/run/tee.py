"""Copy the worker's stdout and stderr pipes, byte for byte, into outputs.log and the terminal.

outputs.log comes first: on Linux the bytes move from the pipe into the file with splice(2), so
they never sit in the supervisor's memory, and a supervisor killed at any instant loses nothing
(what is still in the pipe is saved by the worker, which holds a read end too). The terminal
copy is then read back from the file's page cache. Elsewhere, or when the file system refuses
splice, a plain read and two writes do the same job.

The terminal side is best effort: if the supervisor's stdout or stderr goes away (terminal
closed, `| head`), that copy stops and the run and outputs.log go on. Bytes are never decoded.
"""

from __future__ import annotations

import errno
import os
import select
import stat

# Largest chunk moved per call: big enough for throughput, small enough to stay responsive.
CHUNK_BYTES = 1 << 20


def _is_dev_null(fd: int) -> bool:
    try:
        st = os.fstat(fd)
        null = os.stat(os.devnull)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == null.st_rdev


class Tee:
    """Pump bytes from pipes to the log and to each pipe's terminal stream."""

    def __init__(self, log_fd: int, sinks: dict[int, int | None]) -> None:
        """Args:
        log_fd: outputs.log, opened for reading and writing (the terminal copy is read back).
        sinks: for each pipe read end, the fd of the terminal stream it is copied to, or None.
        """
        self._log_fd = log_fd
        self._log_offset = os.lseek(log_fd, 0, os.SEEK_END)
        self._sinks = {
            pipe: (None if sink is None or _is_dev_null(sink) else sink)
            for pipe, sink in sinks.items()
        }
        self._can_splice = hasattr(os, "splice")
        self.lost_terminals: list[int] = []

    @property
    def bytes_logged(self) -> int:
        return self._log_offset

    def pump(self, pipe_fd: int) -> bool:
        """Move what `pipe_fd` holds (at least one byte, or EOF); return False at EOF."""
        if self._can_splice:
            try:
                moved = os.splice(pipe_fd, self._log_fd, CHUNK_BYTES)
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                self._can_splice = False  # e.g. a file system without splice support
            else:
                if moved == 0:
                    return False
                start = self._log_offset
                self._log_offset += moved
                sink = self._sinks.get(pipe_fd)
                if sink is not None:
                    self._to_terminal(pipe_fd, sink, os.pread(self._log_fd, moved, start))
                return True
        data = os.read(pipe_fd, CHUNK_BYTES)
        if not data:
            return False
        _write_all(self._log_fd, data)
        self._log_offset += len(data)
        sink = self._sinks.get(pipe_fd)
        if sink is not None:
            self._to_terminal(pipe_fd, sink, data)
        return True

    def _to_terminal(self, pipe_fd: int, sink: int, data: bytes) -> None:
        try:
            _write_all(sink, data)
        except OSError:
            # EPIPE (`| head` exited), EIO (terminal closed): stop copying, keep logging.
            self._sinks[pipe_fd] = None
            self.lost_terminals.append(sink)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            # A non-blocking terminal inherited from the caller: wait until it takes more.
            select.select([], [fd], [])
