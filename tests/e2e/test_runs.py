"""Background runs and run management through the real CLI: --detach, ls, logs, status, stop."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import termios
from pathlib import Path

import pytest
from support import (
    EXPYRUN,
    Project,
    child_env,
    process_alive,
    read_json,
    run,
    session_processes,
    start,
    wait_for,
)

# An entry that prints, says it is ready, then waits for a `go` file in its run folder.
WAITING_ENTRY = """
for name in config.get("ignore", []):
    signal.signal(getattr(signal, name), lambda signum, frame: print("ignoring", signum))
print("started", flush=True)
open("ready", "w").close()
deadline = time.monotonic() + 120
while not os.path.exists("go") and time.monotonic() < deadline:
    time.sleep(0.01)
print("finishing")
sys.exit(config.get("code", 0))
"""


def _detached(project: Project, *args: str, **extra: object) -> Path:
    entry = project.entry(WAITING_ENTRY)
    result = run([project.config(entry, extra=extra), "--detach", *args], cwd=project.root)
    assert result.code == 0, result.describe()
    run_dir = Path(result.stdout.splitlines()[-1])
    assert run_dir == project.output / "exp" / "exp.0"
    wait_for(lambda: (run_dir / "ready").exists(), 20, "the detached entry to start")
    return run_dir


def _status(run_dir: Path) -> str:
    return read_json(run_dir / "run.json")["status"]


def test_detach_returns_while_the_run_goes_on_and_records_it_fully(project: Project) -> None:
    run_dir = _detached(project)  # returned while the entry waits for `go`
    assert _status(run_dir) == "running"
    (run_dir / "go").touch()
    wait_for(lambda: _status(run_dir) == "succeeded", 20, "the detached run to succeed")
    assert (run_dir / "outputs.log").read_text() == "started\nfinishing\n"
    record = read_json(run_dir / "run.json")
    assert record["exit_code"] == 0
    assert {"config.yml", "raw_config.yml", "frozen_requirements.txt", "pkg"} <= {
        p.name for p in run_dir.iterdir()
    }


def test_a_config_error_with_detach_fails_at_once(project: Project) -> None:
    entry = project.entry("pass")
    config = project.config(entry, extra={"a": 1})
    result = run([config, "--detach", "--nope", "2"], cwd=project.root)
    assert result.code == 2
    assert not project.output.exists()


def test_a_detached_run_outlives_the_shell_that_started_it(project: Project) -> None:
    entry = project.entry(WAITING_ENTRY)
    config = project.config(entry)
    command = " ".join([*EXPYRUN, str(config), "--detach"])
    shell = subprocess.run(
        ["bash", "-c", f"{command} > started.txt 2>&1; exit 0"],
        cwd=project.root,
        env=child_env(),
        timeout=60,
    )
    assert shell.returncode == 0
    run_dir = Path((project.root / "started.txt").read_text().splitlines()[-1])
    wait_for(lambda: (run_dir / "ready").exists(), 20, "the entry to start")
    (run_dir / "go").touch()
    wait_for(lambda: _status(run_dir) == "succeeded", 20, "the run to finish after its shell")


def test_a_detached_run_survives_its_terminal_closing(project: Project) -> None:
    """Start it from an interactive shell on a terminal, then hang the terminal up."""
    entry = project.entry(WAITING_ENTRY)
    config = project.config(entry)
    master, slave = os.openpty()

    def own_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    shell = start(
        [],
        cwd=project.root,
        command=["bash", "--norc", "-i"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        preexec_fn=own_terminal,
    )
    os.close(slave)
    os.write(master, (" ".join([*EXPYRUN, str(config), "--detach"]) + "\n").encode())
    run_dir = project.output / "exp" / "exp.0"
    wait_for(lambda: (run_dir / "ready").exists(), 30, "the detached entry to start")
    os.close(master)  # the terminal goes away: SIGHUP to its session
    shell.wait(10)
    pid = read_json(run_dir / "run.json")["pid"]
    assert process_alive(pid)
    (run_dir / "go").touch()
    wait_for(lambda: _status(run_dir) == "succeeded", 20, "the run to finish after the hangup")


def test_logs_follow_ends_with_the_run_and_its_exit_code(project: Project) -> None:
    run_dir = _detached(project, code=3)
    follower = start(["logs", "-f", run_dir], cwd=project.root)
    (run_dir / "go").touch()
    out, err = follower.communicate(timeout=30)
    assert follower.returncode == 3, err.decode()
    assert out == (run_dir / "outputs.log").read_bytes() == b"started\nfinishing\n"
    plain = run(["logs", run_dir], cwd=project.root)
    assert plain.code == 0
    assert plain.stdout == "started\nfinishing\n"


def test_stop_forwards_waits_the_grace_then_kills_and_leaves_nothing(project: Project) -> None:
    run_dir = _detached(project, "--grace", "1", ignore=["SIGTERM"])
    result = run(["stop", run_dir], cwd=project.root)
    assert result.code == 0, result.describe()
    record = read_json(run_dir / "run.json")
    assert (record["status"], record["signal"], record["killed_after_grace"]) == (
        "killed",
        "SIGTERM",
        True,
    )
    assert "stopped: killed" in result.stderr
    wait_for(lambda: not session_processes(), 10, "the run's processes to end")
    again = run(["stop", run_dir], cwd=project.root)
    assert again.code == 0
    assert "already ended (killed)" in again.stderr


def test_stop_kill_skips_the_grace(project: Project) -> None:
    run_dir = _detached(project, "--grace", "600", ignore=["SIGTERM"])
    result = run(["stop", run_dir, "--kill"], cwd=project.root, timeout=60)
    assert result.code == 0, result.describe()
    assert _status(run_dir) == "killed"


def test_stop_lets_an_entry_that_handles_sigterm_finish(project: Project) -> None:
    entry = project.entry(
        """
        def finish(signum, frame):
            print("checkpoint saved")
            sys.exit(0)
        signal.signal(signal.SIGTERM, finish)
        open("ready", "w").close()
        time.sleep(120)
        """
    )
    result = run([project.config(entry), "--detach"], cwd=project.root)
    run_dir = Path(result.stdout.splitlines()[-1])
    wait_for(lambda: (run_dir / "ready").exists(), 20, "the entry to start")
    assert run(["stop", run_dir], cwd=project.root).code == 0
    record = read_json(run_dir / "run.json")
    assert (record["status"], record["signal"], record["exit_code"]) == ("stopped", "SIGTERM", 0)
    assert record["stop_request"]["by"] == "expyrun stop"
    assert (run_dir / "outputs.log").read_text() == "checkpoint saved\n"


def test_ls_shows_lost_for_a_run_whose_supervisor_was_killed(project: Project) -> None:
    entry = project.entry('open("ready", "w").close()\ntime.sleep(120)')
    process = start([project.config(entry)], cwd=project.root)
    run_dir = project.output / "exp" / "exp.0"
    wait_for(lambda: (run_dir / "ready").exists(), 20, "the entry to start")
    process.kill()
    process.communicate()
    wait_for(lambda: not session_processes(), 10, "the run to die with its supervisor")
    listing = run(["ls", project.output], cwd=project.root)
    assert listing.code == 0
    assert listing.stdout.splitlines()[1].split()[:2] == ["outputs/exp/exp.0", "lost"]
    status = run(["status", run_dir], cwd=project.root)
    assert status.code == 1
    assert "status     lost" in status.stdout


def test_ls_lists_newest_first_filters_and_speaks_json(project: Project) -> None:
    ok = project.entry("sys.exit(config['code'])")
    config = project.config(ok, name="group/{code}", extra={"code": 0})
    for args in (["--code", "0"], ["--code", "5"], ["--code", "0", "--debug"]):
        run([config, *args], cwd=project.root)
    listing = run(["ls"], cwd=project.output)
    rows = [line.split() for line in listing.stdout.splitlines()]
    assert rows[0][:3] == ["RUN", "STATUS", "STARTED"]
    assert [row[0] for row in rows[1:]] == [
        "DEBUG/group/0/exp.0",
        "group/5/exp.0",
        "group/0/exp.0",
    ]
    data = json.loads(run(["ls", project.output, "--json"], cwd=project.root).stdout)
    assert [(d["name"], d["status"], d["exit_code"]) for d in data] == [
        ("group/0", "succeeded", 0),
        ("group/5", "failed", 5),
        ("group/0", "succeeded", 0),
    ]
    failed = json.loads(
        run(["ls", project.output, "--json", "--status", "failed"], cwd=project.root).stdout
    )
    assert [d["run_dir"] for d in failed] == [str(project.output / "group" / "5" / "exp.0")]


@pytest.mark.parametrize(("code", "expected"), [(0, 0), (4, 4)])
def test_status_exit_code_follows_the_run(project: Project, code: int, expected: int) -> None:
    entry = project.entry("sys.exit(config['code'])")
    result = run([project.config(entry, extra={"code": code})], cwd=project.root)
    status = run(["status", result.run_dir, "--json"], cwd=project.root)
    assert status.code == expected
    assert json.loads(status.stdout)["exit_code"] == code


def test_management_commands_explain_bad_input(project: Project) -> None:
    for args, message in [
        (["status", project.root], "not a run folder"),
        (["logs"], "expyrun logs"),
        (["ls", project.root / "missing"], "no such folder"),
        (["stop", project.root, "--bogus"], "unrecognized arguments"),
    ]:
        result = run(args, cwd=project.root)
        assert result.code == 2, result.describe()
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.stderr


def test_a_config_file_named_like_a_command_is_still_a_config(project: Project) -> None:
    entry = project.entry('print("ran the config named ls")')
    project.config(entry, path="ls")
    result = run(["ls"], cwd=project.root)
    assert result.code == 0, result.describe()
    assert result.log == b"ran the config named ls\n"


def test_help_shows_both_forms(project: Project) -> None:
    text = run(["--help"], cwd=project.root).stdout
    assert "expyrun CONFIG" in text
    assert "expyrun ls [PATH ...]" in text
    assert run(["ls", "--help"], cwd=project.root).stdout.startswith("usage: expyrun ls")


def test_signal_names_are_not_left_pending(project: Project) -> None:
    """The supervisor of a finished detached run is gone: nothing keeps running."""
    run_dir = _detached(project)
    pid = read_json(run_dir / "run.json")["pid"]
    (run_dir / "go").touch()
    wait_for(lambda: not process_alive(pid), 20, "the background supervisor to exit")
    assert signal.SIGTERM  # the run ended by itself


def test_a_detached_run_survives_sighup_to_its_former_process_group(project: Project) -> None:
    entry = project.entry(WAITING_ENTRY)
    config = project.config(entry)
    command = " ".join([*EXPYRUN, str(config), "--detach"])
    shell = start(  # a group leader: bash, which starts the run, then waits
        [], cwd=project.root, command=["bash", "-c", f"{command} && exec sleep 60"]
    )
    run_dir = project.output / "exp" / "exp.0"
    wait_for(lambda: (run_dir / "ready").exists(), 30, "the detached entry to start")
    os.killpg(shell.pid, signal.SIGHUP)
    shell.communicate(timeout=10)
    assert shell.returncode == -signal.SIGHUP
    assert process_alive(read_json(run_dir / "run.json")["pid"])
    (run_dir / "go").touch()
    wait_for(lambda: _status(run_dir) == "succeeded", 20, "the run to finish after the SIGHUP")
