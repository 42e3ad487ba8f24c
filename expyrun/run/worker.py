"""The worker: the child process that imports the entry point and calls it as `func(name, config)`.

Started by file path (`python .../worker.py FD`), also by interpreters where expyrun is not
installed (`expyrun reproduce`), so it imports the standard library only and keeps to syntax
that Python 3.8 accepts. The supervisor sends the launch payload (a pickled dict) through the
pipe FD, then keeps that pipe open: end of file on it means the supervisor died.

Output design (see docs/supervision.md):
- fd 1 and fd 2 are pipes read by the supervisor, so os.system, subprocesses and C code are
  captured too. Python's sys.stdout is block-buffered (64 KiB, no system call per line) and
  flushed every 0.1 s by a thread, so output stays live. sys.stderr is line-buffered.
- stdout and stderr keep their relative order: before Python-level bytes go to one pipe, the
  bytes previously written to the other pipe must have been read by the supervisor (FIONREAD
  is 0), and a write to stderr first flushes stdout.
- Buffered bytes are flushed on every exit path Python can see: return, exception, sys.exit,
  os._exit, fork, and the terminating signals SIGTERM/SIGHUP/SIGUSR1/SIGUSR2 (flush, then die
  of the signal with its default action). Only SIGKILL can lose the last 0.1 s of print().
"""

from __future__ import annotations

import _thread
import io
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds of start-up: only the type checker imports it
    import signal
    from collections.abc import Callable
    from typing import Any
else:
    try:
        # The C module: `signal` wraps it in enums, and importing enum costs ~3 ms of start-up.
        import _signal as signal
    except ImportError:  # pragma: no cover - every CPython has it
        import signal

# Flush period of the buffered Python streams: a printed line reaches the supervisor within it.
LIVE_FLUSH_SECONDS = 0.1
# Size of sys.stdout's buffer: one system call per 64 KiB of print() output.
STDOUT_BUFFER_BYTES = 64 * 1024
# Signals whose default action terminates the process: flush first, then die of them.
FLUSH_THEN_DIE_SIGNALS = ("SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2")
# Exit code of a worker whose entry point cannot be imported or called: a usage error.
ENTRY_POINT_ERROR = 2
# Environment variable that marks every process of one run (inherited by all descendants).
RUN_ID_VARIABLE = "EXPYRUN_RUN_ID"


def _unread_bytes(fd: int) -> int:
    """Bytes written to the pipe `fd` that its reader has not read yet (0 when unknown)."""
    try:
        import fcntl
        import termios

        buf = bytearray(4)
        fcntl.ioctl(fd, termios.FIONREAD, buf)
        return int.from_bytes(buf, sys.byteorder)
    except (OSError, ImportError, AttributeError):
        return 0


class _Switchboard:
    """Serialise Python-level writes to fd 1 and fd 2 so the supervisor reads them in order.

    Two pipes give no order between them; the supervisor reads one at a time. So when the
    writer switches pipes, it first waits until the other pipe is empty: the supervisor has
    then already handled those bytes. Waits happen only on switches, never per line.
    """

    def __init__(self) -> None:
        self._lock = _thread.RLock()  # reentrant: a signal handler may flush mid-write
        self._last_fd = -1
        self.rescue_fd = -1  # when the supervisor is gone, write straight into outputs.log

    def write(self, fd: int, data: bytes) -> int:
        view = memoryview(data)
        with self._lock:
            target = fd if self.rescue_fd < 0 else self.rescue_fd
            if self.rescue_fd < 0 and self._last_fd not in (-1, fd):
                _wait_until_read(self._last_fd)
            self._last_fd = fd
            while view:
                view = view[os.write(target, view) :]
        return len(data)


def _wait_until_read(fd: int) -> None:
    delay = 0.00002
    while _unread_bytes(fd) > 0:
        time.sleep(delay)
        delay = min(delay * 2, 0.005)


