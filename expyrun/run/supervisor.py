"""Supervise a started worker: send its payload, tee its output, stop it, report its end.

The pieces: `spawn` starts the worker early; `tracking` knows every process of the run;
`stopping` decides what a signal, the worker's exit and each deadline do; `tee` copies the
pipes to outputs.log and the terminal. This module runs the poll loop that drives them, and
turns the worker's end into a `WorkerExit`. See docs/supervision.md.
"""

import _thread
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from expyrun.errors import raise_if_interrupted, signal_exit_code
from expyrun.run.ending import end_report_path, read_end_report, remove, signal_error
from expyrun.run.record import Status
from expyrun.run.spawn import Worker, handled_signals, send_payload
from expyrun.run.stopping import (
    STOP_SIGNALS,
    Messages,
    Stopping,
    signal_name,
    stop_answered,
    wait_worker,
    watch_signals,
)
from expyrun.run.tracking import reap_adopted, start_tracking, stop_tracking
from expyrun.run.usage import UsageSampler

if TYPE_CHECKING:  # imported once the worker has its payload (see `run`)
    from expyrun.run.tee import Tee

__all__ = ["DEFAULT_GRACE_SECONDS", "WorkerExit", "WorkerLaunch", "run"]

# At the end of a run, how long the supervisor's last messages may take to reach a terminal
# that blocks before it goes on without them.
MESSAGES_CLOSE_SECONDS = 1.0
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
    separator_at: int | None = None  # where a new attempt's separator line starts in the log


class WorkerExit(NamedTuple):
    """How the worker ended, as the record and the exit code need it."""

    status: Status  # succeeded, stopped (exit 0 after a stop request), failed or killed
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
    error: str | None  # the entry's last error line (`ValueError: loss is nan`), or the signal's
    result: Any  # what the entry returned (a mapping of JSON values, or a repr), None: nothing
    result_repr: bool  # `result` is the repr of a value that is not a mapping of JSON values
    # The first signal that asked the run to end before the worker exited (SIGINT, SIGTERM,
    # SIGHUP) and when it arrived (time.time()); None when none did.
    stop_request: tuple[str, float] | None = None


def run(
    worker: Worker,
    launch: WorkerLaunch,
    on_started: Callable[[int], None] | None = None,
    say: Callable[[str], None] | None = None,
    on_ended: Callable[[WorkerExit], None] | None = None,
) -> WorkerExit:
    """Send the worker what to run, supervise it to its end, and return how it ended.

    Blocks the handled signals in the calling thread first: call it before starting threads.
    `on_started(pid)` runs once the worker has its payload (record it, start slow work there).
    `on_ended(outcome)` runs once every process of the run is stopped, before the terminal
    copy has caught up (a terminal that does not read must not hold the final record back).
    Every process of the run is stopped before this returns, and if anything fails here, every
    process of the run is killed before the error propagates.
    """
    waited, _ = handled_signals()
    signal.pthread_sigmask(signal.SIG_BLOCK, waited)  # first: at SIG_DFL, one would end us
    for signum in waited:
        signal.signal(signum, signal.SIG_DFL)  # a blocked SIG_IGN signal would be discarded
    raise_if_interrupted()  # one taken before, its exception dropped (errors.py; tracking.py)
    # Threads start from here on: they inherit the mask, so only sigwaitinfo takes signals.
    messages = Messages(say or (lambda text: None))
    say = messages.say
    pid, out_r, err_r = worker.pid, worker.stdout_read, worker.stderr_read
    # Before the payload: the worker runs no code of the user's until it has it.
    tracking = start_tracking(worker.tracking, worker.run_id, (out_r, err_r))
    state = Stopping(launch.grace_seconds, say, pid, tracking.processes)
    log_flags = os.O_RDWR | os.O_CREAT | (0 if launch.append_log else os.O_TRUNC)
    log_fd = os.open(launch.log_path, log_flags, 0o666)
    sampler = UsageSampler(pid)
    tee: Tee | None = None  # noqa: F823 - a local annotation is not evaluated (PEP 526)
    outcome: WorkerExit | None = None
    started = time.monotonic()
    report_path = end_report_path(launch.log_path)
    remove(report_path)  # an earlier attempt's
    try:
        # _thread, not threading.Thread: Thread.start() waits until the thread runs, which
        # costs milliseconds while the worker starts on the other core.
        _thread.start_new_thread(watch_signals, (waited, state.events))
        _thread.start_new_thread(wait_worker, (pid, state.events))
        started = time.monotonic()
        send_payload(worker, _full_payload(worker, launch, tracking.cgroup))
        # Imported now, while the worker starts the entry: a launch waits for nothing here.
        from expyrun.run.output_index import MERGED, STDERR, STDOUT, open_index
        from expyrun.run.tee import Tee

        sampler.start()
        if on_started is not None:
            on_started(pid)
        merged = bool(launch.payload.get("merged_output"))
        index = open_index(launch.log_path, fresh=not launch.append_log)
        if index is not None and launch.separator_at is not None:
            index.moved(launch.separator_at, MERGED if merged else STDERR)  # expyrun's own line
        tee = Tee(
            log_fd,
            {out_r: 1, err_r: 2} if launch.terminal else {out_r: None, err_r: None},
            index=index,
            streams={out_r: MERGED if merged else STDOUT, err_r: STDERR},
        )
        tee.on_loss = lambda exc: say(
            f"cannot write outputs.log ({exc.strerror}): the run goes on, its output is "
            "no longer logged (run.json counts it as output_lost_bytes)"
        )
        _loop(state, tee, [out_r, err_r])
        tee.close_index()
        sampler.stop()
        # Whatever is still running now was missed at the worker's exit (it was being
        # reparented) or started since: nothing of the run outlives it.
        state.leftovers += stop_tracking(tracking)
        outcome = _outcome(
            state, sampler, tee, started, tracking.mechanism, read_end_report(report_path)
        )
        if on_ended is not None:
            on_ended(outcome)
        _finish_terminal(state, tee)
    except BaseException:
        tracking.processes.kill_all()
        raise
    finally:
        sampler.stop()
        if tee is not None:
            tee.close_index()
        if outcome is None:
            stop_tracking(tracking)
        for fd in (out_r, err_r, worker.launch_write, log_fd):
            os.close(fd)
        state.events.close()
        messages.close(timeout=MESSAGES_CLOSE_SECONDS)
    return outcome


