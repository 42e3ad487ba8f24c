"""The slow part of a snapshot: frozen_requirements.txt and the git state.

Taken at submit time for `--slurm`, else in a thread while the worker runs (`Recorder`): a
no-op run does not wait for `git status` on a large repository.
"""

from __future__ import annotations

import _thread
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from expyrun import console
from expyrun.launch.options import LaunchOptions
from expyrun.run import snapshot
from expyrun.run.record import Status

if TYPE_CHECKING:
    from expyrun.launch.prepare import PreparedRun

# How long the end of a run waits for the recording thread (git on a huge repository), and,
# when Slurm is ending the job (SIGKILL after KillWait), how long it still waits.
RECORDING_TIMEOUT_SECONDS = 60.0
RECORDING_TIMEOUT_IN_ENDING_JOB_SECONDS = 0.5


def snapshot_environment(
    code_dir: Path, run_dirs: Sequence[Path], options: LaunchOptions, git: bool = True
) -> dict[str, Any]:
    """Write frozen_requirements.txt (not in debug mode) and the git state into the run folders.

    Computed once, written into each folder (the tasks of a Slurm array share them). Returns
    the record's `requirements` and `git` fields.
    """
    fields: dict[str, Any] = {}
    if not options.debug:
        from expyrun.run import freeze

        text = frozen_requirements(code_dir, options)
        for run_dir in run_dirs:
            snapshot.write_text_file(run_dir / freeze.FROZEN_REQUIREMENTS_FILE, text)
        fields["requirements"] = freeze.FROZEN_REQUIREMENTS_FILE
    if git:
        state = snapshot.git_state(code_dir, run_dirs[0])
        if state and state.get("diff"):
            diff = (run_dirs[0] / snapshot.GIT_DIFF_FILE).read_bytes()
            for run_dir in run_dirs[1:]:
                (run_dir / snapshot.GIT_DIFF_FILE).write_bytes(diff)
        fields["git"] = state
    return fields


def frozen_requirements(code_dir: Path, options: LaunchOptions) -> str:
    """The worker interpreter's distributions, the run's own code written as comments."""
    from expyrun.run import freeze

    # The code folder, and expyrun's own package: installed from a source tree, both are
    # code a sync must not reinstall.
    own_dirs = [str(code_dir), os.path.dirname(os.path.dirname(__file__))]
    own_names = set()
    if options.source:  # the past run's own code is this run's own code too
        past = options.source.run_dir / freeze.FROZEN_REQUIREMENTS_FILE
        if past.is_file():
            requirements = freeze.parse_requirements(past.read_text(encoding="utf-8"))[0]
            own_names = {r.key for r in requirements if r.own_code}
    python = options.worker_python.executable
    if python == sys.executable:
        return freeze.frozen_requirements(own_code=own_names, own_code_dirs=own_dirs)
    # Another interpreter (a reproduced run's environment): freeze.py runs in it.
    return freeze.frozen_requirements_of(python, own_dirs, own_names)


class Recorder:
    """Frozen requirements and git state, gathered in a thread while the worker runs.

    Only for a run folder's first run when nothing took them yet: a `--slurm` submission takes
    them at submit time, and a resumed run keeps those of its first attempt. They describe
    what the run folder was prepared from.
    """

    def __init__(self, prepared: PreparedRun, needed: bool | None = None) -> None:
        """`needed`: whether to gather; by default, when the run folder has not run yet."""
        self._prepared = prepared
        self.fields: dict[str, Any] = {}
        self._done = _thread.allocate_lock()
        self._needed = prepared.record.status == Status.PREPARED if needed is None else needed

    def start(self) -> None:
        """Start gathering (once the worker runs)."""
        # Not threading.Thread: its start() waits for the thread to run (launch-path time).
        if self._needed:
            self._done.acquire()
            _thread.start_new_thread(self._record, ())

    def join(self, timeout: float = RECORDING_TIMEOUT_SECONDS) -> dict[str, Any]:
        """The record fields gathered, waiting at most `timeout` seconds for them."""
        if self._needed and self._done.acquire(timeout=timeout):
            self._done.release()
        return dict(self.fields)

    def _record(self) -> None:
        try:
            self._gather()
        finally:
            self._done.release()

    def _gather(self) -> None:
        prepared = self._prepared
        try:
            self.fields.update(
                snapshot_environment(
                    prepared.resolved.run.code_dir,
                    [prepared.run_dir],
                    prepared.options,
                    git=prepared.options.source is None,  # else the past run's git state is kept
                )
            )
        except Exception as exc:
            console.warning(f"could not record the environment: {exc}")


def run_recorder(prepared: PreparedRun, rank: int | None) -> Recorder | None:
    """What gathers the run's requirements and git state: task 0's, in a multi-task run.

    `rank`: the task's, in a multi-task run. The record task 0 read may say `running` already
    (the other tasks' entries): unless taken at submission, they are still to take all the
    same (a task runs once).
    """
    if rank is None:
        return Recorder(prepared)
    if rank != 0:
        return None
    taken = prepared.record.requirements is not None or prepared.record.git is not None
    return Recorder(prepared, needed=not taken)
