"""Spawn the worker, tee its output, forward signals, give it a grace period, then kill its tree.

The worker stays in the supervisor's process group, so terminal job control (Ctrl-Z, `fg`)
and terminal input (`breakpoint()`) work as for any foreground program. The supervisor waits
for signals with sigwaitinfo(2), which tells who sent each one: a signal from the terminal
(Ctrl-C, hangup) reached the worker too, since it is in the foreground group, so it is not
forwarded again; a signal sent to the supervisor alone (`kill`, Slurm, `expyrun stop`) is.
SIGINT and SIGTERM then start the grace period; when it ends, or at a second SIGINT/SIGTERM,
every process of the run is killed.
"""

from __future__ import annotations

import _thread
import os
import select
import signal
import sys
import time
from _queue import Empty, SimpleQueue
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from expyrun.errors import EntryPointError, signal_exit_code
from expyrun.run import worker as worker_module

__all__ = ["WorkerExit", "WorkerLaunch", "kill_run_processes", "run", "worker_module"]
from typing import Any

from expyrun.run.tee import Tee
from expyrun.run.usage import UsageSampler

# Signals the supervisor handles; the first two stop the run.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
# si_code of a signal the kernel sent itself, e.g. the terminal's Ctrl-C (linux/siginfo.h).
SI_KERNEL = 0x80
# Pipe size for the worker's stdout/stderr: fewer context switches under a flood of output.
PIPE_BYTES = 1 << 20
# After the worker exits, how long its leftover processes get before SIGKILL, and how long
# the supervisor keeps reading pipes that something outside the run may hold open.
LEFTOVER_GRACE_SECONDS = 2.0
DRAIN_TIMEOUT_SECONDS = 5.0
WORKER_SCRIPT = worker_module.__file__


class Worker(NamedTuple):
    """A started worker interpreter, waiting for the launch payload that `run` sends."""

    pid: int
    python: str
    stdout_read: int
    stderr_read: int
    launch_write: int


# After SIGINT/SIGTERM, how long the worker may take to end before its processes are killed.
DEFAULT_GRACE_SECONDS = 10.0


class WorkerLaunch(NamedTuple):
    """What a started worker runs, and how to supervise it."""

    payload: dict[str, Any]
    env: dict[str, str]  # variables added to the worker's environment
    run_dir: Path
    log_path: Path
    run_id: str
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    append_log: bool = False
    terminal: bool = True  # copy output to our stdout/stderr (False when detached)


class WorkerExit(NamedTuple):
    """How the worker ended, as the record and the exit code need it."""

    status: str  # "succeeded", "failed" or "killed"
    exit_code: int  # what expyrun exits with: the worker's code, or 128 + signal
    returncode: int | None  # the worker's own exit code when it exited
    signal: str | None  # the signal it died of, or the stop signal it was asked to end with
    killed_after_grace: bool
    child_pid: int
    cpu_user_s: float
    cpu_system_s: float
    peak_rss_bytes: int
    bytes_logged: int


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class _Events:
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


def _handled_signals() -> tuple[set[int], set[int]]:
    """Signals to wait for, and signals the worker starts with at their default action."""
    waited: set[int] = set(FORWARDED_SIGNALS)
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        waited.discard(signal.SIGHUP)  # started under nohup: stay immune, and so does the worker
    reset = waited | {signal.SIGPIPE, signal.SIGXFSZ}
    return waited, reset


def _watch_signals(waited: set[int], events: _Events) -> None:
    while True:
        info = signal.sigwaitinfo(waited)
        events.post("signal", (info.si_signo, info.si_code == SI_KERNEL))


def _wait_worker(pid: int, events: _Events) -> None:
    _, status, rusage = os.wait4(pid, 0)
    events.post("exited", (status, rusage))


def spawn_worker(python: str, detached: bool = False) -> Worker:
    """Start a worker interpreter that waits for `run` to tell it what to run.

    Called as early as possible: the interpreter starts (~10 ms) while the supervisor resolves
    the config. A worker that is never run is ended by `discard_worker`.
    """
    _, reset = _handled_signals()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    launch_r, launch_w = os.pipe()
    for fd in (out_r, err_r):
        try:
            import fcntl

            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except (OSError, AttributeError):
            pass
    # The worker keeps read ends of its own pipes, to save their content if we die.
    passed = (launch_r, out_r, err_r)
    for fd in passed:
        os.set_inheritable(fd, True)
    actions: list[tuple[Any, ...]] = [
        (os.POSIX_SPAWN_DUP2, out_w, 1),
        (os.POSIX_SPAWN_DUP2, err_w, 2),
    ]
    if detached:
        actions.append((os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0))
    try:
        pid = os.posix_spawn(
            python,
            [python, WORKER_SCRIPT, str(launch_r)],
            os.environ,
            file_actions=actions,
            setsigmask=(),
            setsigdef=reset,
        )
    except OSError as exc:
        for fd in (out_r, err_r, launch_r, launch_w):
            os.close(fd)
        raise EntryPointError(
            f"cannot start the worker interpreter: {exc.strerror}", path=python
        ) from exc
    finally:
        for fd in passed:
            os.set_inheritable(fd, False)
        os.close(out_w)
        os.close(err_w)
    os.close(launch_r)
    return Worker(pid, python, out_r, err_r, launch_w)


