"""The launch path stays lean: a no-op launch imports only what a run needs.

Read from `python -X importtime -m expyrun CONFIG` (one line per module the supervisor
imports, on stderr). The worker is started without -X, so its imports are not listed.
"""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path

from support import Project, read_json, run, start, wait_for

import expyrun

# Modules a plain launch must not load: the other modes' code, the commands over recorded
# runs, the help, and stdlib modules that cost milliseconds (argparse ~8 ms, subprocess ~2 ms,
# dataclasses ~5 ms with inspect: records on the launch path are NamedTuples).
NOT_ON_THE_LAUNCH_PATH = (
    "argparse",
    "dataclasses",
    "inspect",
    "subprocess",
    "threading",
    "shlex",
    "textwrap",
    "psutil",
    "expyrun.cli.help",
    "expyrun.cli.run_commands",
    "expyrun.launch.submit",
    "expyrun.launch.detach",
    "expyrun.slurm.script",
    "expyrun.slurm.commands",  # outside Slurm, no scontrol is asked
    "expyrun.run.tasks",  # a multi-task run's
    "expyrun.run.record_check",  # a launch writes records, it reads none
    "expyrun.runs",
    "expyrun.reproduce",
)


def _imported(stderr: str) -> set[str]:
    """Module names from `-X importtime` lines: `import time: self | cumulative | name`."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }


def test_a_no_op_launch_loads_only_what_it_needs(project: Project) -> None:
    project.write("pkg/__init__.py", "")
    project.write("pkg/main.py", "def main(name, config):\n    pass\n")
    config = project.config("pkg.main:main")

    result = run(
        [config], cwd=project.root, command=[sys.executable, "-X", "importtime", "-m", "expyrun"]
    )

    assert result.code == 0, result.describe()
    loaded = _imported(result.stderr)
    assert {"expyrun.cli", "expyrun.launch", "expyrun.run.supervisor"} <= loaded  # it measures
    unexpected = sorted(
        name
        for name in loaded
        if any(name == banned or name.startswith(banned + ".") for banned in NOT_ON_THE_LAUNCH_PATH)
    )
    assert not unexpected, f"a no-op launch imports {unexpected}"


def test_help_and_run_commands_load_argparse_only_when_asked(project: Project) -> None:
    """The measure sees what it must: `ls` does load argparse (the check is not blind)."""
    project.root.mkdir(exist_ok=True)
    result = run(
        ["ls"], cwd=project.root, command=[sys.executable, "-X", "importtime", "-m", "expyrun"]
    )
    assert result.code == 0, result.describe()
    assert "argparse" in _imported(result.stderr)


def test_a_run_stopped_after_its_install_changed_still_gets_its_final_record(
    project: Project, tmp_path: Path
) -> None:
    """What a run's end needs is loaded while the run runs, not days later at its end.

    A long run outlives changes to the expyrun it was started from (`pip install -U`, a `git
    checkout` of an editable install): a module first imported at the run's end may be gone
    or another version by then. Here run/record_check.py, which the end of a stopped run reads
    the record with, disappears while the run runs; the stop must still end in a final record,
    not exit 70 with run.json left `running`.
    """
    install = tmp_path / "install"
    shutil.copytree(
        Path(expyrun.__file__).parent,
        install / "expyrun",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    project.write("pkg/__init__.py", "")
    project.write(
        "pkg/main.py",
        "import time\n\n\ndef main(name, config):\n"
        "    open('ready', 'w').close()\n    time.sleep(60)\n",
    )
    config = project.config("pkg.main:main")
    process = start([config], cwd=project.root, env={"PYTHONPATH": str(install)})
    run_dir = project.output / "exp" / "exp.0"
    try:
        wait_for(lambda: (run_dir / "ready").exists(), 60, "the entry to run")
        (install / "expyrun" / "run" / "record_check.py").unlink()
        shutil.rmtree(install / "expyrun" / "run" / "__pycache__", ignore_errors=True)
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
    assert "internal error" not in err.decode(), err.decode()
    assert process.returncode == 128 + signal.SIGTERM, err.decode()
    assert read_json(run_dir / "run.json")["status"] == "killed"
