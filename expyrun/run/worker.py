"""The worker: the child process that imports the entry point and calls it as `func(name, config)`.

Started by file path (`python -c BOOT .../worker.py FD`, see spawn.WORKER_BOOT: as __main__,
from its cached bytecode), also by interpreters where expyrun is not installed (`expyrun
reproduce`), so it imports the standard library only and keeps to syntax that Python 3.8
accepts. The supervisor sends the launch payload (a pickled dict) through the
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
    from collections.abc import Callable, Iterable
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
# Longest wait at a switch between stdout and stderr for the supervisor to read the other pipe
# (it reads within milliseconds; a paused terminal copy does not hold it up): past it, order
# across the two streams gives way, output never stops.
SWITCH_WAIT_SECONDS = 1.0
# How long that wait spins before it sleeps (see `_wait_until_read`).
SWITCH_SPIN_SECONDS = 0.0002
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

    def __init__(self, one_pipe: bool = False) -> None:
        self._one_pipe = one_pipe  # fd 1 and 2 share a pipe (merged output): order is free
        self.lock = _thread.RLock()  # reentrant: a signal handler may flush mid-write
        self._last_fd = -1
        self.rescue_fd = -1  # when the supervisor is gone, write straight into outputs.log
        self._ours = {fd: _identity(fd) for fd in (1, 2)}  # our pipes, as started

    def write(self, fd: int, data: bytes) -> int:
        view = memoryview(data)
        if self.rescue_fd >= 0:
            # The supervisor is gone: straight into outputs.log (O_APPEND), without the lock,
            # which a thread stopped in a fork may hold for good.
            while view:
                view = view[os.write(self.rescue_fd, view) :]
            return len(data)
        with self.lock:
            target = fd if self.rescue_fd < 0 else self.rescue_fd
            last = self._last_fd
            # Only while fd `last` is still our pipe: the entry may have pointed it elsewhere
            # (dup2 of its own pipe or file), where unread bytes say nothing.
            switched = self.rescue_fd < 0 and not self._one_pipe and last not in (-1, fd)
            if switched and _identity(last) == self._ours[last]:
                _wait_until_read(last)
            self._last_fd = fd
            while view:
                view = view[os.write(target, view) :]
        return len(data)


def _identity(fd: int) -> tuple[int, int]:
    try:
        info = os.fstat(fd)
    except OSError:
        return (-1, -1)
    return (info.st_dev, info.st_ino)


def _wait_until_read(fd: int, timeout: float = SWITCH_WAIT_SECONDS) -> None:
    """Wait until the supervisor has read everything written to the pipe `fd` (or `timeout`).

    It reads within tens of microseconds: the wait spins (yielding the CPU) for up to
    SWITCH_SPIN_SECONDS before it sleeps, as the shortest sleep lasts the 50 us timer slack
    of a normal thread (prctl(2) PR_SET_TIMERSLACK) and the alternating print-to-stdout,
    log-to-stderr pattern pays one wait per line: 20,000 alternations took 2.9 s with sleeps
    only, 1.4 s this way (plain python: 0.1 s, without the order).
    """
    if _unread_bytes(fd) <= 0:
        return
    now = time.monotonic()
    spin_until = now + SWITCH_SPIN_SECONDS
    while now < spin_until:
        os.sched_yield()
        if _unread_bytes(fd) <= 0:
            return
        now = time.monotonic()
    delay = 0.00002
    deadline = now + timeout
    while _unread_bytes(fd) > 0 and time.monotonic() < deadline:
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


def _unbuffered(payload: dict[str, Any]) -> bool:
    """-u or PYTHONUNBUFFERED, for this interpreter or the supervisor's (`python -u -m expyrun`).

    Python then makes its stdio text layer write-through over an unbuffered binary layer.
    """
    return bool(payload.get("unbuffered") or getattr(sys.__stdout__, "write_through", False))


def _buffered(raw: _PipeRaw, size: int, unbuffered: bool) -> Any:
    """The binary layer: none when unbuffered (the text layer then writes to the raw)."""
    if unbuffered:
        return raw
    return io.BufferedWriter(raw, size)


def _stream_attribute(stream: Any, name: str, default: str) -> str:
    value = getattr(stream, name, None)
    return value if isinstance(value, str) else default


class _Streams:
    """The worker's sys.stdout and sys.stderr, and every way to flush them."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.switchboard = _Switchboard(one_pipe=bool(payload.get("merged_output")))
        self.unbuffered = _unbuffered(payload)
        self._ttys = (bool(payload.get("stdout_isatty")), bool(payload.get("stderr_isatty")))
        # The encoding and error handler this interpreter chose for its own streams, by
        # Python's rules (PYTHONIOENCODING with its `:errors` part, the locale, UTF-8 mode;
        # surrogateescape under the C/POSIX locale): fd 1 and 2 are pipes, as under `> file`.
        self._text = [
            (
                _stream_attribute(stream, "encoding", "utf-8"),
                _stream_attribute(stream, "errors", default),
            )
            for stream, default in (
                (sys.__stdout__, "strict"),
                (sys.__stderr__, "backslashreplace"),
            )
        ]
        self._held_for_fork = False
        # Held by the flusher thread while it flushes; `stop_flusher` takes it at exit, so that
        # the interpreter's own final flush never finds a buffer locked by that (daemon) thread:
        # "Fatal Python error: _enter_buffered_busy: could not acquire lock ... at interpreter
        # shutdown, possibly due to daemon threads" (SIGABRT).
        self._flusher_lock = _thread.allocate_lock()
        self._flusher_stopped = False
        self._open()

    def _open(self) -> None:
        """Make sys.stdout and sys.stderr over fd 1 and fd 2 (again in a forked child)."""
        unbuffered = self.unbuffered
        out_raw = _PipeRaw(1, "<stdout>", self.switchboard, self._ttys[0])
        err_raw = _PipeRaw(2, "<stderr>", self.switchboard, self._ttys[1])
        self.stdout = io.TextIOWrapper(
            _buffered(out_raw, STDOUT_BUFFER_BYTES, unbuffered),
            encoding=self._text[0][0],
            errors=self._text[0][1],
            # Python's rules (Python/pylifecycle.c, create_stdio): write-through under -u or
            # PYTHONUNBUFFERED, line-buffered when the output is a terminal (here: when the
            # terminal copy goes to one), else block-buffered (flushed every 0.1 s here).
            line_buffering=self._ttys[0] and not unbuffered,
            write_through=unbuffered,
        )
        self.stderr = io.TextIOWrapper(
            _buffered(err_raw, io.DEFAULT_BUFFER_SIZE, unbuffered),
            encoding=self._text[1][0],
            errors=self._text[1][1],
            line_buffering=not unbuffered,
            write_through=unbuffered,
        )
        err_raw.before_write = self._flush_stdout
        for stream in (self.stdout, self.stderr):
            stream.mode = "w"  # type: ignore[misc]  # as open() sets it on Python's own streams

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

    def stop_flusher(self) -> None:
        """At exit: end the flusher thread (it is never inside a flush after this), then flush.

        It runs after the user's atexit handlers: from here on a Ctrl-C is the supervisor's
        to answer, not a traceback of expyrun's own ("Exception ignored in atexit callback").
        """
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:  # not the main thread (a forked child that exits from another)
            pass
        with self._flusher_lock:
            self._flusher_stopped = True
        self.flush()
        if _DIE_AT_EXIT:
            _die_of(_DIE_AT_EXIT[0])

    def install(self) -> None:
        self._set_sys_streams()
        self._start_flusher()
        # Buffers are empty at fork, so a forked child never writes its parent's bytes again,
        # and the forked child gets its own flusher thread.
        os.register_at_fork(
            before=self._before_fork,
            after_in_parent=self._after_fork_in_parent,
            after_in_child=self._after_fork_in_child,
        )
        real_exit = os._exit

        def _exit_flushing(code: int) -> None:
            self.flush()
            real_exit(code)

        os._exit = _exit_flushing  # type: ignore[assignment]  # NoReturn, wrapped on purpose

    def _before_fork(self) -> None:
        # Under -u (no buffer layer, so no buffer lock), hold the switchboard across fork(),
        # so no other thread holds it in the child: a lock taken by another thread at fork
        # stays taken there forever (the child's first print deadlocks; logging does the
        # same: Lib/logging/__init__.py). Buffered, holding it would make a printing thread
        # wait for it inside its buffer's lock, which the child would then inherit taken:
        # there, only flush, as plain python's own at-fork behaviour allows.
        self._held_for_fork = self.unbuffered and self.switchboard.lock.acquire()
        self.flush()

    def _after_fork_in_parent(self) -> None:
        if self._held_for_fork:
            self._held_for_fork = False
            self.switchboard.lock.release()

    def _after_fork_in_child(self) -> None:
        self._held_for_fork = False
        self._flusher_lock = _thread.allocate_lock()  # the parent's flusher may have held it
        self._flusher_stopped = False
        self.switchboard.lock = _thread.RLock()  # the parent's threads are gone: a fresh one
        # Fresh streams too: a buffer's lock that another thread of the parent held at the
        # fork stays held here for good (the child's first print would deadlock), and what
        # that thread was writing is the parent's to write, not the child's again.
        self._open()
        self._set_sys_streams()
        self._start_flusher()

    def _set_sys_streams(self) -> None:
        sys.stdout = sys.__stdout__ = self.stdout  # type: ignore[misc]  # __stdout__ is Final
        sys.stderr = sys.__stderr__ = self.stderr  # type: ignore[misc]  # __stderr__ is Final

    def _start_flusher(self) -> None:
        def _flush_forever() -> None:
            while True:
                time.sleep(LIVE_FLUSH_SECONDS)
                with self._flusher_lock:
                    if self._flusher_stopped:
                        return
                    self.flush()

        _thread.start_new_thread(_flush_forever, ())  # like a daemon thread, without `threading`


