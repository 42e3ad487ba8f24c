"""SIGTERM or SIGINT at random moments of a launch: always a truthful end (seeded).

Each round starts `expyrun CONFIG`, waits a random time within one launch's length (measured
first, so the signals cover start-up, preparation, the hand-over to the supervisor, the run
and its end on any machine), sends SIGTERM or SIGINT to expyrun alone, and checks:
- exit 128+N, or 0 for a run that ended first; a Python killed before expyrun's handlers
  exist (interpreter start-up) dies of the signal, and has created nothing;
- no internal error, no "Exception ignored", no traceback but the run's own Ctrl-C;
- no process of the run left;
- every run folder left has a record in a terminal state that tells the truth.
The random moments are seeded: a failure names its round, seed, signal and delay.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support import Project, kill_group, read_json, session_processes, start, wait_for

SEED = 20261129
ROUNDS = 60
BUDGET_SECONDS = 40.0
ENDED = {"succeeded", "failed", "killed", "stopped"}
ENTRY = """
time.sleep(0.03)
print("entry done", flush=True)
"""


def _launch_seconds(project: Project, config: Path) -> float:
    started = time.monotonic()
    process = start([config], cwd=project.root)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err.decode()
    shutil.rmtree(project.output)
    return time.monotonic() - started


def _tracebacks_are_the_runs_ctrl_c(stderr: str) -> bool:
    """Every traceback printed ends in KeyboardInterrupt: the entry's (or the worker's, as it
    starts it) Ctrl-C, as under plain python. A traceback ends at its exception's line, the
    first line after it that is not indented; a chained one ("During handling of the above
    exception") ends where its last link does."""
    header = "Traceback (most recent call last):"
    lines = stderr.splitlines()

    def skipped(text: str) -> bool:
        # expyrun's own messages share the stream: one may fall inside the worker's traceback;
        # so may the lines of another task's traceback (--nproc: tasks share the terminal).
        return not text or text[0] == " " or text.startswith("expyrun: ") or text == header

    for number, line in enumerate(lines):
        if line != header:
            continue
        rest = lines[number + 1 :]
        ending = next((text for text in rest if not skipped(text)), "")
        chained = rest[rest.index(ending) + 1 :] if ending in rest else []
        if chained[:2] == [
            "",
            "During handling of the above exception, another exception occurred:",
        ]:
            continue  # judged by its last link
        if not ending.startswith("KeyboardInterrupt"):
            return False
    return True


def _exit_problems(project: Project, signum: int, code: int, stderr: str) -> list[str]:
    """The exit code: 128+N (or 0: the run ended first). A Python stopped as it starts,
    before expyrun's handlers exist, dies of the signal (or exits 1 when the signal broke its
    own start-up: "Fatal Python error", "Could not import runpy module"); it created nothing."""
    if code in (0, 128 + signum):
        return []
    if code in (-signum, 1) and not project.output.exists() and "expyrun:" not in stderr:
        return []
    return [f"exit {code}"]


def _dropped_ctrl_c_only(stderr: str) -> bool:
    """Every "Exception ignored in:" is the run's own Ctrl-C, dropped as plain python drops it:
    a KeyboardInterrupt raised in a callback of the import system (the weakref callback of a
    module lock), in the worker as it imports the entry, with no frame of expyrun's code.
    expyrun's own supervisor never prints one (cli hides the interrupts it drops and acts on
    them); the run ends all the same, its record true (`stopped`, or killed after the grace).
    """
    lines = stderr.splitlines()
    for number, line in enumerate(lines):
        if not line.startswith("Exception ignored"):
            continue
        block = []
        for text in lines[number + 1 :]:
            if text.startswith("expyrun: "):
                continue
            block.append(text)
            if text and text[0] != " " and text != "Traceback (most recent call last):":
                break
        if not block or not block[-1].startswith("KeyboardInterrupt"):
            return False
        if "/expyrun/" in line or any("/expyrun/" in text for text in block):
            return False
    return True


def _output_problems(stderr: str) -> list[str]:
    problems = [f"printed {'internal error'!r}"] if "internal error" in stderr else []
    if "Exception ignored" in stderr and not _dropped_ctrl_c_only(stderr):
        problems.append(f"printed {'Exception ignored'!r}")
    if not _tracebacks_are_the_runs_ctrl_c(stderr):
        problems.append("a traceback")
    return problems


def _folder_problems(run_dir: Path, signum: int, code: int) -> list[str]:
    """A run folder left: a record in a terminal state that tells the truth."""
    if not (run_dir / "run.json").exists():
        return ["a run folder without a record"]
    record = read_json(run_dir / "run.json")
    log = run_dir / "outputs.log"
    done = log.exists() and "entry done" in log.read_text(errors="replace")
    problems = []
    if record["status"] not in ENDED:
        problems.append(f"left {record['status']}")
    if record["status"] == "succeeded" and (not done or code != 0):
        problems.append(f"succeeded, entry done {done}, exit {code}")
    if record["status"] == "killed" and code != 128 + signum:
        problems.append(f"killed, exit {code}")
    if (record.get("error") or "").endswith("before the entry point started") and done:
        problems.append("said not started, but the entry ran")
    return [f"{run_dir.name}: {problem}" for problem in problems]


def _check_round(project: Project, signum: int, code: int, stderr: str) -> list[str]:
    problems = _exit_problems(project, signum, code, stderr) + _output_problems(stderr)
    for run_dir in sorted(project.output.glob("exp/exp.*")):
        problems += _folder_problems(run_dir, signum, code)
    return problems


@pytest.mark.timeout(120)
def test_stop_signals_at_random_moments(project: Project) -> None:
    config = project.config(project.entry(ENTRY))
    launch = _launch_seconds(project, config)
    rng = random.Random(SEED)
    failures = []
    deadline = time.monotonic() + BUDGET_SECONDS
    for round_number in range(ROUNDS):
        if time.monotonic() > deadline:
            break
        signum = rng.choice([signal.SIGTERM, signal.SIGINT])
        delay = rng.uniform(0, launch * 1.1)
        process = start([config], cwd=project.root)
        time.sleep(delay)  # the random moment under test, not a synchronisation
        try:
            os.kill(process.pid, signum)
        except ProcessLookupError:
            pass
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            tree = subprocess.run(
                ["ps", "-o", "pid,ppid,pgid,stat,wchan:20,args", "-g", str(process.pid)],
                capture_output=True,
                text=True,
            ).stdout
            kill_group(process.pid)
            _, err = process.communicate()
            err += f"\n--- still running after 30 s ---\n{tree}".encode()
        stderr = err.decode(errors="replace")
        problems = _check_round(project, signum, process.returncode, stderr)
        try:
            wait_for(lambda: not session_processes(), 10, "the round's processes to end")
        except AssertionError:
            problems.append(f"processes left: {session_processes()}")
        if problems:
            name = signal.Signals(signum).name
            failures.append(
                f"round {round_number} (seed {SEED}, {name} after {delay * 1000:.0f} ms of "
                f"{launch * 1000:.0f}): {problems}\n{stderr}"
            )
        shutil.rmtree(project.output, ignore_errors=True)
    assert not failures, "\n".join(failures)
