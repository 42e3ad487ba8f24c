"""`expyrun rerun` and `expyrun reproduce`: run a past run again, from its own snapshot.

Both launch a new run through the pipeline with the past run folder as the code folder, so
the new run copies and runs the past run's code copy, never the working tree:

- rerun: from RUN/raw_config.yml (values derived from an override, such as the name, follow
  it; `--exact`: RUN/config.yml), in the current environment; run.json says `rerun_of`.
- reproduce: from RUN/config.yml, with the worker in a virtual environment holding exactly
  RUN/frozen_requirements.txt (built with pip-sync, cached by content: see `cache`);
  run.json says `reproduces` and names the `environment`. `--check` only lists how an
  environment differs from the run's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NamedTuple

from expyrun import console
from expyrun.errors import ExitCode, ReproduceError
from expyrun.launch import launch
from expyrun.launch.options import REPRODUCES, RERUN_OF, LaunchOptions, SourceRun
from expyrun.launch.prepare import resolve_and_check
from expyrun.reproduce.cache import installed_requirements, prepare_environment
from expyrun.reproduce.differences import Difference, compare
from expyrun.reproduce.pip import venv_python
from expyrun.run import freeze, snapshot
from expyrun.run.record import RECORD_FILE, RunRecord, read_record


class PastRunOptions(NamedTuple):
    """What `expyrun rerun|reproduce RUN ...` asked for."""

    run_dir: str
    launch: LaunchOptions  # the launch flags and overrides; its config path is set here
    exact: bool = False  # rerun: RUN/config.yml instead of RUN/raw_config.yml
    check: bool = False  # reproduce: only compare an environment with the run's
    env: str | None = None  # reproduce: the virtual environment to use (default: the cache)
    base_python: str | None = None  # reproduce: the interpreter to build the environment with
    pip_options: tuple[str, ...] = ()  # reproduce: passed to pip-sync (--find-links DIR, ...)


class PastRun(NamedTuple):
    """A run folder to run again, checked."""

    run_dir: Path
    record: RunRecord

    @property
    def requirements_file(self) -> Path:
        """Its frozen_requirements.txt."""
        return self.run_dir / freeze.FROZEN_REQUIREMENTS_FILE

    def as_source(self, relation: str, environment: Path | None = None) -> SourceRun:
        """This run as the source of a new launch (`relation`: RERUN_OF or REPRODUCES)."""
        return SourceRun(relation, self.run_dir, environment)


def load_past_run(path: str, needs_requirements: bool = False) -> PastRun:
    """The run folder `path`, checked: its record, configs and (for reproduce) requirements."""
    run_dir = Path(os.path.abspath(path))
    if not run_dir.is_dir():
        raise ReproduceError("no such run folder", path=path)
    try:
        record = read_record(run_dir)
    except FileNotFoundError:
        raise ReproduceError(f"not a run folder: no {RECORD_FILE}", path=run_dir) from None
    except (OSError, ValueError) as exc:
        raise ReproduceError(f"not a run folder: {exc}", path=run_dir) from exc
    if record.debug:
        raise ReproduceError(
            "a --debug run keeps no code copy to run again",
            path=run_dir,
            hint=f"to run the code as it is now: expyrun {run_dir / snapshot.RAW_CONFIG_FILE}",
        )
    needed = [snapshot.CONFIG_FILE, snapshot.RAW_CONFIG_FILE]
    if needs_requirements:
        needed.append(freeze.FROZEN_REQUIREMENTS_FILE)
    for name in needed:
        if not (run_dir / name).is_file():
            raise ReproduceError(f"the run folder has no {name}", path=run_dir)
    return PastRun(run_dir, record)


def rerun(options: PastRunOptions) -> int:
    """`expyrun rerun RUN`: a new run of RUN's code copy in the current environment, with as
    many workers as RUN had (`as_it_ran`)."""
    past = load_past_run(options.run_dir)
    config = snapshot.CONFIG_FILE if options.exact else snapshot.RAW_CONFIG_FILE
    console.info(f"running again {past.run_dir} (its code copy, {config})")
    from expyrun.launch.task_count import as_it_ran

    launch_options = as_it_ran(past.record, past.run_dir, options.launch)
    return launch(
        launch_options._replace(
            config_path=str(past.run_dir / config), source=past.as_source(RERUN_OF)
        )
    )


def reproduce(options: PastRunOptions) -> int:
    """`expyrun reproduce RUN`: a new run of RUN in an environment rebuilt from its requirements,
    with as many workers as RUN had (`as_it_ran`)."""
    past = load_past_run(options.run_dir, needs_requirements=True)
    if options.check:
        return check(past, options.env)
    from expyrun.launch.task_count import as_it_ran, check_nproc

    launch_options = as_it_ran(past.record, past.run_dir, options.launch)
    launch_options = launch_options._replace(config_path=str(past.run_dir / snapshot.CONFIG_FILE))
    if launch_options.print_config:
        return launch(launch_options._replace(source=past.as_source(REPRODUCES)))
    # Bad overrides or flags are found before the environment is built (that takes minutes).
    if launch_options.nproc:
        check_nproc(launch_options.nproc)
    resolve_and_check(
        launch_options._replace(source=past.as_source(REPRODUCES)), Path.cwd(), quiet=True
    )
    environment = prepare_environment(
        past.requirements_file,
        past.record.python,
        options.base_python,
        Path(options.env) if options.env else None,
        options.pip_options,
    )
    console.info(f"reproducing {past.run_dir} with {environment.python.executable}")
    return launch(
        launch_options._replace(
            python=environment.python,
            source=past.as_source(REPRODUCES, environment.path),
        )
    )


def check(past: PastRun, env: str | None) -> int:
    """`reproduce --check`: list how an environment differs from the run's; 1 if it does.

    The environment is the one expyrun runs in, or the virtual environment `env`.
    """
    text = past.requirements_file.read_text(encoding="utf-8")
    frozen, frozen_python = freeze.parse_requirements(text)
    # Own code of this side: expyrun from a source tree, a package installed from here.
    own_dirs = [os.getcwd(), str(Path(freeze.__file__).parent.parent)]
    if env is None:
        where = f"this environment ({sys.prefix})"
        current_python = sys.version.split()[0]
        current_text = freeze.frozen_requirements(own_code_dirs=own_dirs)
    else:
        python = venv_python(Path(env))
        if not python.exists():
            raise ReproduceError("not a virtual environment (no bin/python)", path=env)
        where = f"the environment {os.path.abspath(env)}"
        current_text = installed_requirements(python, own_dirs)
        current_python = freeze.parse_requirements(current_text)[1] or "?"
    current = freeze.parse_requirements(current_text)[0]
    differences = compare(frozen, current)
    run_python = past.record.python.get("version") or frozen_python
    if run_python and run_python != current_python:
        python_change = Difference("changed", "python", run_python, current_python)
        differences.insert(0, python_change)
    if not differences:
        count = sum(1 for r in frozen if not r.own_code)
        console.info(f"{where} matches the run's {count} requirements")
        return ExitCode.OK
    for difference in differences:
        console.out(str(difference))
    console.info(
        f"{where} differs from {past.requirements_file} in {len(differences)} "
        f"place{'s' if len(differences) > 1 else ''} (added: installed here, not in the run)"
    )
    return ExitCode.DIFFERS
