"""Which processes are a run's: a cgroup v2 of its own where allowed, else the subreaper.

Sets up the mechanisms `worker.RunProcesses` reads: the run's own cgroup (created below the
supervisor's, where the supervisor may write it) and the supervisor as a child subreaper, so
orphans of the run are reparented to it. docs/supervision.md, "Which processes are the run's",
says what each one finds, where it works, and what no mechanism can find.
"""

import _thread
import os
import signal
import sys
from collections.abc import Callable
from typing import NamedTuple

from expyrun.run import worker as worker_module

# How the run's processes are tracked (run.json `tracking`), best first.
TRACKING_CGROUP = "cgroup"
TRACKING_SUBREAPER = "subreaper"
TRACKING_MARKER = "marker"
# EXPYRUN_TRACKING=subreaper skips the cgroup (documented; the tests run both ways).
TRACKING_VARIABLE = "EXPYRUN_TRACKING"
# Every signal the supervisor takes with sigwaitinfo (a superset is harmless).
SUPERVISED_SIGNALS = {
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGCHLD,
}
# A run's cgroup is named CGROUP_PREFIX + "{pid}-{start}-{marker}": the supervisor's pid, its
# start time in clock ticks since boot (proc(5) /proc/PID/stat field 22), so that a reused pid
# is never taken for the supervisor, and a part of the run's marker.
CGROUP_PREFIX = "expyrun-"
# The GIL switch interval while the set-up thread runs beside the launch (default: 5 ms).
SETUP_SWITCH_SECONDS = 0.0002
# How long to wait for the worker's move into its cgroup (~11 ms). The thread that moves it
# imports nothing: an import there could wait for good for the global import lock, which a
# stop signal's exception raised inside the import system's own code in the main thread can
# leave held (expyrun once hung after Ctrl-C so). Past the timeout the run goes on without the
# cgroup; a launch that is given up waits a shorter time.
SETUP_TIMEOUT_SECONDS = 10.0
DISCARD_TIMEOUT_SECONDS = 1.0
# prctl(2) option: orphaned descendants are reparented to us, not to init (Linux 3.4).
PR_SET_CHILD_SUBREAPER = 36


class Tracking(NamedTuple):
    """The run's processes, and how they are tracked."""

    processes: worker_module.RunProcesses
    mechanism: str  # TRACKING_CGROUP, TRACKING_SUBREAPER or TRACKING_MARKER
    cgroup: str | None  # the run's cgroup folder, to remove at the end


