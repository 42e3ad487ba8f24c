"""`expyrun CONFIG --nproc N`: N workers of one run on this machine, as srun would start them.

Like `torchrun --standalone --nproc-per-node N`, with expyrun's supervision. The run folder is
prepared here; then N task supervisors (`expyrun _supervise RUN_DIR --task R --ntasks N`)
each run one worker, exactly as the tasks of a Slurm job step do (their own logs, their
entries in run.json: run/tasks.py). This process coordinates them, as srun does:

- each supervisor runs in a session of its own, so that a signal reaches it once: SIGINT,
  SIGTERM and SIGHUP sent here (Ctrl-C) are forwarded to every task (each forwards it to its
  worker, waits the grace, then kills; a second Ctrl-C kills at once); SIGUSR1 and SIGUSR2
  are passed on to every task too, as a single run's supervisor does;
- when a task fails (a non-zero exit), the others get SIGTERM: they end within the grace;
- once every task has ended, a task that never wrote its entry is recorded `lost`;
- on Linux, a task supervisor gets SIGTERM when this process dies (PR_SET_PDEATHSIG), so a
  launcher killed outright (SIGKILL, an OOM kill) still stops the run the graceful way.

It exits with the code of the first task that failed, else 0.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from expyrun import console
from expyrun.errors import ExitCode, Interrupted, UsageError, raise_if_interrupted
from expyrun.launch.options import LaunchOptions
from expyrun.launch.prepare import prepare
from expyrun.launch.task_count import check_nproc
from expyrun.run import tasks
from expyrun.run.process_identity import takes_signal, wait_until_taken
from expyrun.run.tasks import (
    LOCAL_GROUP_PREFIX,
    MASTER_ADDR_VARIABLE,
    MASTER_PORT_VARIABLE,
    RANK_VARIABLES,
    Task,
)
from expyrun.run.tracking import load_prctl

LOCAL_ADDRESS = "127.0.0.1"
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Forwarded too, but no request to stop: the entry's own (SIGUSR1: Slurm's `--signal` warning,
# a checkpoint), as a single run's supervisor forwards them.
_PASSED_ON = (signal.SIGUSR1, signal.SIGUSR2)
# After the tasks were asked to stop, how long past their grace before they are killed.
_KILL_MARGIN_SECONDS = 5.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# What `take_signals` changed: the wake-up pipe's fds, the signals' handlers, the wake-up fd.
_TakenSignals = tuple[int, int, dict[int, Any], int]


def local_task(rank: int, world_size: int) -> Task:
    """Task `rank` of a `--nproc` run, in a task supervisor this module started."""
    if not 0 <= rank < world_size:
        raise UsageError(f"--task {rank} is not below --ntasks {world_size}")
    port = os.environ.get(MASTER_PORT_VARIABLE) or "0"
    return Task(
        rank=rank,
        world_size=world_size,
        local_rank=rank,
        local_world_size=world_size,
        master_addr=os.environ.get(MASTER_ADDR_VARIABLE) or LOCAL_ADDRESS,
        master_port=int(port) if port.isdigit() else 0,
        group=f"{LOCAL_GROUP_PREFIX}{os.getppid()}",
    )


def free_port() -> int:
    """A TCP port free on the loopback now (the kernel's choice; torchrun --standalone's way)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOCAL_ADDRESS, 0))
        return int(probe.getsockname()[1])