def _full_payload(worker: Worker, launch: WorkerLaunch, cgroup: str | None) -> dict[str, Any]:
    """The launch's payload, where to report how the entry ended, and what the worker needs to
    rescue the run if we die."""
    return dict(
        launch.payload,
        end_report_path=str(end_report_path(launch.log_path)),
        env=launch.env,
        stdout_read_fd=worker.stdout_read,
        stderr_read_fd=worker.stderr_read,
        log_path=str(launch.log_path),
        run_id=worker.run_id,
        cgroup=cgroup,
    )


def _loop(state: Stopping, tee: "Tee", pipes: list[int]) -> None:
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
        # Pending index records are written within output_index.FLUSH_SECONDS, also when
        # the output stops: wake up for them.
        flush_in = tee.flush_index()
        if flush_in is not None:
            timeout = flush_in if timeout is None else min(timeout, flush_in)
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


def _keep_reading(tee: "Tee", poller: Any, open_pipes: set[int], reading: list[bool]) -> bool:
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


def _handle_events(state: Stopping) -> None:
    for kind, value in state.events.drain():
        if kind == "signal" and value[0] == signal.SIGCHLD:
            reap_adopted(state.pid)
        elif kind == "signal":
            state.on_signal(*value)
        elif kind == "exited":
            state.on_exit(*value)


def _finish_terminal(state: Stopping, tee: "Tee") -> None:
    """Let the terminal copy catch up, unless a stop signal says not to wait for it."""
    poller = select.poll()
    poller.register(state.events.read_fd, select.POLLIN)
    while not tee.terminal_done(timeout=0.05):
        if not poller.poll(0):
            continue
        for kind, value in state.events.drain():
            if kind == "signal" and value[0] in STOP_SIGNALS:
                state.say(f"received {signal_name(value[0])}: not waiting for the terminal")
                tee.abandon_terminal()
                return


def _outcome(
    state: Stopping,
    sampler: UsageSampler,
    tee: "Tee | None",
    started: float,
    tracking: str,
    report: dict[str, Any],
) -> WorkerExit:
    if state.exit_info is None or tee is None:  # the loop only ends once the worker has exited
        raise RuntimeError("the supervision loop ended before the worker exited")
    status, rusage, ended = state.exit_info
    peak = max(sampler.peak_rss_bytes, _maxrss_bytes(rusage.ru_maxrss))
    stop_name = signal_name(state.stop_signal) if state.stop_signal else None
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
        "result": report.get("result"),
        "result_repr": report.get("result_repr") is True,
        "stop_request": (
            (signal_name(state.stop_request[0]), state.stop_request[1])
            if state.stop_request
            else None
        ),
    }
    if os.WIFSIGNALED(status):
        died_of = os.WTERMSIG(status)
        if state.killed_after_grace and state.stop_signal is not None:
            died_of = state.stop_signal  # report the signal that asked the run to stop
        common["killed_after_grace"] = state.killed_after_grace
        return WorkerExit(
            status=Status.KILLED,
            exit_code=signal_exit_code(died_of),
            signal=signal_name(died_of),
            error=signal_error(state.stop_signal, state.killed_after_grace, os.WTERMSIG(status)),
            **common,
        )
    code = os.WEXITSTATUS(status)
    status_name = Status.SUCCEEDED if code == 0 else Status.FAILED
    if code == 0 and stop_answered(state.stop_request, ended, state.grace_seconds):
        status_name = Status.STOPPED
    error = report.get("error") if code != 0 else None
    return WorkerExit(
        status=status_name,
        exit_code=code,
        signal=stop_name,
        error=error if isinstance(error, str) else None,
        **common,
    )


def _maxrss_bytes(ru_maxrss: int) -> int:
    # Linux reports kilobytes, macOS bytes (getrusage(2)).
    return ru_maxrss if sys.platform == "darwin" else ru_maxrss * 1024
