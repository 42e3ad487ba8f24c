"""Stopping a run: forward signals, the grace, the kill, and what the worker leaves behind.

Signals are taken with sigwaitinfo(2) in a thread (`watch_signals`), which tells who sent each
one: a signal the kernel sent (the terminal's Ctrl-C, a hangup) reached the worker too, since
it is in the foreground process group, unless it left that group; a signal sent to the
supervisor alone (`kill`, Slurm, `expyrun stop`) is forwarded. SIGINT and SIGTERM start the
grace period; when it ends, or at a second SIGINT/SIGTERM, every process of the run is killed.
After the worker's exit, what it left behind gets SIGTERM, then SIGKILL, and the drain of the
pipes is bounded; a stop signal then kills what is left at once. See docs/supervision.md.
"""

from __future__ import annotations

import _thread
import os
import signal
import time
from _queue import Empty, SimpleQueue
from collections.abc import Callable
from typing import Any

from expyrun.run.worker import RunProcesses

# Signals the supervisor handles; the first two stop the run.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Signals that ask a run to end: a run that exits 0 after one is `stopped`, not `succeeded`.
# A hangup has no grace and no kill behind it (the run may ignore it and go on): it counts
# only when the worker exits within the grace period after it (run/supervisor.py).
STOP_REQUEST_SIGNALS = (*STOP_SIGNALS, signal.SIGHUP)
# si_code of a signal the kernel sent itself, e.g. the terminal's Ctrl-C, and of one sent by
# kill(2) (linux/siginfo.h).
SI_KERNEL = 0x80
SI_USER = 0
# How long after a stop signal from our parent, our group's leader, its copy to the group may
# come (the sender may be preempted between its two kill(2) calls on a loaded machine).
GROUP_COPY_SECONDS = 0.05
# After the worker exits: how long its leftover processes get between SIGTERM and SIGKILL, and
# how long the supervisor then reads pipes that something it cannot see may hold open. The
# drain after the worker's exit is bounded by their sum.
LEFTOVER_GRACE_SECONDS = 2.0
DRAIN_TIMEOUT_SECONDS = 5.0
# After a stop signal arrives once the worker has exited: how long the drain may still take.
DRAIN_AFTER_STOP_SECONDS = 1.0


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def stop_answered(
    request: tuple[int, float, float] | None, exited_at: float, grace_seconds: float
) -> bool:
    """Whether a worker that exited at `exited_at` (time.monotonic()) ended because of the
    stop `request` (Stopping.stop_request): any SIGINT/SIGTERM (the run is killed if it
    outlives the grace), a SIGHUP only when the worker exited within the grace after it."""
    if request is None:
        return False
    signum, _, monotonic = request
    return signum in STOP_SIGNALS or exited_at - monotonic <= grace_seconds