def _install_flush_then_die(streams: _Streams) -> None:
    """Flush buffered output before the default action of a terminating signal kills us.

    In this process only: a child forked without exec gets the default actions back, as under
    plain python. A Python handler runs in the main thread, between bytecodes: a signal that
    lands on another thread, or just before the main thread blocks in C, waits there for good;
    and one that reaches the child before its interpreter is ready after fork() is dropped
    (CPython clears the flags the parent's handler set: `_PySignal_AfterFork`). Either way a
    fork Pool's worker that `Pool.terminate` sent SIGTERM never died, and the run hung. The
    signals are blocked across fork(): one sent to the child that early waits, and takes the
    default action once the child unblocks them. A child killed so may lose its last 0.1 s of
    print() (the flusher's period), where plain python loses all it had not flushed. Here, the
    supervisor's kill after the grace bounds such a wait.
    """

    def _flush_then_die(signum: int, frame: object) -> None:
        streams.flush()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    installed = []
    for name in FLUSH_THEN_DIE_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) == signal.SIG_DFL:
            signal.signal(signum, _flush_then_die)
            installed.append(signum)
    # Each forking thread's mask before its fork(), by thread: two threads can be inside
    # fork() at once (the before-hooks run before it takes the import lock, PyOS_BeforeFork);
    # with one slot, one thread restored the other's mask and the other's stayed blocked, for
    # it and for all it started. The child's main thread is its forking thread (same ident).
    masks_before: dict[int, Iterable[int]] = {}

    def _block() -> None:
        masks_before[_thread.get_ident()] = signal.pthread_sigmask(signal.SIG_BLOCK, installed)

    def _unblock_in_parent() -> None:
        mask = masks_before.pop(_thread.get_ident(), None)
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def _defaults_then_unblock_in_child() -> None:
        mask = masks_before.pop(_thread.get_ident(), None)
        masks_before.clear()  # the parent's other threads are not here
        for signum in installed:
            try:
                if signal.getsignal(signum) is _flush_then_die:
                    signal.signal(signum, signal.SIG_DFL)
            except ValueError:  # pragma: no cover - the forking thread is the child's main
                pass
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    os.register_at_fork(
        before=_block,
        after_in_parent=_unblock_in_parent,
        after_in_child=_defaults_then_unblock_in_child,
    )


