"""A stop signal whose exception Python dropped still stops the run (errors.interrupt).

A signal handler runs in whatever Python code the main thread runs next. When that is a
weakref callback (the import system's module locks use them) or a `__del__`, the handler's
exception is printed as "Exception ignored in ..." and dropped: expyrun went on, started the
worker, and the run outlived the SIGTERM meant to stop it (a `--nproc` task that its
launcher stopped kept waiting for a dead peer). Here the drop is made to happen for real:
the driver installs expyrun's handlers, sends itself the signal inside a weakref callback,
then runs the command line. What takes the signals over (the supervisor, the `--nproc`
launcher, a sweep) must act on it, and the record must say the run was stopped.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
from pathlib import Path

import pytest
from support import Project, read_json, run

DRIVER = """
import signal, sys, weakref
from expyrun import cli
cli._interrupt_on_stop_signals()


class Box:
    pass


box = Box()
ref = weakref.ref(box, lambda ref: signal.raise_signal(signal.SIG{name}))
del box  # the callback runs: the handler's exception is raised inside it, and dropped
print("went on", file=sys.stderr, flush=True)
sys.exit(cli.main(sys.argv[1:]))
"""

ENTRY = """
print("the entry ran", flush=True)
"""


def _driver(signal_name: str) -> list[str]:
    return [sys.executable, "-c", DRIVER.replace("{name}", signal_name)]


def _text(log: Path) -> str:
    """A log's text; none when the supervisor stopped before it opened it."""
    return log.read_text() if log.exists() else ""


def _check_dropped(stderr: str) -> None:
    """The signal's exception was dropped for real (the driver went on), quietly: no
    "Exception ignored in ..." with a traceback of expyrun's handler."""
    assert "went on" in stderr, stderr
    assert "Exception ignored" not in stderr, stderr
    assert "Traceback" not in stderr, stderr


@pytest.mark.parametrize("name", ["TERM", "INT", "HUP"])
def test_a_run_is_stopped_before_its_entry_starts(project: Project, name: str) -> None:
    config = project.config(project.entry(ENTRY))
    result = run([config], cwd=project.root, command=_driver(name))
    _check_dropped(result.stderr)
    signum = signal.Signals[f"SIG{name}"]
    assert result.code == 128 + signum, result.describe()
    run_dir = result.run_dir
    assert "the entry ran" not in _text(run_dir / "outputs.log")
    record = read_json(run_dir / "run.json")
    assert record["status"] == "killed"
    assert record["signal"] == f"SIG{name}"
    assert record["exit_code"] == 128 + signum
    assert record["error"] == f"SIG{name} before the entry point started"
    status = run(["status", run_dir], cwd=project.root)
    assert f"killed (SIG{name})" in status.stdout
    assert "supervisor pid None" not in status.stdout


def test_an_nproc_run_starts_no_task(project: Project) -> None:
    config = project.config(project.entry(ENTRY))
    result = run([config, "--nproc", "2"], cwd=project.root, command=_driver("TERM"))
    _check_dropped(result.stderr)
    assert result.code == 143, result.describe()
    record = read_json(result.run_dir / "run.json")
    assert record["status"] == "killed"
    assert [(task["status"], task["signal"]) for task in record["tasks"]] == [
        ("killed", "SIGTERM"),
        ("killed", "SIGTERM"),
    ]
    status = run(["status", result.run_dir], cwd=project.root)
    assert "  1. killed (SIGTERM), exit 143, peak mem -" in status.stdout
    assert " on None" not in status.stdout


def test_a_sweep_starts_no_member(project: Project) -> None:
    config = project.config(project.entry(ENTRY), name="s{seed}", extra={"seed": 0})
    args = [config, "--sweep", "seed", "0,1"]
    result = run(args, cwd=project.root, command=_driver("TERM"))
    _check_dropped(result.stderr)
    assert result.code == 143, result.describe()
    assert not list(project.output.glob("*/exp.*/outputs.log"))


def test_a_task_supervisor_starts_no_worker(project: Project) -> None:
    """`expyrun _supervise` (a --nproc or srun task, a --detach run, a Slurm job) takes it
    too. The prepared folder is a finished run's, put back to `prepared`."""
    config = project.config(project.entry(ENTRY))
    first = run([config, "--nproc", "2"], cwd=project.root)
    assert first.code == 0, first.describe()
    run_dir = first.run_dir
    prepared = read_json(run_dir / "run.json")
    prepared.update(status="prepared", tasks=None)
    (run_dir / "run.json").write_text(json.dumps(prepared))
    shutil.rmtree(run_dir / ".tasks")
    (run_dir / "outputs.task1.log").unlink()
    argv = ["_supervise", str(run_dir), "--task", "1", "--ntasks", "2"]
    task = run(argv, cwd=project.root, command=_driver("TERM"))
    _check_dropped(task.stderr)
    assert task.code == 143, task.describe()
    assert "the entry ran" not in _text(run_dir / "outputs.task1.log")
    (entry,) = read_json(run_dir / "run.json")["tasks"]  # task 0 has not run
    assert entry["rank"] == 1
    assert (entry["status"], entry["signal"], entry["exit_code"]) == ("killed", "SIGTERM", 143)