def _stop_with(launcher: int) -> Callable[[], None] | None:
    """In the child before exec: SIGTERM it when `launcher` dies (Linux's prctl(2)).

    libc is loaded here, in the parent: the child only makes the call (nothing to import or
    allocate between fork and exec). A launcher already gone by then: SIGTERM at once.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = load_prctl()
    except ImportError:
        return None
    if prctl is None:
        return None

    def stop_with_launcher() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != launcher:
            os.kill(os.getpid(), signal.SIGTERM)

    return stop_with_launcher


def launch_nproc(options: LaunchOptions, nproc: int) -> int:
    """Prepare the run folder, run `nproc` task supervisors in it, return the run's exit code.

    Raises UsageError, before anything is made, when `nproc` is past `nproc_limit()`.
    """
    check_nproc(nproc)
    prepared = prepare(options)
    run_dir = prepared.run_dir
    try:  # until the coordinator takes the stop signals: a stop here ends every task unstarted
        exported = [name for name in RANK_VARIABLES if os.environ.get(name)]
        if exported:  # replaced, as torchrun replaces them; said once, as a step's task says
            values = ", ".join(f"{name}={os.environ[name]}" for name in exported)
            console.warning(
                f"the environment sets {values}, but each of the {nproc} workers gets its own "
                f"(as torchrun's do); unset {' '.join(exported)} to silence this"
            )
        console.info(f"run folder: {run_dir}")
        port = os.environ.get(MASTER_PORT_VARIABLE) or str(free_port())
        addr = os.environ.get(MASTER_ADDR_VARIABLE) or LOCAL_ADDRESS
        coordinator = _Coordinator(run_dir, nproc, addr, port, prepared.record.grace_s)
        signals = coordinator.take_signals()
    except (KeyboardInterrupt, Interrupted) as exc:
        tasks.finish_record(run_dir, nproc, _stop_signal(exc))
        raise
    return coordinator.run(signals)


def _stop_signal(exc: BaseException) -> int:
    """The signal the tasks are said to be stopped by when `exc` ends the launcher early."""
    if isinstance(exc, Interrupted):
        return exc.signum
    return signal.SIGINT if isinstance(exc, KeyboardInterrupt) else signal.SIGTERM


class _Coordinator:
    """The task supervisors of one `--nproc` run, started, watched, stopped and reaped."""

    def __init__(self, run_dir: Path, nproc: int, addr: str, port: str, grace: float | None):
        self.run_dir = run_dir
        self.nproc = nproc
        self.env = {**os.environ, MASTER_ADDR_VARIABLE: addr, MASTER_PORT_VARIABLE: port}
        self.grace = grace
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.codes: dict[int, int] = {}
        self.first_failure: int | None = None
        self.received: list[int] = []
        # A stop signal was sent to the tasks: a task ending now ends on it, and another
        # signal would make the others' supervisors kill at once, cutting their grace short.
        self.stopping = False
        # The first signal sent to every task to stop it (forwarded, or after a task failed).
        self.stopped_by: int | None = None
        # Tasks sent SIGTERM for a forwarded SIGINT, as they were still starting.
        self.substituted: set[int] = set()

    def take_signals(self) -> _TakenSignals:
        """Make the stop signals events (`received`); what `run` restores at its end: the
        wake-up pipe's fds, the handlers the signals had, the wake-up fd before."""
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        # `_watch` reads it after select(2), which may have timed out: never block there.
        os.set_blocking(read_fd, False)
        handled = (*_FORWARDED, *_PASSED_ON, signal.SIGCHLD)
        previous: dict[int, Any] = {signum: signal.getsignal(signum) for signum in handled}
        for signum in (*_FORWARDED, *_PASSED_ON):
            signal.signal(signum, lambda signum, frame: self.received.append(signum))
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes the select
        return read_fd, write_fd, previous, signal.set_wakeup_fd(write_fd)

    def run(self, signals: _TakenSignals) -> int:
        """Start the tasks, forward the signals `take_signals` took, and reap them; the run's
        exit code."""
        read_fd, write_fd, previous, old_wakeup = signals
        try:
            # Said once a stop signal is forwarded to the tasks (their start is under way).
            addr, port = self.env[MASTER_ADDR_VARIABLE], self.env[MASTER_PORT_VARIABLE]
            console.info(f"{self.nproc} tasks share it (MASTER_ADDR={addr}, MASTER_PORT={port})")
            raise_if_interrupted()  # one taken before, its exception dropped (errors.py)
            for rank in range(self.nproc):
                self.processes[rank] = self._start(rank)
            self._watch(read_fd)
        except BaseException as exc:
            self._stop_all(signal.SIGTERM)
            self._reap_within(self._stop_deadline())
            # Every task is recorded as ended, by the stop signal that came before them.
            tasks.finish_record(self.run_dir, self.nproc, self.stopped_by or _stop_signal(exc))
            raise
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            os.close(read_fd)
            os.close(write_fd)
        tasks.finish_record(self.run_dir, self.nproc, self.stopped_by)
        if self.first_failure is not None:
            return self.codes[self.first_failure]
        return next((code for code in self.codes.values() if code), ExitCode.OK)

    def _start(self, rank: int) -> subprocess.Popen[bytes]:
        env = dict(
            self.env,
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE=str(self.nproc),
            LOCAL_WORLD_SIZE=str(self.nproc),
        )
        argv = [sys.executable, "-m", "expyrun", "_supervise", str(self.run_dir)]
        argv += ["--copy-output", "--task", str(rank), "--ntasks", str(self.nproc)]
        return subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            # preexec_fn is safe here: this process runs no other thread.
            preexec_fn=_stop_with(os.getpid()),
        )

    def _watch(self, read_fd: int) -> None:
        while len(self.codes) < len(self.processes):
            if not self.received:  # one may have come without a wake-up byte (just before
                select.select([read_fd], [], [], 0.5)  # `take_signals` set the wake-up fd)
            try:
                os.read(read_fd, 4096)
            except BlockingIOError:
                pass
            received, self.received[:] = list(self.received), []
            for signum in received:
                name = signal.Signals(signum).name
                console.info(f"received {name}: forwarding it to the {self.nproc} tasks")
                self._stop_all(signum)
                if signum not in _PASSED_ON:
                    self.stopping = True
                    self.stopped_by = self.stopped_by or signum
            self._poll()

    def _poll(self) -> None:
        for rank, process in self.processes.items():
            if rank in self.codes or process.poll() is None:
                continue
            code = process.returncode
            if rank in self.substituted and code in (-signal.SIGTERM, 128 + signal.SIGTERM):
                # Sent SIGTERM for a SIGINT (`_stop_all`): ended by its default action, or by
                # expyrun's handler when the task took the signals over after the check.
                code = -signal.SIGINT
            self.codes[rank] = code if code >= 0 else 128 - code
            if self.codes[rank] and self.first_failure is None:
                self.first_failure = rank
                if len(self.codes) < len(self.processes) and not self.stopping:
                    self.stopping = True
                    console.info(
                        f"task {rank} ended with exit code {self.codes[rank]}: stopping the "
                        "other tasks (SIGTERM, then the grace period)"
                    )
                    self._stop_all(signal.SIGTERM)
                    # A task stopped by it before it wrote its entry was killed by it, not lost.
                    self.stopped_by = self.stopped_by or signal.SIGTERM

    def _stop_all(self, signum: int) -> None:
        for rank, process in self.processes.items():
            if rank not in self.codes and process.poll() is None:
                sent = signum
                if signum == signal.SIGINT and takes_signal(process.pid, signal.SIGTERM) is False:
                    # Still starting, before expyrun's handlers: Python's own SIGINT handler
                    # would raise in its imports (a traceback, exit 1). SIGTERM's default
                    # action ends it quietly; it counts as stopped by the SIGINT.
                    sent = signal.SIGTERM
                    self.substituted.add(rank)
                # A second stop signal (kill now) sent before the task took the first would
                # merge with it: the task would wait its grace (`expyrun stop --kill`).
                wait_until_taken(process.pid, sent)  # 5 s at most: a loaded machine
                try:
                    process.send_signal(sent)
                except ProcessLookupError:
                    pass

    def _stop_deadline(self) -> float:
        import time

        return time.monotonic() + (self.grace or 10.0) + _KILL_MARGIN_SECONDS

    def _reap_within(self, deadline: float) -> None:
        import time

        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