# Environment variable set in the supervisor once the worker is spawned: the processes the
# supervisor itself starts later (git, freeze, scontrol) carry it, and are not the run's.
SUPERVISOR_HELPER_VARIABLE = "EXPYRUN_SUPERVISOR_HELPER"
# Rounds of scan-and-kill: a process may fork between a scan and the kill (a pool respawning).
KILL_ROUNDS = 5
_O_ACCMODE = 3


class ProcessScan:
    """What /proc says about the processes this user can see, read once.

    Linux only (proc(5)): each process's parent (`stat`), its start time (`stat` field 22,
    clock ticks since boot: with the pid, a process's identity), whether its exec-time
    environment (`environ`) holds the run's marker or the supervisor-helper tag, and which
    pipes it holds open for writing (`fd` and `fdinfo`).
    """

    def __init__(self, marker: bytes, helper_tag: bytes, pipe_inodes: frozenset[int]) -> None:
        self.parent: dict[int, int] = {}
        self.started: dict[int, int] = {}  # live processes only (not zombies)
        self.marked: set[int] = set()
        self.helpers: set[int] = set()
        self.pipe_writers: set[int] = set()
        self.tag = helper_tag
        try:
            names = os.listdir("/proc")
        except OSError:
            return
        for name in names:
            if name.isdigit():
                self._read(int(name), marker, helper_tag, pipe_inodes)

    def _read(self, pid: int, marker: bytes, tag: bytes, inodes: frozenset[int]) -> None:
        stat = _proc_stat(pid, zombies=True)
        if stat is None:
            return
        # A zombie stays in the tree: a process read before its parent exited names it.
        self.parent[pid] = stat[0]
        if stat[2]:
            return
        self.started[pid] = stat[1]
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                variables = f.read().split(b"\0")
        except OSError:
            variables = []
        if marker in variables:
            self.marked.add(pid)
        if tag and tag in variables:
            self.helpers.add(pid)
        if inodes and _writes_to_pipe(pid, inodes):
            self.pipe_writers.add(pid)

    def descendants(self, root: int) -> set[int]:
        """The processes below `root`, except the subtrees of supervisor helpers."""
        children: dict[int, list[int]] = {}
        for pid, parent in self.parent.items():
            children.setdefault(parent, []).append(pid)
        found: set[int] = set()
        todo = [root]
        own = _cmdline(root) if self.tag else b""  # the supervisor's side only
        while todo:
            parent = todo.pop()
            for child in children.get(parent, ()):
                if child in found or child in self.helpers:
                    continue
                if parent == root and own and _cmdline(child) == own:
                    # A copy of the supervisor between fork and exec: a helper that has
                    # not got its tag yet (it has the supervisor's environment until exec).
                    continue
                found.add(child)
                todo.append(child)
        return found


