"""The launch path stays lean: a no-op launch imports only what a run needs.

Read from `python -X importtime -m expyrun CONFIG` (one line per module the supervisor
imports, on stderr). The worker is started without -X, so its imports are not listed.
"""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path

import pytest
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
    "expyrun.run.tasks",  # a multi-task run's
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


@pytest.mark.parametrize("how", ["stopped", "ended"])
def test_a_run_whose_install_is_gone_still_gets_its_final_record(
    project: Project, tmp_path: Path, how: str
) -> None:
    """What a run's end needs is loaded while the run runs, not days later at its end.

    A long run outlives changes to the expyrun it was started from (`pip install -U`, a `git
    checkout` of an editable install): a module first imported at the run's end may be gone
    or another version by then. Here the whole package the supervisor was started from
    disappears while the run runs; the run's end, by a stop (SIGTERM) or by the entry
    returning, must still write the final record and the closing line, not exit 70 with
    run.json left `running`.
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
        "import os, time\n\n\ndef main(name, config):\n"
        "    open('ready', 'w').close()\n"
        "    while not os.path.exists('go'):\n        time.sleep(0.01)\n",
    )
    config = project.config("pkg.main:main")
    process = start([config], cwd=project.root, env={"PYTHONPATH": str(install)})
    run_dir = project.output / "exp" / "exp.0"
    try:
        wait_for(lambda: (run_dir / "ready").exists(), 60, "the entry to run")
        wait_for(lambda: read_json(run_dir / "run.json")["status"] == "running", 60, "running")
        shutil.rmtree(install)
        if how == "stopped":
            process.send_signal(signal.SIGTERM)
        else:
            (run_dir / "go").touch()
        _out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
    text = err.decode()
    assert "internal error" not in text, text
    assert "Traceback" not in text, text
    if how == "stopped":
        assert process.returncode == 128 + signal.SIGTERM, text
        assert read_json(run_dir / "run.json")["status"] == "killed"
        assert "expyrun: killed" in text, text
    else:
        assert process.returncode == 0, text
        assert read_json(run_dir / "run.json")["status"] == "succeeded"
        assert "expyrun: succeeded" in text, text
    # The recorder, which starts as the record says `running`, had what it imports too.
    assert "could not record the environment" not in text, text
    assert read_json(run_dir / "run.json")["requirements"] == "frozen_requirements.txt"
