"""Ctrl-C, SIGINT, SIGTERM or SIGHUP at random moments of a `--nproc 3` launch (seeded).

Each round starts `expyrun CONFIG --nproc 3` (an entry of a second, so the signal lands in
the start-up, the preparation, the tasks' start or their run), waits 0-150 ms, sends the
signal (Ctrl-C: SIGINT to the whole process group, as a terminal does; the others to expyrun
alone) and checks: exit 128+N (a Python stopped in its own start-up, before expyrun exists,
dies of it or exits 1 and made nothing); no internal error, "Exception ignored", "Fatal
Python error" or traceback but the run's own Ctrl-C; run.json and its 3 tasks' entries
recorded ended (killed or stopped); no process left.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time

import pytest
from support import Project, kill_group, read_json, session_processes, start, wait_for
from test_stop_signal_stress import _output_problems

SEED = 20261130
ROUNDS = 32
BUDGET_SECONDS = 60.0
ENDED = {"killed", "stopped"}
ENTRY = """
time.sleep(1.0)
print("entry done", flush=True)
"""


def _round_problems(project: Project, signum: int, code: int, stderr: str) -> list[str]:
    made = sorted(project.output.glob("exp/exp.*")) if project.output.exists() else []
    problems = _output_problems(stderr)
    if code != 128 + signum:
        if made or code not in (-signum, 1) or "expyrun:" in stderr:
            problems.append(f"exit {code}")
        return problems  # Python's own start-up was stopped: it may say "Fatal Python error"
    if "Fatal Python error" in stderr:
        problems.append("Fatal Python error")
    for run_dir in made:
        record = read_json(run_dir / "run.json")
        if record["status"] not in ENDED:
            problems.append(f"run.json {record['status']}")
        tasks = record.get("tasks") or []
        if len(tasks) != 3:
            problems.append(f"{len(tasks)} task entries")
        problems += [f"task {t['rank']} {t['status']}" for t in tasks if t["status"] not in ENDED]
    return problems


@pytest.mark.timeout(180)
def test_stop_signals_at_random_moments_of_an_nproc_launch(project: Project) -> None:
    config = project.config(project.entry(ENTRY))
    rng = random.Random(SEED)
    failures = []
    deadline = time.monotonic() + BUDGET_SECONDS
    for round_number in range(ROUNDS):
        if time.monotonic() > deadline:
            break
        kind = rng.choice(["Ctrl-C", "SIGINT", "SIGTERM", "SIGHUP"])
        signum = signal.SIGINT if kind == "Ctrl-C" else signal.Signals[kind]
        delay = rng.uniform(0, 0.15)
        process = start([config, "--nproc", "3"], cwd=project.root)
        time.sleep(delay)  # the random moment under test, not a synchronisation
        try:
            if kind == "Ctrl-C":
                os.killpg(process.pid, signum)
            else:
                os.kill(process.pid, signum)
        except ProcessLookupError:
            pass
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            kill_group(process.pid)
            _, err = process.communicate()
            err += b"\n--- still running after 30 s ---"
        stderr = err.decode(errors="replace")
        problems = _round_problems(project, signum, process.returncode, stderr)
        try:
            wait_for(lambda: not session_processes(), 10, "the round's processes to end")
        except AssertionError:
            problems.append(f"processes left: {session_processes()}")
        if problems:
            failures.append(
                f"round {round_number} (seed {SEED}, {kind} after {delay * 1000:.0f} ms): "
                f"{problems}\n{stderr}"
            )
        shutil.rmtree(project.output, ignore_errors=True)
    assert not failures, "\n".join(failures)