def _proc_stat(pid: int, zombies: bool = False) -> tuple[int, int, bool] | None:
    """(parent pid, start time in clock ticks, ended) of a process, None when it is gone.

    A zombie has ended (nothing left to stop): None unless `zombies`.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(b")") + 2 :].split()  # the name may hold spaces and parentheses
    ended = fields[0] in (b"Z", b"X")
    if ended and not zombies:
        return None
    return int(fields[1]), int(fields[19]), ended


def _children(pid: int) -> list[int] | None:
    """The children of `pid` (proc(5), CONFIG_PROC_CHILDREN), None where the kernel has none."""
    pids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return pids
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", "rb") as f:
                pids.extend(int(child) for child in f.read().split())
        except FileNotFoundError:
            return None if os.path.exists(f"/proc/{pid}") else pids
        except (OSError, ValueError):
            continue
    return pids


def _tree(root: int, helper_tag: bytes) -> dict[int, int] | None:
    """The live processes below `root`: {pid: start time}, None when /proc cannot tell.

    Not the subtrees of the supervisor's helpers: those of root's children whose environment
    holds `helper_tag`, or that are still a copy of root between fork and exec.
    """
    own = _cmdline(root)
    found: dict[int, int] = {}
    todo = [root]
    while todo:
        parent = todo.pop()
        children = _children(parent)
        if children is None:
            return None
        for child in children:
            if child in found:
                continue
            if parent == root and _is_helper(child, helper_tag, own):
                continue
            stat = _proc_stat(child, zombies=True)
            if stat is None:
                continue
            if not stat[2]:
                found[child] = stat[1]
            todo.append(child)
    return found


def _is_helper(pid: int, helper_tag: bytes, supervisor_cmdline: bytes) -> bool:
    if supervisor_cmdline and _cmdline(pid) == supervisor_cmdline:
        return True  # a copy of the supervisor between fork and exec: a helper, not yet tagged
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return bool(helper_tag) and helper_tag in f.read().split(b"\0")
    except OSError:
        return False


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _writes_to_pipe(pid: int, inodes: frozenset[int]) -> bool:
    folder = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(folder)
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(f"{folder}/{fd}")
        except OSError:
            continue
        if not target.startswith("pipe:[") or int(target[6:-1]) not in inodes:
            continue
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}", "rb") as f:
                for line in f:
                    if line.startswith(b"flags:"):
                        if int(line.split()[1], 8) & _O_ACCMODE != os.O_RDONLY:
                            return True
                        break
        except (OSError, ValueError):
            continue
    return False


class RunProcesses:
    """Every process of one run, found without their cooperation, and how to stop them all.

    A run's processes are the union of (docs/supervision.md, "Which processes are the run's"):
    - the members of the run's cgroup, when the supervisor could create one (cgroup v2);
    - the descendants of `root` (the supervisor, a child subreaper, so orphans of the run are
      reparented to it; or the worker in its rescue), except the supervisor's own helpers;
    - the processes whose exec-time environment holds the run's marker: everything forked
      from the worker (multiprocessing's fork, daemons) and what it exec'd with its env;
    - the processes holding the run's stdout/stderr pipes open for writing.
    `exclude` (the caller, and the worker while the supervisor lets it end itself) is never
    signalled.
    """

    def __init__(
        self,
        run_id: str,
        root: int,
        pipe_inodes: frozenset[int] = frozenset(),
        cgroup: str | None = None,
        helper_tag: str = "",
        subreaper: bool = False,
    ) -> None:
        self.marker = f"{RUN_ID_VARIABLE}={run_id}".encode()
        # `root` is a child subreaper: every process of the run is in its tree (or in the
        # cgroup), and walking that tree (proc(5) `task/TID/children`) replaces a scan of
        # every process of the machine (3 ms for 100 processes, 30 ms for 1,000).
        self.subreaper = subreaper
        self.root = root
        self.pipe_inodes = pipe_inodes
        self.cgroup = cgroup
        tag = f"{SUPERVISOR_HELPER_VARIABLE}={helper_tag}".encode()
        self.helper_tag = tag if helper_tag else b""
        self.signalled: set[int] = set()  # every pid signalled, for the subreaper to reap

    def find(self, exclude: frozenset[int] = frozenset()) -> dict[int, int]:
        """The run's live processes now: {pid: start time}, without `exclude` and the caller."""
        if self.subreaper:
            tree = _tree(self.root, self.helper_tag)
            if tree is not None:
                members = {pid: _proc_stat(pid) for pid in cgroup_members(self.cgroup)}
                tree.update((pid, stat[1]) for pid, stat in members.items() if stat)
                skipped = exclude | {os.getpid()}
                return {pid: started for pid, started in tree.items() if pid not in skipped}
        scan = ProcessScan(self.marker, self.helper_tag, self.pipe_inodes)
        pids = scan.descendants(self.root) | scan.marked | scan.pipe_writers
        pids |= set(cgroup_members(self.cgroup))
        pids -= scan.helpers
        pids -= exclude | {os.getpid()}
        return {pid: scan.started[pid] for pid in pids if pid in scan.started}

    def signal_all(self, signum: int, exclude: frozenset[int] = frozenset()) -> int:
        """Send `signum` once to every process of the run; return how many got it."""
        found = self.find(exclude)
        self.signalled.update(found)
        return _signal_confirmed(found, signum)

    def kill_all(self, exclude: frozenset[int] = frozenset()) -> int:
        """SIGKILL every process of the run, again until none is found; return how many."""
        killed = 0
        if self.cgroup is not None:
            kill_cgroup(self.cgroup)
        for _ in range(KILL_ROUNDS):
            found = self.find(exclude)
            if not found:
                break
            self.signalled.update(found)
            killed += _signal_confirmed(found, signal.SIGKILL)
        return killed


def _signal_confirmed(processes: dict[int, int], signum: int) -> int:
    """Signal each process whose identity (pid and start time) still holds.

    A pidfd (pidfd_open(2), Linux 5.3) pins the process: once it is open and the start time
    still matches, the pid cannot be reused before the signal is sent.
    """
    sent = 0
    for pid, started in processes.items():
        pidfd = -1
        try:
            pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else -1
            stat = _proc_stat(pid)
            if stat is None or stat[1] != started:
                continue  # gone, or the pid now names another process
            if pidfd >= 0:
                signal.pidfd_send_signal(pidfd, signum)
            else:
                os.kill(pid, signum)
            sent += 1
        except OSError:
            continue
        finally:
            if pidfd >= 0:
                os.close(pidfd)
    return sent


def cgroup_members(cgroup: str | None) -> list[int]:
    """Pids in a cgroup v2 folder and its sub-cgroups (empty when there is none)."""
    if cgroup is None:
        return []
    pids: list[int] = []
    for folder, _dirs, _files in os.walk(cgroup):
        try:
            with open(os.path.join(folder, "cgroup.procs")) as f:
                pids.extend(int(line) for line in f if line.strip())
        except (OSError, ValueError):
            continue
    return pids


def kill_cgroup(cgroup: str) -> None:
    """SIGKILL every process of a cgroup at once: cgroup.kill (Linux 5.14), else one by one."""
    try:
        with open(os.path.join(cgroup, "cgroup.kill"), "w") as f:
            f.write("1")
    except OSError:
        for pid in cgroup_members(cgroup):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def leave_cgroup(cgroup: str) -> None:
    """Move the calling process to the parent of `cgroup` (so it can be emptied and removed)."""
    try:
        with open(os.path.join(os.path.dirname(cgroup), "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    except OSError:
        pass


def remove_cgroup(cgroup: str, timeout: float = 2.0) -> bool:
    """Remove an emptied cgroup, waiting up to `timeout` s for its last processes to go."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(cgroup)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


def pipe_inode(fd: int) -> int:
    """The inode of the pipe behind `fd`, as /proc/PID/fd shows it (`pipe:[INODE]`)."""
    return os.fstat(fd).st_ino


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
            try:
                while view:
                    view = view[os.write(log_fd, view) :]
            except OSError:
                pass  # a full disk: what cannot be saved is dropped, the rescue goes on
        if open_fds and until_eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            import select  # only a rescue needs it: kept off the start-up path

            select.select(open_fds, [], [], min(remaining, 0.05))


def _rescue(payload: dict[str, Any], streams: _Streams) -> None:
    """The supervisor died: save what is in flight into outputs.log, end the run's processes."""
    # The entry's threads may hold the GIL for the whole switch interval (5 ms) at every turn:
    # the rescue's many short system calls would each wait that long.
    sys.setswitchinterval(1e-5)
    read_fds = [payload["stdout_read_fd"], payload["stderr_read_fd"]]
    for fd in read_fds:
        os.set_blocking(fd, False)
    try:
        log_fd = os.open(payload["log_path"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError:  # the run folder is gone: nowhere to save to
        log_fd = os.open(os.devnull, os.O_WRONLY)
    # Free a writer blocked on a full pipe, then take the switchboard: no thread of ours
    # writes any more.
    _drain_into(read_fds, log_fd)
    acquired = streams.switchboard.lock.acquire(timeout=2)
    # No more forks from our other threads (a multiprocessing Pool replaces the workers we
    # kill): os.fork() takes the import lock (PyOS_BeforeFork), so holding it stops them. Taken
    # after the switchboard, in the order a fork takes them (our fork hook, then the import
    # lock), so that the two cannot deadlock. Then stop every other process of the run, so the
    # pipes stop filling: our descendants, what carries the run's marker or holds its pipes,
    # the cgroup.
    import _imp

    _imp.acquire_lock()
    cgroup = payload.get("cgroup")
    if cgroup:
        leave_cgroup(cgroup)  # so that killing the cgroup spares us until the log is saved
    processes = RunProcesses(
        payload["run_id"],
        root=os.getpid(),
        pipe_inodes=frozenset(pipe_inode(fd) for fd in read_fds),
        cgroup=cgroup,
    )
    processes.kill_all()
    _drain_into(read_fds, log_fd)
    streams.switchboard.rescue_fd = log_fd
    # From here on even a raw os.write(1, ...) of the entry goes straight into the log; the
    # pipes then have no writer left in this process, so their EOF means nothing is in flight.
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    _drain_into(read_fds, log_fd, until_eof=True)
    if acquired:
        # Released first: a thread holding a stream's buffer lock may be waiting for it, and
        # our flush waits for that buffer lock. Not acquired (a thread kept it, stopped in a
        # fork by the import lock), a flush would wait forever: the last 0.1 s of print() of
        # the buffers is given up.
        streams.switchboard.lock.release()
        streams.flush()
    processes.kill_all()  # what a thread forked outside Python's fork, meanwhile
    if cgroup:
        remove_cgroup(cgroup)
    os.kill(os.getpid(), signal.SIGKILL)


def _watch_supervisor(lifeline_fd: int, payload: dict[str, Any], streams: _Streams) -> None:
    def _wait_for_eof() -> None:
        try:
            while os.read(lifeline_fd, 4096):
                pass
        except OSError:
            pass
        try:
            _rescue(payload, streams)
        finally:
            # Whatever failed while saving the output (the run folder deleted, a full disk),
            # nothing of the run outlives its supervisor.
            try:
                RunProcesses(payload["run_id"], root=os.getpid()).kill_all()
            finally:
                os.kill(os.getpid(), signal.SIGKILL)

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


def _report(exc: BaseException) -> None:
    """Report an exception from the entry as plain python would: through sys.excepthook.

    Once per process: a second call (`_copy_of_a_ctrl_c`, after a copy of the Ctrl-C cut the
    first short) does nothing.

    A hook the user or a library installed (rich, better_exceptions, IPython's post-mortem,
    Sentry) is called; the default hook is replaced by our traceback without the worker's
    frames. A hook that fails is reported as Python does ("Error in sys.excepthook:").
    """
    if _REPORTED:
        return
    _REPORTED.append(exc)
    hook = sys.excepthook
    if hook is sys.__excepthook__:
        # A Ctrl-C now (a copy of the one being reported: a SIGINT sent to the whole process
        # group reaches the worker directly and forwarded) would cut the traceback short with
        # one of expyrun's own: it is ignored while the traceback is written. A hook the user
        # installed keeps the handler it finds (an interactive post-mortem takes its Ctrl-C).
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            _user_traceback(exc)
        finally:
            signal.signal(signal.SIGINT, previous)
        return
    try:
        hook(type(exc), exc, exc.__traceback__)
    except BaseException as failure:
        sys.stderr.write("Error in sys.excepthook:\n")
        _user_traceback(failure)
        sys.stderr.write("\nOriginal exception was:\n")
        _user_traceback(exc)


# The entry's exception, once `_report` started to report it (a copy of a Ctrl-C that lands
# after that point must not report it again).
_REPORTED: list[BaseException] = []
# A signal to die of once the atexit handlers ran: the entry's KeyboardInterrupt (see main).
_DIE_AT_EXIT: list[int] = []
# How the entry ended, for the supervisor: run.json's `error` and `result` (see docs/supervision.md,
# "The end report"). Set by main: the file to write (from the payload) and the worker's pid, so
# a process forked by the entry that returns into this code never writes it.
_END_REPORT: dict[str, Any] = {"path": None, "pid": None, "written": False, "returned": False}
# A result that is not a mapping of JSON values is recorded as its repr, cut to this length.
RESULT_REPR_CHARS = 10_000
# An error line is cut to this length (run.json, `ls`, the closing line).
ERROR_LINE_CHARS = 500
_JSON_DEPTH = 100


def _write_end_report(report: dict[str, Any]) -> None:
    """Tell the supervisor how the entry ended: a small JSON file, replaced atomically.

    Best effort, never raises: without it, run.json has no `error` or `result`, nothing more.
    """
    path = _END_REPORT["path"]
    if not path or _END_REPORT["pid"] != os.getpid():
        return
    _END_REPORT["written"] = True
    if not report:
        return  # nothing to tell (the entry returned None): no file, as the reader expects
    import json

    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(json.dumps(report))
        os.replace(temporary, path)
    except BaseException as exc:  # a Ctrl-C too: no temporary file left in the run folder
        try:
            os.unlink(temporary)
        except OSError:
            pass
        if not isinstance(exc, (OSError, ValueError, TypeError, RecursionError)):
            raise


def _error_line(exc: BaseException) -> str:
    """`ValueError: loss is nan`: the last line of the traceback Python prints for `exc`.

    The type is qualified by its module as the traceback shows it (`pkg.errors.DataError`);
    a message of several lines keeps its first, followed by ` ...`.
    """
    kind = type(exc)
    name = kind.__qualname__
    if kind.__module__ not in ("builtins", "__main__"):
        name = f"{kind.__module__}.{name}"
    try:
        lines = str(exc).strip().splitlines()
    except Exception:  # a broken __str__: the type says enough
        lines = []
    text = f"{name}: {lines[0]}" if lines else name
    if len(lines) > 1:
        text += " ..."
    return text[:ERROR_LINE_CHARS]


def _is_json(value: object, depth: int = 0) -> bool:
    """Whether json.dumps writes `value` as it is: str-keyed mappings, lists, tuples, scalars."""
    if value is None or isinstance(value, (str, int, float)):
        return True  # bool is an int; numpy's float64 is a float
    if depth >= _JSON_DEPTH:
        return False  # a cycle, or nesting no reader wants
    if isinstance(value, (list, tuple)):
        return all(_is_json(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v, depth + 1) for k, v in value.items())
    return False


def _result_report(value: object) -> dict[str, Any]:
    """run.json's `result`: a mapping of JSON values as is, anything else as its repr.

    None records nothing. A repr comes with a warning line in outputs.log, never an error.
    """
    if value is None:
        return {}
    if isinstance(value, dict) and _is_json(value):
        import json

        try:  # an int of more than 4,300 digits passes _is_json, but json.dumps refuses it
            json.dumps(value)
            return {"result": value}
        except (ValueError, RecursionError):
            pass
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__
        text = f"<{type(value).__name__} object, repr failed: {_error_line(exc)}>"
    if len(text) > RESULT_REPR_CHARS:
        text = text[:RESULT_REPR_CHARS] + " ..."
    kind = "a mapping with a value that is not JSON" if isinstance(value, dict) else "a "
    if not isinstance(value, dict):
        kind += type(value).__name__
    sys.stderr.write(
        f"expyrun: warning: the entry point returned {kind}: run.json records its repr as "
        "'result' (return a mapping of numbers, strings, booleans, lists and mappings with "
        "string keys to record it as JSON)\n"
    )
    sys.stderr.flush()
    return {"result": text, "result_repr": True}


def _entry_point_error(text: str) -> None:
    _write_end_report({"error": text[:ERROR_LINE_CHARS]})
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


# Code flags (Include/cpython/code.h): calling such a function runs none of its body, it only
# makes a coroutine or an async generator.
_CO_VARARGS = 0x04
_CO_ASYNC = 0x80 | 0x200  # CO_COROUTINE | CO_ASYNC_GENERATOR


def _check_signature(entry: str, func: object) -> None:
    """Refuse a function that certainly cannot run as `func(name, config)`, before calling it.

    Only the callable the call reaches is read: a plain function, or a method bound to an
    object (a decorator's wrapper, `functools.wraps` or not, is such a function; its
    `*args, **kwargs` take anything). Its `__wrapped__` is not followed: a wrapper may pass the
    wrapped function other arguments. Anything else (a class-based decorator, a partial, a C
    function, an object forwarding the wrapped function's `__code__`) is left to the call, as
    plain python would leave it.
    """
    function, bound = func, 0
    if type(func) is type(_Bound().method):
        function, bound = getattr(func, "__func__", None), 1
    if type(function) is not type(_check_signature):
        return
    code = function.__code__
    where = f"{code.co_filename}:{code.co_firstlineno}: "
    if code.co_flags & _CO_ASYNC:
        _entry_point_error(
            f"{where}entry point '{entry}' is an async function; expyrun calls a plain "
            "function (run it with asyncio.run in a plain one)"
        )
    positional = max(code.co_argcount - bound, 0)  # positional-only parameters included
    has_varargs = bool(code.co_flags & _CO_VARARGS)
    defaults = len(function.__defaults__ or ())
    kwonly_without_default = code.co_kwonlyargcount - len(function.__kwdefaults__ or {})
    if (positional < 2 and not has_varargs) or positional - defaults > 2 or kwonly_without_default:
        _entry_point_error(
            f"{where}entry point '{entry}' must accept (name, config), "
            f"its signature takes {positional} positional argument(s)"
        )


class _Bound:
    """Gives the type of a bound method, without importing `types` (not loaded under -S)."""

    def method(self) -> None:
        """Nothing: only its type is used."""


def _ending() -> Any:
    """The entry has ended and its error is reported: a Ctrl-C no longer interrupts what is
    left of expyrun's own (the end report), which would print a traceback of expyrun's own.

    Returns the handler the entry left, for the caller to put back before the interpreter's
    exit (`_exit_as_python`): there, the user's atexit handlers and the join of non-daemon
    threads take a Ctrl-C as under plain python. The supervisor still answers one that lands
    while it is ignored: the grace, then the kill; a second Ctrl-C kills at once.
    """
    return signal.signal(signal.SIGINT, signal.SIG_IGN)


def _exit_as_python(handler: Any, code: int) -> None:
    """Put the entry's SIGINT handler back, then exit with `code` through the interpreter's
    exit (non-daemon threads joined, atexit handlers run), as plain python does after an
    uncaught exception: a Ctrl-C there interrupts the user's atexit handler (an upload it
    then skips), where an ignored one made the run wait for the grace and die of SIGKILL.
    A Ctrl-C that lands in the worker's last frames ends it by SIGINT (`__main__`).
    """
    if handler is not None:  # None: a handler not installed from Python, left as it is
        signal.signal(signal.SIGINT, handler)
    sys.exit(code)


def _end_by_sigint() -> None:
    """End as plain python does after an uncaught KeyboardInterrupt (Modules/main.c,
    exit_sigint): the interpreter's exit first (non-daemon threads joined, the user's atexit
    handlers: a checkpoint saved, a tracker's sync), then death by SIGINT, at the last atexit
    handler (`_Streams.stop_flusher`); exit 130 if that never runs. SIGINT stays ignored: a
    copy of the Ctrl-C is the supervisor's to answer (a second one kills at once).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _DIE_AT_EXIT.append(signal.SIGINT)
    sys.exit(128 + signal.SIGINT)


def _die_of(signum: int) -> None:
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    time.sleep(1)  # the signal is delivered before this returns
    os._exit(128 + signum)


def _set_up(launch_fd: int, payload: dict[str, Any]) -> _Streams:
    """Make this process the run's: fds, environment, output streams, path, folder, argv."""
    # Our own fds (the launch pipe, read ends of our pipes) are not the entry's: close-on-exec,
    # so a shell started by the entry and its subprocesses do not inherit them.
    for fd in (launch_fd, payload["stdout_read_fd"], payload["stderr_read_fd"]):
        try:
            os.set_inheritable(fd, False)
        except OSError:
            pass
    os.environ.update(payload["env"])  # inherited from here on by everything the run starts
    streams = _Streams(payload)
    streams.install()
    import atexit

    # Registered first, so it runs after the user's handlers.
    atexit.register(streams.stop_flusher)
    import faulthandler

    if not faulthandler.is_enabled():
        # A hard crash (segfault, abort in C code) leaves the Python traceback in outputs.log.
        faulthandler.enable(file=streams.stderr)
    _install_flush_then_die(streams)
    _watch_supervisor(launch_fd, payload, streams)

    sys.path[0:0] = payload["sys_path"]
    os.chdir(payload["run_dir"])
    # The command line the user typed, as run.json's `command` records it: code that reads
    # sys.argv (loggers, trackers, absl-style flags) sees what the in-process expyrun showed.
    sys.argv = list(payload.get("argv") or [payload["entry"]])
    _END_REPORT.update(path=payload.get("end_report_path"), pid=os.getpid())
    return streams


def main(argv: list[str]) -> None:
    # The script's own folder (expyrun/run) must not shadow the user's modules.
    del sys.path[0]
    launch_fd = int(argv[1])
    try:
        # Spawned with SIGINT blocked (run/spawn.py): one sent in the interpreter's start-up
        # is raised here, where it ends the worker by SIGINT, quietly.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
        payload = _read_payload(launch_fd)
    except KeyboardInterrupt:
        # Ctrl-C, or the supervisor forwarding it as the payload arrives: end by it, so that a
        # run that got its payload is recorded killed by SIGINT (exit 1 read as `failed`).
        _die_of(signal.SIGINT)
    except (EOFError, OSError):
        # The launch was abandoned before the run (a bad config): leave without a word.
        os._exit(1)
    except BaseException as exc:
        # The payload does not load in this interpreter (a pickled type it lacks, in an
        # environment rebuilt by `expyrun reproduce`): say so, as an entry-point error.
        message = f"expyrun: error: the worker cannot read the launch payload: {exc!r}\n"
        os.write(2, message.encode())
        os._exit(ENTRY_POINT_ERROR)
    try:
        streams = _set_up(launch_fd, payload)
    except KeyboardInterrupt:
        # Ctrl-C, forwarded as the worker sets up, before the entry: end by it, quietly (the
        # traceback would be expyrun's own, not the entry's).
        _die_of(signal.SIGINT)

    try:
        func = _load_entry(payload["module"], payload["function"])
        call = func  # type: Any  # checked by _load_entry
        returned = call(payload["name"], payload["config"])
    except SystemExit as exc:
        if exc.code not in (None, 0) and not _END_REPORT["written"]:
            _write_end_report({"error": _error_line(exc)})
        raise
    except KeyboardInterrupt as exc:
        _report(exc)
        _ending()  # kept to the end: a copy of this Ctrl-C is the supervisor's to answer
        streams.flush()
        _write_end_report({"error": _error_line(exc)})
        _end_by_sigint()
    except BaseException as exc:
        _report(exc)
        handler = _ending()
        _write_end_report({"error": _error_line(exc)})
        _exit_as_python(handler, 1)
    _END_REPORT["returned"] = True
    try:
        _write_end_report(_result_report(returned))
    except KeyboardInterrupt:
        # Ctrl-C after the entry returned, as its result is recorded: end by it, quietly (the
        # traceback would be expyrun's own); the run is recorded killed by SIGINT.
        _end_by_sigint()


def _copy_of_a_ctrl_c(copy: KeyboardInterrupt) -> None:
    """A Ctrl-C interrupted expyrun's own ending before it could be ignored: a copy of the one
    being reported (a SIGINT sent to the whole process group reaches the worker directly and,
    forwarded, again). End by SIGINT as plain python does (`_end_by_sigint`: the user's
    atexit handlers run), without a traceback of expyrun's code, but with the entry's own:
    the copy may have landed before `_report` started, in the worker's `except` (under load,
    round 0 of a group SIGINT test in a full-suite run: no traceback at all)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    entry_error = copy.__context__  # what the worker was handling when the copy landed
    # The entry's error only: not a SystemExit (Python prints none), nor a Ctrl-C that came
    # as the result was recorded (expyrun's own frames), nor one before the set-up.
    ours = not _END_REPORT["returned"] and _END_REPORT["pid"] == os.getpid()
    if entry_error is not None and not isinstance(entry_error, SystemExit) and ours:
        _report(entry_error)  # nothing if it was reported already
        if not _END_REPORT["written"]:
            _write_end_report({"error": _error_line(entry_error)})
    if _END_REPORT["pid"] is not None:  # set up: the user's atexit handlers run first
        _end_by_sigint()
    _die_of(signal.SIGINT)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except KeyboardInterrupt as copy:
        _copy_of_a_ctrl_c(copy)
