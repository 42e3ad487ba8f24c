"""expyrun starts with the garbage collector off and turns it back on where its start-up ends.

`python -m expyrun` and the `expyrun` command import `expyrun.__main__`, which turns the
collector off (~3 ms of a launch); `expyrun.started` freezes what start-up made and turns it
on: once the worker has its payload, or at once for a command that is not a launch. A
long-lived supervisor must never run for hours without it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import Project, child_env


def _python(code: str, cwd: Path) -> list[str]:
    """Run `code` in a new interpreter; its stdout's words (the test prints what it checks)."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_the_program_starts_with_the_collector_off(tmp_path: Path) -> None:
    code = "import gc, expyrun.__main__; print(gc.isenabled())"
    assert _python(code, tmp_path) == ["False"]


def test_a_launch_turns_it_on_with_the_start_up_frozen(project: Project) -> None:
    config = project.config(project.entry("print('ran')"))
    code = (
        "import gc, expyrun.__main__\n"
        "from expyrun.cli import main\n"
        f"code = main([{str(config)!r}])\n"
        "print(int(code), gc.isenabled(), gc.get_freeze_count() > 1000)\n"
    )
    assert _python(code, project.root)[-3:] == ["0", "True", "True"]


def test_a_command_over_runs_turns_it_on(project: Project) -> None:
    project.output.mkdir(parents=True)
    code = (
        "import gc, expyrun.__main__\n"
        "from expyrun.cli import main\n"
        f"code = main(['ls', {str(project.output)!r}])\n"
        "print(int(code), gc.isenabled())\n"
    )
    assert _python(code, project.root)[-2:] == ["0", "True"]


def test_started_freezes_once(tmp_path: Path) -> None:
    """A second call (a second run in one process) freezes nothing more: what later runs make
    stays collectable."""
    code = (
        "import gc, expyrun\n"
        "gc.disable()\n"
        "expyrun.started()\n"
        "frozen = gc.get_freeze_count()\n"
        "junk = [[] for _ in range(5000)]\n"
        "expyrun.started()\n"
        "print(gc.isenabled(), frozen > 0, gc.get_freeze_count() == frozen)\n"
    )
    assert _python(code, tmp_path) == ["True", "True", "True"]


def test_a_task_waiting_for_task_0s_folder_has_the_collector_on(project: Project) -> None:
    """`srun expyrun CONFIG`: a task other than 0 waits up to EXPYRUN_TASK_WAIT (600 s by
    default) for task 0's run folder before its launch goes on; it must not wait that long
    with the collector off. A thread samples it while the task waits (here, in vain)."""
    config = project.config(project.entry("pass"))
    step = {
        "SLURM_JOB_ID": "4242",
        "SLURM_STEP_ID": "0",
        "SLURM_STEP_NUM_TASKS": "2",
        "SLURM_PROCID": "1",
        "SLURM_STEP_NODELIST": "localhost",
        "SLURM_JOB_NODELIST": "localhost",
        "SLURM_STEP_TASKS_PER_NODE": "2",
        "EXPYRUN_TASK_WAIT": "2.5",
    }
    code = (
        "import gc, os, _thread, time, expyrun.__main__\n"
        f"os.environ.update({step!r})\n"
        "from expyrun.cli import main\n"
        "seen = []\n"
        "def sample():\n"
        "    while True:\n"
        "        seen.append(gc.isenabled())\n"
        "        time.sleep(0.05)\n"
        "_thread.start_new_thread(sample, ())\n"
        f"code = main([{str(config)!r}])\n"
        "print(int(code), seen[-5:].count(True))\n"
    )
    assert _python(code, project.root)[-2:] == ["2", "5"]


def test_importing_the_program_module_keeps_the_signal_mask(tmp_path: Path) -> None:
    """`import expyrun.__main__` blocked SIGINT, SIGTERM and SIGHUP for good when nothing called
    its console_main: a process importing it (a test, a documentation tool, then `cli.main` as
    a library) ignored Ctrl-C, and every program it started inherited the mask."""
    code = (
        "import signal, subprocess, expyrun.__main__\n"
        "print(sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])) == [])\n"
        "grep = subprocess.run(['grep', '^SigBlk', '/proc/self/status'], capture_output=True)\n"
        "print(int(grep.stdout.split()[1], 16))\n"
    )
    assert _python(code, tmp_path) == ["True", "0"]
