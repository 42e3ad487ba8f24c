"""Kill the supervisor or the worker at random moments; nothing survives, nothing is lost.

Each round starts a run whose entry starts a fork Pool and a double-forked daemon, writes
numbered lines from three sources (print, a raw os.write to fd 1, and a grandchild process in
its own session) and, after each line has left
its process, appends the line's number to a progress file. Then it kills, at a random moment
(seeded), the supervisor or the worker, with SIGKILL, or stops the run with SIGTERM. Afterwards
no process of the run may be alive, and outputs.log must hold, in order and exactly once,
every line whose number reached the progress file.
"""

from __future__ import annotations

import random
import re
import signal
import time
from pathlib import Path

import pytest
from support import Project, session_processes, start, wait_for, worker_pid

ENTRY = """
import multiprocessing
progress = os.open("progress", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
child = subprocess.Popen(
    [sys.executable, "-c", CHILD], start_new_session=True, stdout=None, stderr=None
)
# The patterns that escaped supervision before: fork children (multiprocessing's default,
# PyTorch DataLoader's) and a python-daemon style daemon (fork, setsid, fork, no exec).
pool = multiprocessing.get_context("fork").Pool(2)
pool.map_async(time.sleep, [600, 600])
if os.fork() == 0:
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    time.sleep(600)
    os._exit(0)
os.wait()
for i in range(10**9):
    if i % 2:
        print(f"main {i}", flush=True)
    else:
        os.write(1, f"main {i}\\n".encode())
    os.write(progress, f"main {i}\\n".encode())
    if i == 20:
        open("ready", "w").close()
    time.sleep(0.0005)
"""

CHILD = """
import os, time
progress = os.open("progress", os.O_WRONLY | os.O_APPEND)
for i in range(10**9):
    os.write(2, f"child {i}\\n".encode())
    os.write(progress, f"child {i}\\n".encode())
    time.sleep(0.001)
"""

ACTIONS = ["kill-supervisor", "kill-worker", "terminate-supervisor"]
LINE = re.compile(r"^(main|child) (\d+)$")


def _sequences(text: str) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {"main": [], "child": []}
    for line in text.splitlines():
        match = LINE.match(line)
        if match:
            found[match.group(1)].append(int(match.group(2)))
    return found


@pytest.mark.parametrize("seed", range(20))
def test_a_random_kill_leaves_no_process_and_loses_no_written_line(
    project: Project, seed: int
) -> None:
    rng = random.Random(seed)
    action = ACTIONS[seed % len(ACTIONS)]
    entry = project.entry(f"CHILD = {CHILD!r}\n" + ENTRY)
    # Half the rounds track the run with its cgroup (where this machine allows one), half
    # with the subreaper alone.
    tracking = "cgroup" if seed < 10 else "subreaper"
    process = start(
        [project.config(entry), "--grace", "1"],
        cwd=project.root,
        env={"EXPYRUN_TRACKING": tracking},
    )
    run_dir = project.output / "exp" / "exp.0"
    try:
        wait_for(lambda: (run_dir / "ready").exists(), 30, "the run to be writing")
        time.sleep(rng.uniform(0.0, 0.5))  # the random moment of the fault, not a synchronisation
        worker = worker_pid(run_dir)
        if action == "kill-supervisor":
            process.send_signal(signal.SIGKILL)
        elif action == "kill-worker":
            import os

            os.kill(worker, signal.SIGKILL)
        else:
            process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
        # The rescue is bounded (~7 s at worst: 2 s for the switchboard, 3 s of drain, 2 s for
        # the cgroup), which a loaded machine stretches.
        wait_for(lambda: not session_processes(), 30, f"every process of the run to end ({action})")
    finally:
        process.kill()
        process.communicate()
    _check_nothing_lost(run_dir)


def _check_nothing_lost(run_dir: Path) -> None:
    written = _sequences((run_dir / "progress").read_text())
    logged = _sequences((run_dir / "outputs.log").read_text())
    for source in ("main", "child"):
        count = len(written[source])
        assert written[source] == list(range(count))
        # Everything that was written is logged, once and in order; a line written just before
        # the kill may be logged without having reached the progress file.
        assert logged[source][:count] == list(range(count)), source
        assert logged[source] == list(range(len(logged[source]))), source