class _PipeRaw:
    """The raw layer under a buffered stream.

    Duck-typed, not an io.RawIOBase subclass, and `closed` is a plain class attribute: the C
    TextIOWrapper and BufferedWriter check `closed` on every write, and this keeps that check
    as cheap as for a real FileIO (a RawIOBase subclass costs ~35% of print() throughput).
    """

    closed = False
    mode = "wb"

    def __init__(self, fd: int, name: str, switchboard: _Switchboard, tty: bool) -> None:
        self._fd = fd
        self.name = name
        self._switchboard = switchboard
        self._tty = tty
        # Run before each write: stderr flushes stdout first, to keep their order.
        self.before_write: Callable[[], None] | None = None

    def write(self, data: bytes) -> int:
        if self.before_write is not None:
            self.before_write()
        return self._switchboard.write(self._fd, data)

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        # Answer like the supervisor's own stream, as the original in-process expyrun did.
        return self._tty

    def readable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Streams:
    """The worker's sys.stdout and sys.stderr, and every way to flush them."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.switchboard = _Switchboard()
        out_raw = _PipeRaw(1, "<stdout>", self.switchboard, payload.get("stdout_isatty", False))
        err_raw = _PipeRaw(2, "<stderr>", self.switchboard, payload.get("stderr_isatty", False))
        encoding = payload.get("encoding") or "utf-8"
        self.stdout = io.TextIOWrapper(
            io.BufferedWriter(out_raw, STDOUT_BUFFER_BYTES),  # type: ignore[type-var]
            encoding=encoding,
            errors="strict",
        )
        self.stderr = io.TextIOWrapper(
            io.BufferedWriter(err_raw),  # type: ignore[type-var]
            encoding=encoding,
            errors="backslashreplace",
            line_buffering=True,
        )
        err_raw.before_write = self._flush_stdout

    def _flush_stdout(self) -> None:
        try:
            self.stdout.flush()
        except (OSError, ValueError, RuntimeError):
            pass

    def flush(self) -> None:
        """Flush both streams; never raises (called from handlers and exit paths)."""
        for stream in (self.stdout, self.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, RuntimeError):
                # RuntimeError: reentrant flush from a signal handler that interrupted a write.
                pass

    def install(self) -> None:
        sys.stdout = sys.__stdout__ = self.stdout  # type: ignore[misc]
        sys.stderr = sys.__stderr__ = self.stderr  # type: ignore[misc]
        self._start_flusher()
        # Buffers are empty at fork, so a forked child never writes its parent's bytes again,
        # and the forked child gets its own flusher thread.
        os.register_at_fork(before=self.flush, after_in_child=self._start_flusher)
        real_exit = os._exit

        def _exit_flushing(code: int) -> None:
            self.flush()
            real_exit(code)

        os._exit = _exit_flushing  # type: ignore[assignment]

    def _start_flusher(self) -> None:
        def _flush_forever() -> None:
            while True:
                time.sleep(LIVE_FLUSH_SECONDS)
                self.flush()

        _thread.start_new_thread(_flush_forever, ())  # like a daemon thread, without `threading`


def _install_flush_then_die(streams: _Streams) -> None:
    """Flush buffered output before the default action of a terminating signal kills us."""

    def _flush_then_die(signum: int, frame: object) -> None:
        streams.flush()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for name in FLUSH_THEN_DIE_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) == signal.SIG_DFL:
            signal.signal(signum, _flush_then_die)


def find_run_processes(run_id: str) -> list[int]:
    """Pids of the processes that carry this run's marker in their environment (Linux /proc)."""
    marker = f"{RUN_ID_VARIABLE}={run_id}".encode()
    me = os.getpid()
    found: list[int] = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    found.append(int(name))
        except OSError:
            continue
    return found


def _drain_into(fds: list[int], log_fd: int, until_eof: bool = False) -> None:
    """Copy what the pipes hold into the log; with `until_eof`, wait for every writer to close.

    Waiting for EOF matters: a write(2) already under way in another thread or in a process
    that was just killed still lands in the pipe after a read found it empty. A writer that
    never closes (a process that escaped the kill) is given up on after a few seconds.
    """
    deadline = time.monotonic() + 3.0
    open_fds = list(fds)
    while open_fds:
        for fd in list(open_fds):
            try:
                chunk = os.read(fd, 1 << 20)
            except BlockingIOError:
                if not until_eof:
                    open_fds.remove(fd)
                continue
            except OSError:
                open_fds.remove(fd)
                continue
            if not chunk:
                open_fds.remove(fd)
                continue
            view = memoryview(chunk)
            while view:
                view = view[os.write(log_fd, view) :]
        if open_fds and until_eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            import select  # only a rescue needs it: kept off the start-up path

            select.select(open_fds, [], [], min(remaining, 0.05))


