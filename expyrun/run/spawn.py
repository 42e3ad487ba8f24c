"""Start the worker interpreter early, and hand it its launch payload.

The worker (`run/worker.py`) is started with posix_spawn, no `subprocess` import on the launch
path, as soon as the interpreter is known: it starts (~10 ms) while the supervisor resolves the
config, and waits for its payload on a pipe. See docs/supervision.md, "Starting the worker".
"""

import os
import signal
import sys
from typing import Any, NamedTuple

from expyrun.errors import EntryPointError
from expyrun.run import worker as worker_module
from expyrun.run.tracking import TrackingSetup

# Signals the supervisor waits for, forwards, and the worker starts with at their default action.
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
# Pipe size for the worker's stdout/stderr: fewer context switches under a flood of output.
PIPE_BYTES = 1 << 20
WORKER_SCRIPT = worker_module.__file__
# `python -c WORKER_BOOT WORKER_SCRIPT FD`: the worker runs as `python WORKER_SCRIPT FD` would
# (as __main__, with its __file__), but from the bytecode cached in __pycache__ (written when the
# supervisor imported it, or by pip), not compiled from source at every start (~2 ms).
WORKER_BOOT = (
    "import sys;__file__=sys.argv.pop(1);exec(__import__('_frozen_importlib_external')"
    ".SourceFileLoader('__main__',__file__).get_code('__main__'))"
)


class Worker(NamedTuple):
    """A started worker interpreter, waiting for the launch payload that `run` sends."""

    pid: int
    python: str
    stdout_read: int
    stderr_read: int
    launch_write: int
    run_id: str  # the run's marker, in the worker's exec-time environment
    tracking: TrackingSetup  # the run's cgroup and the subreaper, being set up
    merged_output: bool = False  # fd 1 and fd 2 share one pipe


def handled_signals() -> tuple[set[int], set[int]]:
    """Signals to wait for, and signals the worker starts with at their default action."""
    waited: set[int] = set(FORWARDED_SIGNALS)
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        waited.discard(signal.SIGHUP)  # started under nohup: stay immune, and so does the worker
    reset = waited | {signal.SIGPIPE, signal.SIGXFSZ}
    # SIGCHLD tells the supervisor, a subreaper, that an orphan it adopted may have ended.
    return waited | {signal.SIGCHLD}, reset


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
    _, reset = handled_signals()
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
            [python, "-c", WORKER_BOOT, WORKER_SCRIPT, str(launch_r)],
            environ,
            file_actions=actions,
            # SIGINT blocked until the worker can take it (worker.main): Python's own handler
            # would raise in its start-up ("Fatal Python error: init_import_site", exit 1).
            setsigmask=(signal.SIGINT,),
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
    tracking = TrackingSetup(pid, run_id)
    return Worker(pid, python, out_r, err_r, launch_w, run_id, tracking, merged_output)


def discard_worker(worker: Worker) -> None:
    """End a worker that will not run (the launch failed before the run started)."""
    os.close(worker.launch_write)  # end of file: the worker exits without a word
    try:
        os.kill(worker.pid, signal.SIGKILL)
        os.waitpid(worker.pid, 0)
    except OSError:
        pass
    worker.tracking.discard()
    for fd in (worker.stdout_read, worker.stderr_read):
        os.close(fd)


def _encode(payload: dict[str, Any], same_python: bool) -> bytes:
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


def send_payload(worker: Worker, payload: dict[str, Any]) -> None:
    """Send the worker what to run: marshal when it runs this interpreter, else pickle."""
    same_python = os.path.realpath(worker.python) == os.path.realpath(sys.executable)
    _send(worker.launch_write, _encode(payload, same_python))


def _send(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BrokenPipeError:
        pass  # the worker died before reading it: its exit status tells why
