"""Supervision with real signals and real processes: forwarding, grace, kill, parent death.

The entry points synchronise with the tests through files (a `ready` file once their handlers
are installed, a `signals` file where handlers append what they received), never through
fixed sleeps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support import (
    EXPYRUN,
    Project,
    kill_group,
    process_alive,
    read_json,
    session_processes,
    start,
    start_in_terminal,
    wait_for,
    worker_pid,
)

# An entry that records each signal it receives, says it is ready, and waits for `stop`.
RECORDING_ENTRY = """
def record(signum, frame):
    with open("signals", "a") as f:
        f.write(signal.Signals(signum).name + "\\n")
for name in config["handle"]:
    signal.signal(getattr(signal, name), record)
if config.get("grandchild"):
    child = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    open("grandchild.pid", "w").write(str(child.pid))
open("ready", "w").close()
deadline = time.monotonic() + 60
while not os.path.exists("stop") and time.monotonic() < deadline:
    time.sleep(0.01)
print("stopping")
"""


def _launch(project: Project, handle: list[str], *args: str, **extra: object):
    entry = project.entry(RECORDING_ENTRY)
    config = project.config(entry, extra={"handle": handle, **extra})
    process = start([config, *args], cwd=project.root)
    run_dir = project.output / "exp" / "exp.0"
    wait_for(lambda: (run_dir / "ready").exists(), 20, "the entry to install its handlers")
    return process, run_dir


def _signals(run_dir: Path) -> list[str]:
    path = run_dir / "signals"
    return path.read_text().split() if path.exists() else []


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2"])
def test_a_signal_sent_to_expyrun_reaches_the_entry_once(project: Project, name: str) -> None:
    process, run_dir = _launch(project, [name])
    process.send_signal(getattr(signal, name))
    wait_for(lambda: _signals(run_dir), 10, f"the entry's {name} handler")
    (run_dir / "stop").touch()
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err.decode()
    assert _signals(run_dir) == [name]
    record = read_json(run_dir / "run.json")
    # Exit 0 soon after a signal that asks a run to end: stopped, not succeeded (issue 14).
    asked = name in ("SIGINT", "SIGTERM", "SIGHUP")
    assert record["status"] == ("stopped" if asked else "succeeded")
    assert (record["stop_request"] or {}).get("signal") == (name if asked else None)
    if name in ("SIGINT", "SIGTERM"):
        assert record["signal"] == name  # the stop request is recorded
        assert f"received {name} (forwarded it" in err.decode()


def test_ctrl_c_in_a_terminal_reaches_the_entry_once(project: Project) -> None:
    """The terminal sends SIGINT to the whole foreground process group: no second copy."""
    entry = project.entry(RECORDING_ENTRY)
    config = project.config(entry, extra={"handle": ["SIGINT"]})
    process, master = start_in_terminal([config], cwd=project.root)
    screen = bytearray()
    reader = threading.Thread(target=_read_all, args=(master, screen), daemon=True)
    reader.start()
    run_dir = project.output / "exp" / "exp.0"
    try:
        wait_for(lambda: (run_dir / "ready").exists(), 20, "the entry to be ready")
        os.write(master, b"\x03")  # Ctrl-C, turned into SIGINT by the terminal
        wait_for(lambda: _signals(run_dir), 10, "the entry's SIGINT handler")
        (run_dir / "stop").touch()
        assert process.wait(30) == 0
    finally:
        process.kill()
        process.wait()
        reader.join(5)
        os.close(master)
    assert _signals(run_dir) == ["SIGINT"]
    assert b"the worker got it from the terminal" in screen


def _read_all(fd: int, into: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return
        if not chunk:
            return
        into.extend(chunk)


def test_after_the_grace_period_the_whole_tree_is_killed(project: Project) -> None:
    process, run_dir = _launch(project, ["SIGTERM"], "--grace", "1", grandchild=True)
    grandchild = int((run_dir / "grandchild.pid").read_text())
    assert process_alive(grandchild)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    elapsed = time.monotonic() - started
    assert process.returncode == 128 + signal.SIGTERM, err.decode()
    assert elapsed >= 1.0  # the grace period was given
    record = read_json(run_dir / "run.json")
    assert (record["status"], record["signal"], record["killed_after_grace"]) == (
        "killed",
        "SIGTERM",
        True,
    )
    wait_for(lambda: not process_alive(grandchild), 5, "the grandchild in its own session to die")
    assert _signals(run_dir) == ["SIGTERM"]
    assert "grace period over" in err.decode()


def test_a_second_ctrl_c_kills_at_once(project: Project) -> None:
    process, run_dir = _launch(project, ["SIGINT"], "--grace", "600")
    process.send_signal(signal.SIGINT)
    wait_for(lambda: _signals(run_dir), 10, "the first SIGINT to be handled")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=20)  # far below the 600 s grace
    assert process.returncode == 130, err.decode()
    record = read_json(run_dir / "run.json")
    assert (record["status"], record["signal"]) == ("killed", "SIGINT")
    assert "received SIGINT again" in err.decode()


def test_an_unhandled_sigterm_ends_the_run_and_keeps_its_output(project: Project) -> None:
    entry = project.entry(
        """
        print("buffered line, never flushed by the entry")
        open("ready", "w").close()
        time.sleep(60)
        """
    )
    process = start([project.config(entry)], cwd=project.root)
    run_dir = project.output / "exp" / "exp.0"
    wait_for(lambda: (run_dir / "ready").exists(), 20, "the entry to be ready")
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM
    assert (run_dir / "outputs.log").read_text() == "buffered line, never flushed by the entry\n"
    record = read_json(run_dir / "run.json")
    assert (record["status"], record["signal"]) == ("killed", "SIGTERM")
    assert record["killed_after_grace"] is False


def test_when_expyrun_is_killed_the_run_dies_and_its_output_is_kept(project: Project) -> None:
    entry = project.entry(
        """
        child = subprocess.Popen(["sleep", "1000"], start_new_session=True)
        open("grandchild.pid", "w").write(str(child.pid))
        for i in range(10**9):
            print(f"line {i}", flush=True)
            if i == 100:
                open("ready", "w").close()
            time.sleep(0.001)
        """
    )
    process = start([project.config(entry)], cwd=project.root)
    run_dir = project.output / "exp" / "exp.0"
    wait_for(lambda: (run_dir / "ready").exists(), 20, "the entry to be running")
    worker, grandchild = worker_pid(run_dir), int((run_dir / "grandchild.pid").read_text())
    process.kill()
    process.communicate()
    wait_for(lambda: not process_alive(worker), 5, "the worker to die after its supervisor")
    wait_for(lambda: not process_alive(grandchild), 5, "the grandchild to die")
    lines = (run_dir / "outputs.log").read_text().splitlines()
    assert lines == [f"line {i}" for i in range(len(lines))]
    assert len(lines) > 100
    assert read_json(run_dir / "run.json")["status"] == "running"  # stale: nobody recorded the end
    from expyrun.run.record import read_record, supervisor_alive

    assert supervisor_alive(read_record(run_dir)) is False


def test_a_flood_through_a_slow_terminal_loses_nothing(project: Project) -> None:
    entry = project.entry(
        """
        for i in range(200_000):
            print(f"{i:09d}")
        sys.stdout.flush()
        os.write(2, b"done\\n")
        """
    )
    process = start([project.config(entry)], cwd=project.root)
    received = bytearray()
    while True:
        chunk = process.stdout.read(4096)  # a slow reader: 4 KiB at a time, with pauses
        if not chunk:
            break
        received += chunk
        if len(received) % (256 * 1024) < 4096:
            time.sleep(0.01)
    process.communicate(timeout=60)
    assert process.returncode == 0
    expected = "".join(f"{i:09d}\n" for i in range(200_000)).encode()
    run_dir = project.output / "exp" / "exp.0"
    assert bytes(received) == expected
    assert (run_dir / "outputs.log").read_bytes() == expected + b"done\n"


def test_the_run_goes_on_when_expyrun_stdout_goes_away(project: Project) -> None:
    entry = project.entry(
        """
        for i in range(50_000):
            print(f"line {i}")
        """
    )
    process = start([project.config(entry)], cwd=project.root)
    process.stdout.read(10)
    process.stdout.close()  # like `| head -c 10`
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err.decode()
    run_dir = project.output / "exp" / "exp.0"
    assert (run_dir / "outputs.log").read_text() == "".join(f"line {i}\n" for i in range(50_000))
    assert read_json(run_dir / "run.json")["status"] == "succeeded"


def test_fifty_simultaneous_launches_get_fifty_folders(project: Project) -> None:
    entry = project.entry('print("launch", config["i"])')
    config = project.config(entry, extra={"i": -1})
    processes = [start([config, "--i", str(i)], cwd=project.root) for i in range(50)]
    results = [p.communicate(timeout=240) for p in processes]
    assert [p.returncode for p in processes] == [0] * 50, results
    folders = project.run_dirs()
    assert len(folders) == 50
    owners = sorted(int((f / "outputs.log").read_text().split()[1]) for f in folders)
    assert owners == list(range(50))
    for f in folders:
        assert (f / "outputs.log").read_text().count("\n") == 1  # only its own output


def test_files_are_created_with_the_users_umask(project: Project) -> None:
    entry = project.entry('open("result.txt", "w").write("x")')
    config = project.config(entry)
    process = subprocess.Popen(
        ["sh", "-c", f"umask 027 && exec {' '.join(_expyrun_argv(config))}"],
        cwd=project.root,
        env=__import__("support").child_env(),
    )
    assert process.wait(60) == 0
    run_dir = project.output / "exp" / "exp.0"
    for path in [run_dir, *run_dir.rglob("*")]:
        mode = path.stat().st_mode
        assert mode & 0o007 == 0, f"{path} is world-accessible: {oct(mode)}"


def _expyrun_argv(config: Path) -> list[str]:
    from support import EXPYRUN

    return [*EXPYRUN, str(config)]


def test_no_process_of_a_finished_run_is_left(project: Project) -> None:
    entry = project.entry(
        """
        subprocess.Popen(["sleep", "1000"], start_new_session=True)
        subprocess.Popen(["sh", "-c", "sleep 1000 & sleep 1000"])
        print("leaving children behind")
        """
    )
    process = start([project.config(entry)], cwd=project.root)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0
    assert "process(es) behind: terminating them" in err.decode()
    wait_for(lambda: not session_processes(), 10, "the leftover processes to be killed")


def test_a_hangup_of_expyruns_own_terminal_reaches_the_entry(project: Project) -> None:
    """`ssh -t host expyrun cfg.yml`: expyrun leads the session, the kernel's SIGHUP is its alone.

    Plain python in its place dies of the hangup; the entry gets it forwarded (once).
    """
    entry = project.entry(RECORDING_ENTRY)
    config = project.config(entry, extra={"handle": ["SIGHUP"]})
    process, master = start_in_terminal([config], cwd=project.root)
    # No reader thread: a read under way would keep the master open past os.close.
    run_dir = project.output / "exp" / "exp.0"
    try:
        wait_for(lambda: (run_dir / "ready").exists(), 20, "the entry to be ready")
        os.close(master)  # the terminal goes away: the kernel sends SIGHUP to its session leader
        master = -1
        wait_for(lambda: _signals(run_dir), 10, "the entry's SIGHUP handler")
        (run_dir / "stop").touch()
        assert process.wait(30) == 0
    finally:
        process.kill()
        process.wait()
        if master >= 0:
            os.close(master)
    assert _signals(run_dir) == ["SIGHUP"]


# An entry that saves a checkpoint (0.5 s) once SIGTERM asked it to stop, then returns.
CHECKPOINT_ON_SIGTERM = """
asked = []
signal.signal(signal.SIGTERM, lambda signum, frame: asked.append(signum))
open("ready", "w").close()
deadline = time.monotonic() + 60
while not asked and time.monotonic() < deadline:
    time.sleep(0.01)