def _rescue(payload: dict[str, Any], streams: _Streams) -> None:
    """The supervisor died: save what is in flight into outputs.log, end the run's processes."""
    read_fds = [payload["stdout_read_fd"], payload["stderr_read_fd"]]
    for fd in read_fds:
        os.set_blocking(fd, False)
    # Stop every other process of the run first, so the pipes stop filling.
    for pid in find_run_processes(payload["run_id"]):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    log_fd = os.open(payload["log_path"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    # Free a writer blocked on a full pipe, then take the switchboard and point it at the log.
    _drain_into(read_fds, log_fd)
    acquired = streams.switchboard._lock.acquire(timeout=2)
    _drain_into(read_fds, log_fd)
    streams.switchboard.rescue_fd = log_fd
    # From here on even a raw os.write(1, ...) of the entry goes straight into the log; the
    # pipes then have no writer left in this process, so their EOF means nothing is in flight.
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    _drain_into(read_fds, log_fd, until_eof=True)
    if acquired:
        streams.switchboard._lock.release()
    streams.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _watch_supervisor(lifeline_fd: int, payload: dict[str, Any], streams: _Streams) -> None:
    def _wait_for_eof() -> None:
        try:
            while os.read(lifeline_fd, 4096):
                pass
        except OSError:
            pass
        _rescue(payload, streams)

    _thread.start_new_thread(_wait_for_eof, ())


def _read_payload(fd: int) -> dict[str, Any]:
    """Read the launch payload: marshal when the supervisor runs this same Python, else pickle.

    marshal is built in and needs no import (pickle costs ~10 ms of start-up), but its format
    may change between Python versions and it has no dates: the supervisor picks.
    """
    header = _read_exactly(fd, 9)
    data = _read_exactly(fd, int.from_bytes(header[1:], "big"))
    if header[:1] == b"m":
        import marshal

        payload: dict[str, Any] = marshal.loads(data)  # noqa: S302 - from our supervisor
    else:
        import pickle

        payload = pickle.loads(data)  # noqa: S301 - written by our own supervisor
    return payload


def _read_exactly(fd: int, size: int) -> bytes:
    parts = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError("the supervisor closed the launch pipe early")
        parts.append(chunk)
        size -= len(chunk)
    return b"".join(parts)


def _user_traceback(exc: BaseException) -> None:
    """Print the traceback of an exception from the user's code, without the worker's frames."""
    import traceback

    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)


def _entry_point_error(text: str) -> None:
    sys.stderr.write(f"expyrun: error: {text}\n")
    sys.stderr.flush()
    sys.exit(ENTRY_POINT_ERROR)


def _load_entry(module_name: str, function_name: str) -> object:
    entry = f"{module_name}:{function_name}"
    try:
        __import__(module_name)
        module = sys.modules[module_name]
    except ModuleNotFoundError as exc:
        # A bad entry point only if the missing module is the entry's module or a package of
        # it (a dot boundary: `pkg.data` is not a package of `pkg.data_loader`) and the error
        # comes from this import itself: a user file among the frames below is the user's own
        # failing import, reported with its traceback.
        tb, here = exc.__traceback__, True
        while tb is not None and (tb := tb.tb_next) is not None:
            here = here and tb.tb_frame.f_code.co_filename.startswith("<frozen importlib")
        if here and exc.name and f"{module_name}.".startswith(f"{exc.name}."):
            _entry_point_error(f"entry point '{entry}': no module named '{exc.name}'")
        raise
    func = getattr(module, function_name, None)
    if func is None:
        _entry_point_error(
            f"entry point '{entry}': module '{module_name}' has no '{function_name}'"
        )
    if not callable(func):
        _entry_point_error(f"entry point '{entry}' is not callable")
    _check_signature(entry, func)
    return func


def _check_signature(entry: str, func: object) -> None:
    """Refuse a plain function that cannot take (name, config), before calling it."""
    code = getattr(func, "__code__", None)
    if code is None or not hasattr(func, "__defaults__"):
        return  # a class, a partial, a C function: let the call tell
    positional = code.co_argcount  # positional-only parameters included
    has_varargs = bool(code.co_flags & 0x04)
    defaults = len(getattr(func, "__defaults__", None) or ())
    kwonly_without_default = code.co_kwonlyargcount - len(
        getattr(func, "__kwdefaults__", None) or {}
    )
    if getattr(func, "__self__", None) is not None:
        positional -= 1
    if (positional < 2 and not has_varargs) or positional - defaults > 2 or kwonly_without_default:
        _entry_point_error(
            f"entry point '{entry}' must accept (name, config), "
            f"its signature takes {positional} positional argument(s)"
        )


def _die_of(signum: int) -> None:
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    time.sleep(1)  # the signal is delivered before this returns
    os._exit(128 + signum)


def main(argv: list[str]) -> None:
    # The script's own folder (expyrun/run) must not shadow the user's modules.
    del sys.path[0]
    launch_fd = int(argv[1])
    try:
        payload = _read_payload(launch_fd)
    except (EOFError, KeyboardInterrupt, OSError):
        # The launch was abandoned before the run (a bad config, Ctrl-C): leave without a word.
        os._exit(1)
    except BaseException as exc:
        # The payload does not load in this interpreter (a pickled type it lacks, in an
        # environment rebuilt by `expyrun reproduce`): say so, as an entry-point error.
        message = f"expyrun: error: the worker cannot read the launch payload: {exc!r}\n"
        os.write(2, message.encode())
        os._exit(ENTRY_POINT_ERROR)
    os.environ.update(payload["env"])  # inherited from here on by everything the run starts
    streams = _Streams(payload)
    streams.install()
    import atexit

    atexit.register(streams.flush)  # registered first, so it runs after the user's handlers
    import faulthandler

    if not faulthandler.is_enabled():
        # A hard crash (segfault, abort in C code) leaves the Python traceback in outputs.log.
        faulthandler.enable(file=streams.stderr)
    _install_flush_then_die(streams)
    _watch_supervisor(launch_fd, payload, streams)

    sys.path[0:0] = payload["sys_path"]
    os.chdir(payload["run_dir"])
    sys.argv = [payload["entry"]]

    try:
        func = _load_entry(payload["module"], payload["function"])
        func(payload["name"], payload["config"])  # type: ignore[operator]
    except SystemExit:
        raise
    except KeyboardInterrupt as exc:
        _user_traceback(exc)
        streams.flush()
        _die_of(signal.SIGINT)
    except BaseException as exc:
        _user_traceback(exc)
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv)