class Events:
    """Thread-to-loop messages, with a pipe the poll loop can wait on."""

    def __init__(self) -> None:
        self.queue: SimpleQueue[tuple[str, Any]] = SimpleQueue()
        self.read_fd, self._write_fd = os.pipe()

    def post(self, kind: str, value: Any) -> None:
        self.queue.put((kind, value))
        try:
            os.write(self._write_fd, b"!")
        except OSError:
            pass

    def drain(self) -> list[tuple[str, Any]]:
        try:
            os.read(self.read_fd, 4096)
        except OSError:
            pass
        items = []
        while True:
            try:
                items.append(self.queue.get_nowait())
            except Empty:
                return items

    def close(self) -> None:
        for fd in (self.read_fd, self._write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def watch_signals(waited: set[int], events: Events) -> None:
    """Post each signal taken from `waited` as a ("signal", (signum, from_terminal)) event.

    One stop signal that the leader of our process group, our parent, sends twice at once, to
    us and to the group (GNU timeout: kill(child, sig), then kill(0, sig), timeout.c's
    cleanup), is one request: its copy, pending or arriving within GROUP_COPY_SECONDS, is
    dropped. Taken as a second stop signal, it killed the run at once, without the grace
    plain python gets under timeout. Whatever else sends a second one kills at once: the
    terminal (a second Ctrl-C), `expyrun stop --kill`, Slurm, and the `--nproc` launcher, a
    sweep or a shell with job control, which start expyrun in a process group of its own.
    """
    while True:
        info = signal.sigwaitinfo(waited)
        events.post("signal", (info.si_signo, info.si_code == SI_KERNEL))
        if info.si_signo in STOP_SIGNALS and _from_our_group_leader(info):
            copy = signal.sigtimedwait({info.si_signo}, GROUP_COPY_SECONDS)
            if copy is not None and (copy.si_code, copy.si_pid) != (SI_USER, info.si_pid):
                events.post("signal", (copy.si_signo, copy.si_code == SI_KERNEL))


def _from_our_group_leader(info: Any) -> bool:
    """Whether `info` (a siginfo) is a kill(2) by our parent, the leader of our process group."""
    return bool(info.si_code == SI_USER and info.si_pid == os.getppid() == os.getpgrp())


def wait_worker(pid: int, events: Events) -> None:
    _, status, rusage = os.wait4(pid, 0)
    events.post("exited", (status, rusage, time.monotonic()))


class Stopping:
    """What the supervisor does with a signal, the worker's exit, and the deadlines they set.

    Driven by the supervisor's poll loop: `on_signal`, `on_exit`, then `on_tick` when
    `timeout_ms` runs out; `drain_over` says when to stop reading the pipes.
    """

    def __init__(
        self,
        grace_seconds: float,
        say: Callable[[str], None],
        pid: int,
        processes: RunProcesses,
    ) -> None:
        self.grace_seconds = grace_seconds
        self.say = say
        self.events = Events()
        self.pid = pid
        self.processes = processes
        self.stop_signal: int | None = None
        # The first signal that asked the run to end (STOP_REQUEST_SIGNALS) before the worker
        # exited: (signal, time.time(), time.monotonic()) when it arrived.
        self.stop_request: tuple[int, float, float] | None = None
        self.kill_deadline: float | None = None
        self.killed_after_grace = False
        self.exit_info: tuple[int, Any, float] | None = None
        self.leftovers = 0
        self.leftover_deadline: float | None = None
        self.drain_deadline: float | None = None

    def on_signal(self, signum: int, from_terminal: bool) -> None:
        name = signal_name(signum)
        if self.exit_info is not None:
            if signum in STOP_SIGNALS:
                self.say(f"received {name} after the worker exited: killing what is left now")
                self.processes.kill_all()
                self.leftover_deadline = None
                soon = time.monotonic() + DRAIN_AFTER_STOP_SECONDS
                self.drain_deadline = min(self.drain_deadline or soon, soon)
            return
        if signum in STOP_REQUEST_SIGNALS and self.stop_request is None:
            self.stop_request = (signum, time.time(), time.monotonic())
        if signum in STOP_SIGNALS and self.stop_signal is not None:
            self.say(f"received {name} again: killing the run's processes now")
            self.kill_now()
            return
        forward = not from_terminal or not self._worker_got_it(signum)
        if forward:
            try:
                os.kill(self.pid, signum)
            except OSError:
                pass
        if signum in STOP_SIGNALS:
            self.stop_signal = signum
            grace = self.grace_seconds
            self.kill_deadline = time.monotonic() + grace
            how = "forwarded it" if forward else "the worker got it from the terminal"
            self.say(
                f"received {name} ({how}, pid {self.pid}); killing the run's processes in "
                f"{grace:g} s unless the worker exits (send it again to kill now)"
            )
        elif forward:
            self.say(f"forwarded {name} to the worker (pid {self.pid})")

    def _worker_got_it(self, signum: int) -> bool:
        """Whether a signal the kernel sent (a terminal's) reached the worker too.

        The terminal's Ctrl-C goes to the foreground process group: not to a worker that left
        our group (os.setpgrp). A hangup goes to the session leader alone (tty_io.c,
        tty_signal_session_leader): when that is us (`ssh -t host expyrun`, tmux running
        expyrun itself), the worker did not get it.
        """
        if signum == signal.SIGHUP and os.getsid(0) == os.getpid():
            return False
        try:
            return os.getpgid(self.pid) == os.getpgrp()
        except OSError:
            return True

    def kill_now(self) -> None:
        self.killed_after_grace = True
        self.kill_deadline = None
        self.processes.kill_all()

    def on_exit(self, status: int, rusage: Any, when: float) -> None:
        self.exit_info = (status, rusage, when)
        self.kill_deadline = None
        self.leftovers = self.processes.signal_all(signal.SIGTERM)
        now = time.monotonic()
        if self.leftovers:
            self.say(
                f"the worker exited and left {self.leftovers} process(es) behind: terminating "
                f"them, killing them in {LEFTOVER_GRACE_SECONDS:g} s"
            )
            self.leftover_deadline = now + LEFTOVER_GRACE_SECONDS
        else:
            self.drain_deadline = now + DRAIN_TIMEOUT_SECONDS

    def timeout_ms(self) -> int | None:
        deadlines = [
            d for d in (self.kill_deadline, self.leftover_deadline, self.drain_deadline) if d
        ]
        if not deadlines:
            return None
        return max(0, int((min(deadlines) - time.monotonic()) * 1000) + 1)

    def on_tick(self) -> None:
        now = time.monotonic()
        if self.kill_deadline is not None and now >= self.kill_deadline:
            self.say("grace period over: killing the run's processes")
            self.kill_now()
        if self.leftover_deadline is not None and now >= self.leftover_deadline:
            self.leftover_deadline = None
            self.processes.kill_all()
            self.drain_deadline = now + DRAIN_TIMEOUT_SECONDS

    def drain_over(self) -> bool:
        return self.drain_deadline is not None and time.monotonic() >= self.drain_deadline


class Messages:
    """The supervisor's messages, written by a thread of their own.

    They go to expyrun's stderr, often the same terminal as the run's output: when it does not
    read (`2>&1 | less` paused, Ctrl-S, a stalled ssh), a write blocks, and it must not block
    the poll loop that acts on signals, the grace and the kill.
    """

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self._queue: SimpleQueue[str | None] = SimpleQueue()
        self._done = _thread.allocate_lock()
        self._done.acquire()
        _thread.start_new_thread(self._write_forever, ())

    def say(self, text: str) -> None:
        self._queue.put(text)

    def close(self, timeout: float) -> None:
        """Write what is queued, waiting at most `timeout` s for a terminal that blocks."""
        self._queue.put(None)
        self._done.acquire(timeout=timeout)

    def _write_forever(self) -> None:
        try:
            while (text := self._queue.get()) is not None:
                self._write(text)
        finally:
            self._done.release()
