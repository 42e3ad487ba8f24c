"""Run a sweep's members on this machine: N at once, each with its own GPUs, one line each.

Each member is an ordinary run. Its run folder is prepared here, in the sweep's process
(`launch.prepare.allocate_and_snapshot`: the config was resolved and checked by the
expansion), then supervised by `expyrun _supervise RUN_DIR`, the same supervisor a
`--detach` run gets: its output goes to its outputs.log (and its supervisor's messages to
supervisor.log), not to the terminal. Why a process per member rather than supervising in this
one: the supervisor owns process-wide state (signal handlers, the subreaper flag, its cgroup,
the worker's stdio), so two runs cannot share a process; the extra process is what `--detach`
pays too, and starts while the previous member runs.

GPUs: each running member holds `gpus_per_run` of the listed GPUs, handed over in
`CUDA_VISIBLE_DEVICES` and recorded in its run.json (`sweep.cuda_visible_devices`); a GPU is
returned to the pool only once its member's supervisor has exited, so no GPU is ever given
to two running members.

Signals (events of the sweep's loop while it runs): SIGINT, SIGTERM or SIGHUP stop starting
members and are forwarded to each running member's supervisor, which stops its run the usual
way (forward, grace, kill); a second one is forwarded again (the supervisor then kills at
once). The sweep waits for every supervisor. No member starts once a stop signal came, even
one not yet taken from the queue: a member being prepared then never starts (`_prepare`).
"""

from __future__ import annotations

import _thread
import os
import queue
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from expyrun import console
from expyrun.errors import ExitCode, ExpyrunError, raise_if_interrupted, signal_exit_code
from expyrun.launch.options import LaunchOptions
from expyrun.launch.prepare import PreparedRun
from expyrun.run.folder import SUPERVISOR_LOG
from expyrun.run.record import RecordError, Status
from expyrun.sweep import record
from expyrun.sweep.expand import Member
from expyrun.sweep.member import discard, prepare_member, record_stopped_before_start
from expyrun.sweep.options import SweepOptions
from expyrun.sweep.plan import SKIP, Step, read_run_json, run_status

CUDA_VARIABLE = "CUDA_VISIBLE_DEVICES"


class Outcome(NamedTuple):
    """How a member's run ended, read from its run.json."""

    member: Member
    run_dir: str
    status: str
    data: dict[str, Any]


class _Running(NamedTuple):
    member: Member
    run_dir: str
    process: subprocess.Popen[bytes]
    gpus: tuple[str, ...]