class TrackingSetup:
    """The run's cgroup and the subreaper, set up while the config is resolved.

    Moving a process into a cgroup takes ~11 ms (an RCU grace period): a thread makes that
    one write, overlapping the launch's other work; `result` waits for it. The rest (the
    folder, prctl) is done here: each time the thread takes the GIL back from the busy main
    thread costs a switch (~50 a launch when it did the whole set-up).
    """

    def __init__(self, worker_pid: int, run_id: str) -> None:
        self._done = _thread.allocate_lock()
        self._cgroup = _run_cgroup_folder(run_id)
        self._moved = False
        self._interval = sys.getswitchinterval()
        moving = False
        try:
            try:  # made here: a stop signal raised as mkdir returns finds it in self._cgroup
                if self._cgroup is not None:
                    os.mkdir(self._cgroup)
            except OSError:  # not allowed here: the subreaper only (see _run_cgroup_folder)
                self._cgroup = None
            self._subreaper = _become_subreaper()
            if self._cgroup is None:
                return
            self._done.acquire()
            # The busy main thread holds the GIL: at 5 ms, each syscall's return would wait.
            sys.setswitchinterval(SETUP_SWITCH_SECONDS)
            # The thread inherits this mask: the supervisor's signals are blocked (see _move).
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, SUPERVISED_SIGNALS)
            try:
                _thread.start_new_thread(self._move, (self._cgroup, worker_pid))
                moving = True
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # one held back is taken here
        except BaseException:  # a stop signal before the thread runs: no cgroup left behind
            if self._cgroup is not None and not moving:
                sys.setswitchinterval(self._interval)
                worker_module.remove_cgroup(self._cgroup, timeout=0)
            raise

    def _move(self, cgroup: str, pid: int) -> None:
        # Runs with the supervisor's signals blocked from its start (at SIG_DFL, it would die).
        try:
            self._moved = _move_into(cgroup, pid)
        finally:
            self._done.release()
        if self._moved:  # off the launch's path: the run may start meanwhile
            _remove_stale_cgroups(os.path.dirname(cgroup))

    def result(self, timeout: float = SETUP_TIMEOUT_SECONDS) -> tuple[str | None, bool]:
        """(the run's cgroup folder or None, whether we are a subreaper), once the worker is
        in its cgroup, or what is known after `timeout` seconds (see SETUP_TIMEOUT_SECONDS)."""
        if self._cgroup is None:
            return None, self._subreaper
        done = self._done.acquire(timeout=timeout)
        sys.setswitchinterval(self._interval)
        if not done:
            return None, self._subreaper
        self._done.release()
        return (self._cgroup if self._moved else None), self._subreaper

    def discard(self) -> None:
        """Remove the cgroup of a worker that never ran (it was killed and waited for)."""
        cgroup, _ = self.result(DISCARD_TIMEOUT_SECONDS)
        if cgroup is not None:
            worker_module.remove_cgroup(cgroup, timeout=0.5)


def start_tracking(setup: TrackingSetup, run_id: str, pipe_fds: tuple[int, ...]) -> Tracking:
    """Track a started worker that has not run any code of the user's yet (no payload yet).

    `pipe_fds` are the read ends of the worker's stdout and stderr pipes.
    """
    cgroup, subreaper = setup.result()
    processes = worker_module.RunProcesses(
        run_id,
        root=os.getpid(),
        pipe_inodes=frozenset(worker_module.pipe_inode(fd) for fd in pipe_fds),
        cgroup=cgroup,
        helper_tag=str(os.getpid()),
        subreaper=subreaper,
    )
    if cgroup:
        return Tracking(processes, TRACKING_CGROUP, cgroup)
    return Tracking(processes, TRACKING_SUBREAPER if subreaper else TRACKING_MARKER, None)


def reap_adopted(worker_pid: int) -> int:
    """Collect the orphans of the run that ended as our children; return how many.

    A subreaper adopts the run's orphans (a shell's `job &` leaves one each time); each
    one that ends stays a zombie until its parent waits for it, and zombies count against the
    user's process limit. The worker (waited for by the supervisor) and the programs that
    `_command` started and waits for itself (git, scontrol) are left alone.
    """
    from expyrun import _command

    reaped = 0
    with _command.unwaited() as helpers:
        for pid in _ended_children():
            if pid != worker_pid and pid not in helpers:
                try:
                    if os.waitpid(pid, os.WNOHANG)[0] == pid:
                        reaped += 1
                except ChildProcessError:
                    pass
    return reaped


def _ended_children() -> list[int]:
    """Our children that have ended (zombies), from /proc/self/task/*/children."""
    pids: list[int] = []
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return pids
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                pids.extend(int(pid) for pid in f.read().split())
        except (OSError, ValueError):
            continue
    ended = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    ended.append(pid)
        except (OSError, IndexError):
            continue
    return ended


def _remove_stale_cgroups(parent: str) -> None:
    """End the cgroups of runs whose supervisor is gone: what they hold, then the folder.

    A supervisor SIGKILLed after its worker exited (when no rescue runs) leaves the run's
    cgroup, maybe with leftovers in it; the next run started beside it cleans up. A process
    in such a cgroup is the dead run's by membership: its identity is confirmed.
    """
    try:
        names = [name for name in os.listdir(parent) if name.startswith(CGROUP_PREFIX)]
    except OSError:
        return
    for name in names:
        if _supervisor_alive(name[len(CGROUP_PREFIX) :]):
            continue
        folder = os.path.join(parent, name)
        worker_module.kill_cgroup(folder)
        worker_module.remove_cgroup(folder, timeout=0.5)


