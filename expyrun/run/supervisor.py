"""Spawn the worker, tee its output, forward signals, give it a grace period, then kill its tree.

The worker stays in the supervisor's process group, so terminal job control (Ctrl-Z, `fg`)
and terminal input (`breakpoint()`) work as for any foreground program. The supervisor waits
for signals with sigwaitinfo(2), which tells who sent each one: a signal from the terminal
(Ctrl-C, hangup) reached the worker too, since it is in the foreground group, so it is not
forwarded again (unless the worker left that group); a signal sent to the supervisor alone
(`kill`, Slurm, `expyrun stop`) is. SIGINT and SIGTERM then start the grace period; when it
ends, or at a second SIGINT/SIGTERM, every process of the run is killed.

Which processes are the run's is known without their cooperation (`worker.RunProcesses`): a
cgroup v2 of the run's own when the supervisor may create one, the supervisor's descendants
(it is a child subreaper, so orphans come back to it), the run's marker in exec-time
environments, and the holders of the run's pipes. See docs/supervision.md.
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
from typing import Any, NamedTuple

from expyrun.errors import EntryPointError, signal_exit_code
from expyrun.run import worker as worker_module
from expyrun.run.record import Status
from expyrun.run.tee import Tee
from expyrun.run.usage import UsageSampler

__all__ = ["WorkerExit", "WorkerLaunch", "run", "spawn_worker", "worker_module"]

# Signals the supervisor handles; the first two stop the run.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
# si_code of a signal the kernel sent itself, e.g. the terminal's Ctrl-C (linux/siginfo.h).
SI_KERNEL = 0x80
# Pipe size for the worker's stdout/stderr: fewer context switches under a flood of output.
PIPE_BYTES = 1 << 20
# After the worker exits: how long its leftover processes get between SIGTERM and SIGKILL, and
# how long the supervisor then reads pipes that something it cannot see may hold open. The
# drain after the worker's exit is bounded by their sum.
LEFTOVER_GRACE_SECONDS = 2.0
DRAIN_TIMEOUT_SECONDS = 5.0
# After a stop signal arrives once the worker has exited: how long the drain may still take.
DRAIN_AFTER_STOP_SECONDS = 1.0
WORKER_SCRIPT = worker_module.__file__
# How the run's processes are tracked (run.json `tracking`), best first.
TRACKING_CGROUP = "cgroup"
TRACKING_SUBREAPER = "subreaper"
TRACKING_MARKER = "marker"
# EXPYRUN_TRACKING=subreaper skips the cgroup (documented; the tests run both ways).
TRACKING_VARIABLE = "EXPYRUN_TRACKING"
# prctl(2) option: orphaned descendants are reparented to us, not to init (Linux 3.4).
PR_SET_CHILD_SUBREAPER = 36


class Worker(NamedTuple):
    """A started worker interpreter, waiting for the launch payload that `run` sends."""

    pid: int
    python: str
    stdout_read: int
    stderr_read: int
    launch_write: int
    run_id: str  # the run's marker, in the worker's exec-time environment


# After SIGINT/SIGTERM, how long the worker may take to end before its processes are killed.
DEFAULT_GRACE_SECONDS = 10.0


class WorkerLaunch(NamedTuple):
    """What a started worker runs, and how to supervise it."""

    payload: dict[str, Any]
    env: dict[str, str]  # variables added to the worker's environment
    run_dir: Path
    log_path: Path
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    append_log: bool = False
    terminal: bool = True  # copy output to our stdout/stderr (False when detached)


class WorkerExit(NamedTuple):
    """How the worker ended, as the record and the exit code need it."""

    status: Status  # succeeded, failed or killed
    exit_code: int  # what expyrun exits with: the worker's code, or 128 + signal
    signal: str | None  # the signal it died of, or the stop signal it was asked to end with
    killed_after_grace: bool
    cpu_user_s: float
    cpu_system_s: float
    peak_rss_bytes: int
    bytes_logged: int
    duration_s: float  # from the payload's sending to the worker's exit (not the drain)
    tracking: str  # how the run's processes were tracked: cgroup, subreaper or marker
    leftovers: int  # processes still running when the worker exited (stopped by us)
    bytes_lost: int  # output outputs.log could not take (a full disk)
    lost_since: float | None  # when that began (time.time()), None when nothing was lost


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

    def close(self) -> None:
        for fd in (self.read_fd, self._write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


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
    events.post("exited", (status, rusage, time.monotonic()))


def spawn_worker(python: str, detached: bool = False, merged_output: bool = False) -> Worker:
    """Start a worker interpreter that waits for `run` to tell it what to run.

    Called as early as possible: the interpreter starts (~10 ms) while the supervisor resolves
    the config. A worker that is never run is ended by `discard_worker`.

    The run's marker (EXPYRUN_RUN_ID, random) is in the worker's exec-time environment, so
    /proc/PID/environ shows it for the worker and for every process forked from it without an
    exec (multiprocessing's fork, daemons). From here on, the processes this supervisor starts
    itself (git, freeze, scontrol) carry EXPYRUN_SUPERVISOR_HELPER=<our pid>, and are not the run's.
    With `merged_output`, fd 1 and fd 2 of the worker share one pipe (as `> log 2>&1`):
    outputs.log then keeps the exact order of every write, also below Python; the stderr pipe
    is still made, with no writer (end of file at once).
    Raises EntryPointError when the interpreter cannot be started.
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
        (os.POSIX_SPAWN_DUP2, out_w if merged_output else err_w, 2),
    ]
    if detached:
        actions.append((os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0))
    run_id = os.urandom(16).hex()
    environ = dict(os.environ)
    environ.pop(worker_module.SUPERVISOR_HELPER_VARIABLE, None)
    environ[worker_module.RUN_ID_VARIABLE] = run_id
    try:
        pid = os.posix_spawn(
            python,
            [python, WORKER_SCRIPT, str(launch_r)],
            environ,
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
    os.environ[worker_module.SUPERVISOR_HELPER_VARIABLE] = str(os.getpid())
    return Worker(pid, python, out_r, err_r, launch_w, run_id)


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


def _become_subreaper() -> bool:
    """Make orphaned descendants reparent to this process (prctl(2) PR_SET_CHILD_SUBREAPER)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _cgroup2_mount() -> str | None:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or .../unified when hybrid)."""
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                separator = fields.index("-")
                if fields[separator + 1] == "cgroup2":
                    return fields[4]
    except (OSError, ValueError, IndexError):
        pass
    return None


def _create_run_cgroup(worker_pid: int, run_id: str) -> str | None:
    """Put the worker in a new cgroup v2 below ours; None where that is not allowed.

    It works where the supervisor may write its own cgroup (root; a systemd unit with
    Delegate=yes; a container with a private cgroup namespace); as a plain user, or in a Slurm
    job whose cgroup is Slurm's, mkdir is refused and the caller falls back to the subreaper.
    """
    if os.environ.get(TRACKING_VARIABLE, TRACKING_CGROUP) != TRACKING_CGROUP:
        return None
    mount = _cgroup2_mount()
    if mount is None:
        return None
    try:
        with open("/proc/self/cgroup") as f:
            ours = next(line[3:].strip() for line in f if line.startswith("0::"))
    except (OSError, StopIteration):
        return None
    folder = os.path.join(mount, ours.lstrip("/"), f"expyrun-{os.getpid()}-{run_id[:8]}")
    try:
        os.mkdir(folder)
    except OSError:
        return None
    try:
        with open(os.path.join(folder, "cgroup.procs"), "w") as f:
            f.write(str(worker_pid))
    except OSError:  # e.g. EBUSY: our cgroup has controllers of its own; EACCES
        worker_module.remove_cgroup(folder, timeout=0)
        return None
    return folder


class _Supervision:
    """The state of one supervised worker, driven by `run`'s poll loop."""

    def __init__(
        self,
        launch: WorkerLaunch,
        say: Callable[[str], None],
        pid: int,
        processes: worker_module.RunProcesses,
    ) -> None:
        self.launch = launch
        self.say = say
        self.events = _Events()
        self.pid = pid
        self.processes = processes
        self.stop_signal: int | None = None
        self.kill_deadline: float | None = None
        self.killed_after_grace = False
        self.exit_info: tuple[int, Any, float] | None = None
        self.leftovers = 0
        self.leftover_deadline: float | None = None
        self.drain_deadline: float | None = None

    def on_signal(self, signum: int, from_terminal: bool) -> None:
        name = _signal_name(signum)
        if self.exit_info is not None:
            if signum in STOP_SIGNALS:
                self.say(f"received {name} after the worker exited: killing what is left now")
                self.processes.kill_all()
                self.leftover_deadline = None
                soon = time.monotonic() + DRAIN_AFTER_STOP_SECONDS
                self.drain_deadline = min(self.drain_deadline or soon, soon)
            return
        if signum in STOP_SIGNALS and self.stop_signal is not None:
            self.say(f"received {name} again: killing the run's processes now")
            self.kill_now()
            return
        forward = not from_terminal or not self._in_our_process_group()
        if forward:
            try:
                os.kill(self.pid, signum)
            except OSError:
                pass
        if signum in STOP_SIGNALS:
            self.stop_signal = signum
            grace = self.launch.grace_seconds
            self.kill_deadline = time.monotonic() + grace
            how = "forwarded it" if forward else "the worker got it from the terminal"
            self.say(
                f"received {name} ({how}, pid {self.pid}); killing the run's processes in "
                f"{grace:g} s unless the worker exits (send it again to kill now)"
            )
        elif forward:
            self.say(f"forwarded {name} to the worker (pid {self.pid})")

    def _in_our_process_group(self) -> bool:
        """False when the worker left our group (os.setpgrp): the terminal's signal missed it."""
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


def run(
    worker: Worker,
    launch: WorkerLaunch,
    on_started: Callable[[int], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> WorkerExit:
    """Send the worker what to run, supervise it to its end, and return how it ended.

    Blocks the handled signals in the calling thread first: call it before starting threads.
    `on_started(pid)` runs once the worker has its payload (record it, start slow work there).
    Every process of the run is stopped before this returns, and if anything fails here, every
    process of the run is killed before the error propagates.
    """
    say = say or (lambda text: None)
    waited, _ = _handled_signals()
    for signum in waited:
        signal.signal(signum, signal.SIG_DFL)  # a blocked SIG_IGN signal would be discarded
    signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    pid, out_r, err_r, launch_w = (
        worker.pid,
        worker.stdout_read,
        worker.stderr_read,
        worker.launch_write,
    )
    # Before the payload: the worker runs no code of the user's until it has it.
    cgroup = _create_run_cgroup(pid, worker.run_id)
    subreaper = _become_subreaper()
    tracking = TRACKING_CGROUP if cgroup else TRACKING_SUBREAPER if subreaper else TRACKING_MARKER
    processes = worker_module.RunProcesses(
        worker.run_id,
        root=os.getpid(),
        pipe_inodes=frozenset(worker_module.pipe_inode(fd) for fd in (out_r, err_r)),
        cgroup=cgroup,
        helper_tag=str(os.getpid()),
    )
    state = _Supervision(launch, say, pid, processes)
    log_flags = os.O_RDWR | os.O_CREAT | (0 if launch.append_log else os.O_TRUNC)
    log_fd = os.open(launch.log_path, log_flags, 0o666)
    sampler = UsageSampler(pid)
    tee: Tee | None = None
    started = time.monotonic()
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
            run_id=worker.run_id,
            cgroup=cgroup,
        )
        same_python = os.path.realpath(worker.python) == os.path.realpath(sys.executable)
        started = time.monotonic()
        _send_payload(launch_w, _encode_payload(payload, same_python))
        sampler.start()
        if on_started is not None:
            on_started(pid)
        sinks: dict[int, int | None] = {out_r: None, err_r: None}
        if launch.terminal:
            sinks = {out_r: 1, err_r: 2}
        tee = Tee(log_fd, sinks)
        tee.on_loss = lambda exc: say(
            f"cannot write outputs.log ({exc.strerror}): the run goes on, its output is "
            "no longer logged (run.json counts it as output_lost_bytes)"
        )
        _loop(state, tee, [out_r, err_r])
        _finish_terminal(state, tee)
    except BaseException:
        processes.kill_all()
        raise
    finally:
        sampler.stop()
        # Whatever is still running now was missed at the worker's exit (it was being
        # reparented) or started since: nothing of the run outlives it.
        state.leftovers += processes.kill_all()
        if cgroup is not None:
            worker_module.remove_cgroup(cgroup)
        for fd in (out_r, err_r, launch_w, log_fd):
            os.close(fd)
        state.events.close()
    _reap(processes.signalled)
    return _outcome(state, sampler, tee, started, tracking)


def _loop(state: _Supervision, tee: Tee, pipes: list[int]) -> None:
    poller = select.poll()
    poller.register(state.events.read_fd, select.POLLIN)
    for fd in pipes:
        poller.register(fd, select.POLLIN)
    open_pipes = set(pipes)
    reading = [True]
    while open_pipes or state.exit_info is None:
        timeout = state.timeout_ms()
        if not _keep_reading(tee, poller, open_pipes, reading):
            timeout = 20 if timeout is None else min(timeout, 20)
        for fd, _ in poller.poll(timeout):
            if fd == state.events.read_fd:
                _handle_events(state)
            elif not tee.pump(fd):
                poller.unregister(fd)
                open_pipes.discard(fd)
        state.on_tick()
        if state.drain_over():
            if open_pipes:
                state.say("stopped reading output: a process outside the run holds the pipes")
            break


def _keep_reading(tee: Tee, poller: Any, open_pipes: set[int], reading: list[bool]) -> bool:
    """Whether to read the pipes now: not while the terminal copy is too far behind.

    The terminal copy runs in its own thread; if it falls behind by too much (a paused `| less`),
    the pipes are not read until it catches up: the worker then waits on full pipes, as under
    plain python, while signals, the grace and the kill are still handled by the loop.
    """
    backlogged = tee.backlogged()
    if reading[0] == backlogged:
        reading[0] = not backlogged
        for fd in open_pipes:
            if backlogged:
                poller.unregister(fd)
            else:
                poller.register(fd, select.POLLIN)
    return reading[0]


def _handle_events(state: _Supervision) -> None:
    for kind, value in state.events.drain():
        if kind == "signal":
            state.on_signal(*value)
        elif kind == "exited":
            state.on_exit(*value)


def _finish_terminal(state: _Supervision, tee: Tee) -> None:
    """Let the terminal copy catch up, unless a stop signal says not to wait for it."""
    poller = select.poll()
    poller.register(state.events.read_fd, select.POLLIN)
    while not tee.terminal_done(timeout=0.05):
        if not poller.poll(0):
            continue
        for kind, value in state.events.drain():
            if kind == "signal" and value[0] in STOP_SIGNALS:
                state.say(f"received {_signal_name(value[0])}: not waiting for the terminal")
                tee.abandon_terminal()
                return


def _reap(pids: set[int]) -> None:
    """Collect the exit status of the orphans we adopted as subreaper and stopped.

    Only those: a waitpid(-1) could take the status of a helper (git) that subprocess is
    still waiting for.
    """
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def _outcome(
    state: _Supervision, sampler: UsageSampler, tee: Tee | None, started: float, tracking: str
) -> WorkerExit:
    if state.exit_info is None or tee is None:  # the loop only ends once the worker has exited
        raise RuntimeError("the supervision loop ended before the worker exited")
    status, rusage, ended = state.exit_info
    peak = max(sampler.peak_rss_bytes, _maxrss_bytes(rusage.ru_maxrss))
    stop_name = _signal_name(state.stop_signal) if state.stop_signal else None
    common = {
        "killed_after_grace": False,
        "cpu_user_s": rusage.ru_utime,
        "cpu_system_s": rusage.ru_stime,
        "peak_rss_bytes": peak,
        "bytes_logged": tee.bytes_logged,
        "duration_s": max(0.0, ended - started),
        "tracking": tracking,
        "leftovers": state.leftovers,
        "bytes_lost": tee.bytes_lost,
        "lost_since": tee.lost_since,
    }
    if os.WIFSIGNALED(status):
        died_of = os.WTERMSIG(status)
        if state.killed_after_grace and state.stop_signal is not None:
            died_of = state.stop_signal  # report the signal that asked the run to stop
        common["killed_after_grace"] = state.killed_after_grace
        return WorkerExit(
            status=Status.KILLED,
            exit_code=signal_exit_code(died_of),
            signal=_signal_name(died_of),
            **common,
        )
    code = os.WEXITSTATUS(status)
    status_name = Status.SUCCEEDED if code == 0 else Status.FAILED
    return WorkerExit(status=status_name, exit_code=code, signal=stop_name, **common)


def _maxrss_bytes(ru_maxrss: int) -> int:
    # Linux reports kilobytes, macOS bytes (getrusage(2)).
    return ru_maxrss if sys.platform == "darwin" else ru_maxrss * 1024