class Scheduler:
    """Start the steps of a plan, at most `slots` at once; collect how each ended."""

    def __init__(
        self,
        steps: Sequence[Step],
        launch: LaunchOptions,
        sweep: SweepOptions,
        cwd: Path,
        folder: Path,
        sweep_id: str,
        gpus: Sequence[str],
    ) -> None:
        self.to_run = [step for step in steps if step.action != SKIP]
        self.count = len(steps)
        self.launch = launch
        self.sweep = sweep
        self.cwd = cwd
        self.folder = folder
        self.sweep_id = sweep_id
        self.free_gpus = list(gpus)
        self.per_run = sweep.gpus_per_run if gpus else 0
        self.slots = sweep.slots
        if gpus:  # one member per set of GPUs, unless --parallel asks for fewer
            sets = len(gpus) // self.per_run
            self.slots = sets if sweep.parallel is None else min(sweep.parallel, sets)
        self.stream = sweep.verbose and self.slots == 1
        self.running: dict[int, _Running] = {}
        # Events for the main loop: ("ended", pid) from the waiting threads, ("signal", signum)
        # from the signal handlers: SimpleQueue.put may be called from a signal handler.
        self.events: queue.SimpleQueue[tuple[str, int]] = queue.SimpleQueue()
        self.outcomes: list[Outcome] = []
        self.prepared_one = False  # a member was prepared (its warnings said once)
        self.failures = 0
        self.stopping: str | None = None  # why no more members start
        self.interrupted: int | None = None  # the first stop signal, once acted on
        # Every stop signal the handler took, acted on or not yet: nothing starts once it has one.
        self.signalled: list[int] = []
        # The next member prepared while every slot is busy (`_prepare_ahead`), not yet recorded:
        self.ahead: tuple[Step, PreparedRun, int] | None = None  # step, folder, folder's inode

    def run(self) -> int:
        """Run every step to its end (or until stopped); the sweep's exit code.

        SIGINT, SIGTERM and SIGHUP become events of the main loop while it runs (not
        exceptions that could fall between starting a member and noting its pid).
        """
        pending = list(self.to_run)
        previous = self._take_stop_signals()
        try:
            while self.running or (pending and self.stopping is None):
                while pending and self._can_start():
                    step = pending.pop(0)
                    if not self._start(step):
                        pending.insert(0, step)  # a stop signal came while it was prepared
                self._prepare_ahead(pending)
                if not self.running and not self.signalled:
                    continue
                kind, number = self.events.get()
                if kind == "signal":
                    self._interrupt(number, len(pending))
                    pending = []
                else:
                    self._collect(number)
        except BaseException:
            self._stop_all()  # a bug or a full disk here: no member is left unsupervised
            raise
        finally:
            self._discard_ahead()  # stopped (a signal, --fail-fast) before it could start
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if self.interrupted is not None:
            return signal_exit_code(self.interrupted)
        return ExitCode.OK if self.failures == 0 else 1

    def _take_stop_signals(self) -> dict[int, Any]:
        """Make the stop signals events; return the handlers they had (an ignored one stays)."""
        raise_if_interrupted()  # one taken before, its exception dropped (errors.py)
        previous: dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            handler = signal.getsignal(signum)
            if handler == signal.SIG_IGN:
                continue  # SIGHUP under nohup: stays ignored
            previous[signum] = handler
            signal.signal(signum, self._on_signal)
        return previous

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signalled.append(signum)  # seen by the start loop before the event is taken
        self.events.put(("signal", signum))

    def _can_start(self) -> bool:
        if self.stopping is not None or self.signalled or len(self.running) >= self.slots:
            return False
        return len(self.free_gpus) >= self.per_run

    def _prepare_ahead(self, pending: list[Step]) -> None:
        """While every slot is busy, prepare the next member, so that it starts at once when a
        slot frees (a member's preparation is a sixth of a no-op launch). Not with --gpus:
        which GPUs it gets is known only then. A member whose preparation fails is left to
        `_start`, which reports it."""
        if self.ahead is not None or not pending or self.per_run or self.signalled:
            return
        if self.stopping is not None or len(self.running) < self.slots:
            return
        try:
            prepared = self._prepare_folder(pending[0].member, ())
        except ExpyrunError:
            return
        if self.signalled:
            discard(prepared)
        else:
            self.ahead = (pending[0], prepared, os.stat(prepared.run_dir).st_ino)

    def _discard_ahead(self) -> None:
        if self.ahead is not None:
            discard(self.ahead[1])
            self.ahead = None

    def _start(self, step: Step) -> bool:
        """Prepare and start a member; False if a stop signal came meanwhile (not started)."""
        member = step.member
        gpus = tuple(self.free_gpus[: self.per_run])
        try:
            run_dir = self._prepare(step, gpus)
        except ExpyrunError as exc:
            self.failures += 1
            console.error(f"[{member.number}/{self.count}] could not be prepared: {exc}")
            self._check_failures()
            return True
        if run_dir is None:
            return False
        del self.free_gpus[: self.per_run]
        env = dict(os.environ)
        if self.per_run:
            env[CUDA_VARIABLE] = ",".join(gpus)
        argv = [sys.executable, "-m", "expyrun", "_supervise", run_dir]
        if self.stream:
            argv.append("--copy-output")
            log = None
        else:
            log = open(Path(run_dir) / SUPERVISOR_LOG, "ab")  # noqa: SIM115 - closed below
        try:
            # A session of its own: a Ctrl-C at the terminal reaches the sweep, which forwards
            # it once to each supervisor (not twice: the terminal's and the sweep's).
            process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
            )
        finally:
            if log is not None:
                log.close()
        self.running[process.pid] = _Running(member, run_dir, process, gpus)
        # Not threading.Thread: its start() waits until the thread runs (~2 ms a member).
        _thread.start_new_thread(self._wait, (process,))
        return True

    def _prepare(self, step: Step, gpus: tuple[str, ...]) -> str | None:
        """Allocate and snapshot the member's run folder; note it in the sweep record.

        None when a stop signal came meanwhile (the code copy takes a while): the folder is
        removed, not noted, as a launch stopped while preparing removes its own; the member
        stays `not started`. A later signal is forwarded to the member's supervisor
        (`_collect` records it killed if it died of it before recording anything).
        """
        prepared = self._take_ahead(step) or self._prepare_folder(step.member, gpus)
        if self.signalled:
            discard(prepared)
            return None
        member = step.member
        record.append_member(self.folder, member.number, member.digest, prepared.run_dir)
        return str(prepared.run_dir)

    def _take_ahead(self, step: Step) -> PreparedRun | None:
        """The folder prepared ahead for `step` if still there and `prepared`: it waited as long
        as a member ran, and `expyrun clean` removes a `prepared` folder a minute old."""
        if self.ahead is None or self.ahead[0] is not step:
            return None
        _, prepared, inode = self.ahead
        self.ahead = None
        try:  # gone, or a new folder of that name: nothing of it is ours to remove
            same = os.stat(prepared.run_dir).st_ino == inode
        except OSError:
            return None
        return prepared if same and run_status(str(prepared.run_dir)) == Status.PREPARED else None

    def _prepare_folder(self, member: Member, gpus: tuple[str, ...]) -> PreparedRun:
        first = not self.prepared_one
        self.prepared_one = True
        return prepare_member(
            self.launch, self.cwd, self.sweep_id, self.count, member, warn_paths=first, gpus=gpus
        )

    def _wait(self, process: subprocess.Popen[bytes]) -> None:
        process.wait()
        self.events.put(("ended", process.pid))

    def _collect(self, pid: int) -> None:
        """A member's supervisor exited: free its GPUs, print its line, count a failure."""
        ended = self.running.pop(pid)
        self.free_gpus.extend(ended.gpus)
        status = run_status(ended.run_dir)
        if status == Status.PREPARED and self.interrupted is not None:
            # It got our stop signal while starting, before it could record anything.
            try:
                record_stopped_before_start(ended.run_dir, self.interrupted, pid)
                status = run_status(ended.run_dir)
            except RecordError as exc:
                console.warning(str(exc))
        data = read_run_json(ended.run_dir) or {}
        if status in (Status.RUNNING, Status.PREPARED):
            status = Status.LOST.value  # its supervisor is gone without writing the end
        outcome = Outcome(ended.member, ended.run_dir, status, data)
        self.outcomes.append(outcome)
        say = console.info if status == Status.SUCCEEDED else console.warning
        say(member_line(outcome, self.count))
        if status != Status.SUCCEEDED:
            self.failures += 1
            self._check_failures()

    def _check_failures(self) -> None:
        limit = 1 if self.sweep.fail_fast else self.sweep.max_failures
        if limit is not None and self.failures >= limit and self.stopping is None:
            self.stopping = f"{self.failures} failed"
            console.info(f"{self.failures} failed: starting no more members")
            self._discard_ahead()

    def _interrupt(self, signum: int, not_started: int) -> None:
        """Forward a stop signal to every running member, then wait for them all."""
        first = self.interrupted is None
        if first:
            self.interrupted = signum
            self.stopping = "interrupted"
            self._discard_ahead()
            name = signal.Signals(signum).name
            console.info(
                f"{name}: starting no more members ({not_started} not started); stopping "
                f"{len(self.running)} running"
            )
        for running in list(self.running.values()):
            try:
                os.kill(running.process.pid, signum)
            except ProcessLookupError:
                pass

    def _stop_all(self) -> None:
        """Stop the running members the usual way (SIGTERM) and wait for their supervisors."""
        for running in self.running.values():
            try:
                os.kill(running.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for running in self.running.values():
            running.process.wait()


def member_line(outcome: Outcome, count: int) -> str:
    """`[5/12] failed in 41s (exit 1, RuntimeError: ...) training.lr=0.01 seed=2 -> DIR`."""
    data = outcome.data
    seconds = data.get("duration_s")
    took = console.duration_text(seconds) if isinstance(seconds, (int, float)) else "-"
    details = []
    if outcome.status != Status.SUCCEEDED:
        error = str(data.get("error") or "")
        if data.get("signal"):
            if not error.startswith(str(data["signal"])):  # `SIGINT, then killed by ...`
                details.append(str(data["signal"]))
        elif data.get("exit_code") is not None:
            details.append(f"exit {data['exit_code']}")
        if error:
            details.append(error)
        if outcome.status == Status.LOST:
            details.append(f"see {SUPERVISOR_LOG}")
    said = f" ({', '.join(details)})" if details else ""
    member = outcome.member
    return (
        f"[{member.number}/{count}] {outcome.status} in {took}{said} {member.describe()} "
        f"-> {outcome.run_dir}"
    )