def discard_worker(worker: Worker) -> None:
    """End a worker that will not run (the launch failed before the run started)."""
    os.close(worker.launch_write)  # end of file: the worker exits without a word
    try:
        os.kill(worker.pid, signal.SIGKILL)
        os.waitpid(worker.pid, 0)
    except OSError:
        pass
    for fd in (worker.stdout_read, worker.stderr_read):
        os.close(fd)


def _encode_payload(payload: dict[str, Any], same_python: bool) -> bytes:
    """marshal when the worker runs this interpreter and the data allows it, else pickle."""
    if same_python:
        import marshal

        try:
            data = marshal.dumps(payload)
        except ValueError:  # a type marshal lacks, e.g. a date from YAML
            pass
        else:
            return b"m" + len(data).to_bytes(8, "big") + data
    import pickle

    data = pickle.dumps(payload, protocol=4)
    return b"p" + len(data).to_bytes(8, "big") + data


def _send_payload(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BrokenPipeError:
        pass  # the worker died before reading it: its exit status tells why


def kill_run_processes(run_id: str, worker_pid: int | None, sig: int = signal.SIGKILL) -> int:
    """Send `sig` to every process of the run: the worker's descendants and marked processes.

    Descendants that started their own session are found by the run's marker variable, which
    every process of the run inherits, wherever it was reparented.
    """
    pids = set(worker_module.find_run_processes(run_id))
    if worker_pid is not None:
        import psutil

        pids.add(worker_pid)  # started before the marker existed: not in its /proc environ
        try:
            pids.update(child.pid for child in psutil.Process(worker_pid).children(recursive=True))
        except psutil.Error:
            pass
    pids.discard(os.getpid())
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    return len(pids)


class _Supervision:
    """The state of one supervised worker, driven by `run`'s poll loop."""

    def __init__(self, launch: WorkerLaunch, say: Callable[[str], None]) -> None:
        self.launch = launch
        self.say = say
        self.events = _Events()
        self.pid = -1
        self.stop_signal: int | None = None
        self.kill_deadline: float | None = None
        self.killed_after_grace = False
        self.exit_info: tuple[int, Any] | None = None
        self.leftover_deadline: float | None = None
        self.drain_deadline: float | None = None

    def on_signal(self, signum: int, from_terminal: bool) -> None:
        name = _signal_name(signum)
        if self.exit_info is not None:
            return
        if signum in STOP_SIGNALS and self.stop_signal is not None:
            self.say(f"received {name} again: killing the run's processes now")
            self.kill_now()
            return
        if not from_terminal:
            try:
                os.kill(self.pid, signum)
            except OSError:
                pass
        if signum in STOP_SIGNALS:
            self.stop_signal = signum
            grace = self.launch.grace_seconds
            self.kill_deadline = time.monotonic() + grace
            how = "the worker got it from the terminal" if from_terminal else "forwarded it"
            self.say(
                f"received {name} ({how}, pid {self.pid}); killing the run's processes in "
                f"{grace:g} s unless the worker exits (send it again to kill now)"
            )
        elif not from_terminal:
            self.say(f"forwarded {name} to the worker (pid {self.pid})")

    def kill_now(self) -> None:
        self.killed_after_grace = True
        self.kill_deadline = None
        kill_run_processes(self.launch.run_id, self.pid)

    def on_exit(self, status: int, rusage: Any) -> None:
        self.exit_info = (status, rusage)
        self.kill_deadline = None
        if kill_run_processes(self.launch.run_id, None, signal.SIGTERM):
            self.say("the worker exited and left processes behind: terminating them")
            self.leftover_deadline = time.monotonic() + LEFTOVER_GRACE_SECONDS

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
            kill_run_processes(self.launch.run_id, None)
            self.drain_deadline = now + DRAIN_TIMEOUT_SECONDS


def run(
    worker: Worker,
    launch: WorkerLaunch,
    on_started: Callable[[int], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> WorkerExit:
    """Send the worker what to run, supervise it to its end, and return how it ended.

    Blocks the handled signals in the calling thread first: call it before starting threads.
    `on_started(pid)` runs once the worker has its payload (record it, start slow work there).
    If anything fails here, every process of the run is killed before the error propagates.
    """
    say = say or (lambda text: None)
    waited, _ = _handled_signals()
    for signum in waited:
        signal.signal(signum, signal.SIG_DFL)  # a blocked SIG_IGN signal would be discarded
    signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    state = _Supervision(launch, say)
    log_flags = os.O_RDWR | os.O_CREAT | (0 if launch.append_log else os.O_TRUNC)
    log_fd = os.open(launch.log_path, log_flags, 0o666)
    pid, out_r, err_r, launch_w = (
        worker.pid,
        worker.stdout_read,
        worker.stderr_read,
        worker.launch_write,
    )
    state.pid = pid
    sampler = UsageSampler(pid)
    try:
        # _thread, not threading.Thread: Thread.start() waits until the thread runs, which
        # costs milliseconds while the worker starts on the other core.
        _thread.start_new_thread(_watch_signals, (waited, state.events))
        _thread.start_new_thread(_wait_worker, (pid, state.events))
        payload = dict(
            launch.payload,
            env=launch.env,
            stdout_read_fd=out_r,
            stderr_read_fd=err_r,
            log_path=str(launch.log_path),
            run_id=launch.run_id,
        )
        same_python = os.path.realpath(worker.python) == os.path.realpath(sys.executable)
        _send_payload(launch_w, _encode_payload(payload, same_python))
        sampler.start()
        if on_started is not None:
            on_started(pid)
        sinks: dict[int, int | None] = {out_r: None, err_r: None}
        if launch.terminal:
            sinks = {out_r: 1, err_r: 2}
        tee = Tee(log_fd, sinks)
        _loop(state, tee, [out_r, err_r])
    except BaseException:
        kill_run_processes(launch.run_id, pid if state.exit_info is None else None)
        raise
    finally:
        sampler.stop()
        for fd in (out_r, err_r, launch_w, log_fd):
            os.close(fd)
    return _outcome(state, sampler, tee)


def _loop(state: _Supervision, tee: Tee, pipes: list[int]) -> None:
    poller = select.poll()
    poller.register(state.events.read_fd, select.POLLIN)
    for fd in pipes:
        poller.register(fd, select.POLLIN)
    open_pipes = set(pipes)
    while open_pipes or state.exit_info is None:
        for fd, _ in poller.poll(state.timeout_ms()):
            if fd == state.events.read_fd:
                for kind, value in state.events.drain():
                    if kind == "signal":
                        state.on_signal(*value)
                    elif kind == "exited":
                        state.on_exit(*value)
            elif not tee.pump(fd):
                poller.unregister(fd)
                open_pipes.discard(fd)
        state.on_tick()
        if state.drain_deadline is not None and time.monotonic() >= state.drain_deadline:
            state.say("stopped reading output: a process outside the run holds the pipes open")
            break


def _outcome(state: _Supervision, sampler: UsageSampler, tee: Tee) -> WorkerExit:
    if state.exit_info is None:  # the loop only ends once the worker has exited
        raise RuntimeError("the supervision loop ended before the worker exited")
    status, rusage = state.exit_info
    peak = max(sampler.peak_rss_bytes, _maxrss_bytes(rusage.ru_maxrss))
    stop_name = _signal_name(state.stop_signal) if state.stop_signal else None
    if os.WIFSIGNALED(status):
        died_of = os.WTERMSIG(status)
        if state.killed_after_grace and state.stop_signal is not None:
            died_of = state.stop_signal  # report the signal that asked the run to stop
        return WorkerExit(
            status="killed",
            exit_code=signal_exit_code(died_of),
            returncode=None,
            signal=_signal_name(died_of),
            killed_after_grace=state.killed_after_grace,
            child_pid=state.pid,
            cpu_user_s=rusage.ru_utime,
            cpu_system_s=rusage.ru_stime,
            peak_rss_bytes=peak,
            bytes_logged=tee.bytes_logged,
        )
    code = os.WEXITSTATUS(status)
    return WorkerExit(
        status="succeeded" if code == 0 else "failed",
        exit_code=code,
        returncode=code,
        signal=stop_name,
        killed_after_grace=False,
        child_pid=state.pid,
        cpu_user_s=rusage.ru_utime,
        cpu_system_s=rusage.ru_stime,
        peak_rss_bytes=peak,
        bytes_logged=tee.bytes_logged,
    )


def _maxrss_bytes(ru_maxrss: int) -> int:
    # Linux reports kilobytes, macOS bytes (getrusage(2)).
    return ru_maxrss if sys.platform == "darwin" else ru_maxrss * 1024
