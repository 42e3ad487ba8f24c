"""What a launch is asked to do: `LaunchOptions`, the worker's `Interpreter`, the `SourceRun`.

`cli` builds these from the command line; `rerun` and `reproduce` fill the two fields a plain
launch leaves empty (`python`, `source`).
"""

import sys
from pathlib import Path
from typing import NamedTuple


class Interpreter(NamedTuple):
    """A Python interpreter: its path and version (`3.11.7`), as run.json's `python` records it."""

    executable: str
    version: str


def this_interpreter() -> Interpreter:
    """The interpreter expyrun runs in (the worker's, unless a launch names another)."""
    return Interpreter(sys.executable, sys.version.split()[0])


# The run.json keys naming a run's source run.
RERUN_OF = "rerun_of"
REPRODUCES = "reproduces"


class SourceRun(NamedTuple):
    """The past run that `expyrun rerun` or `expyrun reproduce` launches again.

    Its run folder is the code folder of the new run: the new run copies the code copy the
    past run's record lists, and keeps its git state (the code is that copy, not a working
    tree). All three fields are in the new run's record, so a detached supervisor has them.
    """

    relation: str  # the run.json key naming it: RERUN_OF or REPRODUCES
    run_dir: Path
    environment: Path | None = None  # `reproduce`: the virtual environment the run uses


class SweepInConfig(Exception):
    """The config defines a sweep (`__sweep__`): `cli` runs it as a sweep (nothing was made).

    Raised by `prepare.resolve_and_check`; defined here, a module every launch imports, so
    that catching it costs a plain launch no import.
    """


class LaunchOptions(NamedTuple):
    """What the command line asked for."""

    config_path: str
    overrides: tuple[str, ...] = ()
    debug: bool = False
    strict: bool = False
    print_config: bool = False
    grace_seconds: float | None = None  # None: the default (capped below KillWait in a job)
    detach: bool = False
    slurm: bool = False
    merged_output: bool = False  # stdout and stderr on one pipe (`> log 2>&1`)
    command: tuple[str, ...] = ()
    python: Interpreter | None = None  # the worker's interpreter (default: this one)
    source: SourceRun | None = None  # the past run this launch runs again
    tags: tuple[str, ...] = ()  # --tag, checked (runs/tags.py TAG_PATTERN)
    note: str | None = None  # --note
    nproc: int = 0  # workers of the run on this machine (--nproc), as the tasks of a job step;
    # 0: no --nproc (one worker, without the rank environment)
    flags: tuple[str, ...] = ()  # the launch line's own flags: "did you mean --detach?"
    flags_with_values: tuple[str, ...] = ()  # given a value (`--tag v2`): a key `tag` is said

    @property
    def worker_python(self) -> Interpreter:
        """The worker's interpreter: `python`, else expyrun's own."""
        return self.python or this_interpreter()