time.sleep(0.5)  # saving a checkpoint
print("checkpoint saved", flush=True)
"""

# What GNU timeout does when its time is up (timeout.c, cleanup): SIGTERM to its child, then
# to its whole process group (itself ignoring it). argv: READY_FILE COMMAND...
TIMEOUT_LIKE = """
import os, signal, subprocess, sys, time

child = subprocess.Popen(sys.argv[2:])
deadline = time.monotonic() + 30
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.01)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
os.kill(child.pid, signal.SIGTERM)
time.sleep(0.001)  # the supervisor takes the first before the copy arrives
os.kill(0, signal.SIGTERM)
sys.exit(child.wait())
"""


def test_a_sigterm_sent_to_expyrun_and_its_group_at_once_is_one_request(project: Project) -> None:
    """`timeout 1h expyrun cfg.yml`: the copy sent to the group was taken as a second stop
    signal ("received SIGTERM again: killing the run's processes now"), and the checkpoint
    the entry saves within the grace was lost (1 run in 6 with GNU timeout, every run here)."""
    config = project.config(project.entry(CHECKPOINT_ON_SIGTERM))
    ready = project.output / "exp" / "exp.0" / "ready"
    command = [sys.executable, "-c", TIMEOUT_LIKE, str(ready), *EXPYRUN]
    process = start([config], cwd=project.root, command=command)
    try:
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            kill_group(process.pid)
            process.communicate()
    stderr = err.decode()
    assert "received SIGTERM again" not in stderr, stderr
    assert process.returncode == 0, stderr
    record = read_json(ready.parent / "run.json")
    assert (record["status"], record["signal"]) == ("stopped", "SIGTERM"), record
    assert b"checkpoint saved" in (ready.parent / "outputs.log").read_bytes()