def _supervisor_alive(identity: str) -> bool:
    """Whether the supervisor named by a cgroup's "{pid}-{start}-{marker}" is still running.

    It is when a process with that pid started at that tick. A name without a start time (an
    earlier expyrun) or a pid we cannot read is taken as alive: a cgroup is never ended on a
    guess (the next run beside it tries again).
    """
    pid, _, rest = identity.partition("-")
    start, _, marker = rest.partition("-")
    if not pid.isdigit() or int(pid) == os.getpid():
        return True
    if not marker or not start.isdigit() or start == "0":
        return True  # an earlier naming without the start time
    current = _start_ticks(int(pid))
    if current is None:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except OSError:
            pass
        return True  # there, but unreadable: taken as alive
    return current == start


def _start_ticks(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks since boot), None when unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()
    except (OSError, IndexError, UnicodeDecodeError):
        return None


def stop_tracking(tracking: Tracking) -> int:
    """Kill whatever of the run is left, reap the orphans we adopted, remove the cgroup.

    Returns how many processes were still there.
    """
    left = tracking.processes.kill_all()
    if tracking.cgroup is not None:
        worker_module.remove_cgroup(tracking.cgroup)
    _reap(tracking.processes.signalled)
    return left


def _become_subreaper() -> bool:
    """Make orphaned descendants reparent to this process (prctl(2) PR_SET_CHILD_SUBREAPER)."""
    try:
        prctl = load_prctl()
        return prctl is not None and prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    # ImportError: a module is half-imported by the main thread, whose import a stop signal
    # interrupted (printed "Exception ignored in thread started by ...").
    except ImportError:
        return False


def load_prctl() -> Callable[..., int] | None:
    """The C library's prctl(2), callable with ints; None where the program has none.

    Through `_ctypes`, the C module under `ctypes`: what `ctypes.CDLL(None).prctl` gives
    (dlopen(3) of the program itself, dlsym, a C call returning an int), without the ~0.7 ms
    of `ctypes/__init__.py` defining its types, which a launch would pay (the GIL is shared).
    Raises ImportError when `_ctypes` cannot be imported.
    """
    import _ctypes

    class _IntFunction(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL  # no _restype_: an int, as ctypes' default

    try:
        # dlopen(3): a NULL file name is the program itself, which links the C library.
        program = _ctypes.dlopen(None)  # type: ignore[arg-type]  # typeshed wants a path
        function: Callable[..., int] = _IntFunction(_ctypes.dlsym(program, "prctl"))
    except OSError:
        return None
    return function


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


def _run_cgroup_folder(run_id: str) -> str | None:
    """The run's cgroup v2 folder below ours, for the caller to make; None without cgroup v2.

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
    identity = f"{os.getpid()}-{_start_ticks(os.getpid()) or 0}-{run_id[:8]}"
    return os.path.join(mount, ours.lstrip("/"), CGROUP_PREFIX + identity)


def _move_into(cgroup: str, pid: int) -> bool:
    """Move `pid` into the cgroup folder `cgroup`, by system calls only (it runs in the set-up
    thread, see SETUP_TIMEOUT_SECONDS); remove the folder if refused."""
    try:
        fd = os.open(os.path.join(cgroup, "cgroup.procs"), os.O_WRONLY)
        try:
            os.write(fd, str(pid).encode())
        finally:
            os.close(fd)
    except OSError:  # e.g. EBUSY: our cgroup has controllers of its own; EACCES
        worker_module.remove_cgroup(cgroup, timeout=0)
        return False
    return True


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
