"""Sweeps and signals through the real CLI: Ctrl-C, SIGTERM, --detach and `expyrun stop ID`."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support import Project, read_json, run, start, start_in_terminal, wait_for

# Says it is ready (a file in its run folder, its cwd), then waits for a `go` file.
WAITING_ENTRY = """
open("ready", "w").close()
deadline = time.monotonic() + 120
while not os.path.exists("go") and time.monotonic() < deadline:
    time.sleep(0.01)
"""


def _config(project: Project) -> Path:
    entry = project.entry(WAITING_ENTRY)
    return project.config(entry, name="s{seed}", extra={"seed": 0})


def _ready(project: Project) -> list[Path]:
    return sorted(path.parent for path in project.output.glob("*/exp.*/ready"))


def _sweep_record(project: Project) -> dict[str, object]:
    (folder,) = (project.output / ".sweeps").iterdir()
    return read_json(folder / "sweep.json")


def _check_interrupted(project: Project, signal_name: str) -> None:
    """Two members were stopped the usual way, two never started: the records say so."""
    folders = sorted(project.output.glob("*/exp.*"))
    assert len(folders) == 2
    for folder in folders:
        record = read_json(folder / "run.json")
        assert record["status"] == "killed"
        assert record["signal"] == signal_name
    recorded = _sweep_record(project)
    assert recorded["state"] == "interrupted"
    assert recorded["summary"] == {"killed": 2}


def test_ctrl_c_stops_the_running_members_and_starts_no_more(project: Project) -> None:
    config = _config(project)
    process, terminal = start_in_terminal(
        [config, "--sweep", "seed", "range(0, 4)", "--parallel", "2"], cwd=project.root
    )
    try:
        wait_for(lambda: len(_ready(project)) == 2, 30, "two members to start")
        os.write(terminal, b"\x03")
        assert process.wait(timeout=60) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(terminal)
    _check_interrupted(project, "SIGINT")


def test_sigterm_stops_the_sweep_with_honest_records(project: Project) -> None:
    config = _config(project)
    process = start([config, "--sweep", "seed", "range(0, 4)", "--parallel", "2"], project.root)
    try:
        wait_for(lambda: len(_ready(project)) == 2, 30, "two members to start")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + signal.SIGTERM, err.decode()
    text = err.decode()
    assert "SIGTERM: starting no more members (2 not started); stopping 2 running" in text
    _check_interrupted(project, "SIGTERM")


def test_detach_then_stop_by_sweep_id(project: Project) -> None:
    config = _config(project)
    result = run(
        [config, "--sweep", "seed", "range(0, 4)", "--parallel", "2", "--detach"], project.root
    )
    assert result.code == 0, result.describe()
    sweep_id = result.stdout.splitlines()[-1]
    assert f"sweep {sweep_id} started in the background" in result.stderr
    wait_for(lambda: len(_ready(project)) == 2, 30, "two members to start")
    listed = run(["ls", "--sweep", sweep_id], cwd=project.root)
    statuses = [line.split()[2] for line in listed.stdout.splitlines()[1:]]
    assert statuses.count("running") == 2, listed.describe()
    stopped = run(["stop", sweep_id], cwd=project.root)
    assert stopped.code == 0, stopped.describe()
    assert f"stopped: sweep {sweep_id} interrupted (2 killed)" in stopped.stderr
    _check_interrupted(project, "SIGTERM")
    # Resume: the killed and the never-started members run again, in new run folders.
    for folder in _ready(project):
        (folder / "go").touch()  # the old folders are not reused: this does not matter
    resumed_process = start(["sweep", "resume", sweep_id], project.root)
    try:
        wait_for(lambda: len(_ready(project)) >= 3, 30, "a resumed member to start")
        for name in ("s0", "s1", "s2", "s3"):
            for folder in (project.output / name).glob("exp.*"):
                (folder / "go").touch()

        def all_started() -> bool:
            for folder in _ready(project):
                (folder / "go").touch()
            return len(_ready(project)) == 6

        wait_for(all_started, 60, "every member to run")
        _, err = resumed_process.communicate(timeout=60)
    finally:
        if resumed_process.poll() is None:
            resumed_process.kill()
            resumed_process.wait()
    assert resumed_process.returncode == 0, err.decode()
    assert f"resuming sweep {sweep_id}: 0 done, 2 to rerun, 2 new" in err.decode()
    assert len(list((project.output / "s0").glob("exp.*"))) == 2


def test_a_failure_is_printed_while_other_members_still_run(project: Project) -> None:
    entry = project.entry(
        """
        if config["fail"]:
            raise RuntimeError("diverged")
        open("ready", "w").close()
        deadline = time.monotonic() + 120
        while not os.path.exists("go") and time.monotonic() < deadline:
            time.sleep(0.01)
        """
    )
    config = project.config(entry, name="m{fail}", extra={"fail": False})
    process = start([config, "--sweep", "fail", "false,true", "--parallel", "2"], project.root)
    try:
        assert process.stderr is not None
        seen = []
        for raw in process.stderr:
            seen.append(raw.decode())
            if "[2/2] failed" in seen[-1]:
                break
        assert "(exit 1" in seen[-1], seen
        wait_for(lambda: _ready(project), 30, "the other member to run on")
        running = read_json(project.output / "mFalse" / "exp.0" / "run.json")["status"]
        assert running == "running"  # it waits for `go`: the failure was printed before its end
        assert not any("[1/2]" in line for line in seen)
        (project.output / "mFalse" / "exp.0" / "go").touch()
        assert process.wait(timeout=60) == 1
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_member_that_cannot_be_recorded_fails_and_the_sweep_goes_on(project: Project) -> None:
    def break_the_record() -> None:
        (folder,) = (project.output / ".sweeps").iterdir()
        (folder / "members.jsonl").unlink()
        (folder / "members.jsonl").mkdir()  # the third member cannot be noted in the record

    args = [_config(project), "--sweep", "seed", "range(0, 3)", "--parallel", "2"]
    code, text = _let_run(project, args, 2, before_go=break_the_record)
    assert code == 1, text
    assert "[3/3] could not be prepared: " in text
    assert "cannot write the sweep record" in text
    assert text.count("succeeded in") == 2


def test_a_killed_sweep_leaves_its_members_supervised_and_resumes_the_rest(
    project: Project,
) -> None:
    config = _config(project)
    args = [config, "--sweep", "seed", "range(0, 3)", "--parallel", "2"]
    process = start(args, project.root)
    try:
        wait_for(lambda: len(_ready(project)) == 2, 30, "two members to start")
        process.kill()  # SIGKILL to the sweep alone: each member has its own supervisor
        process.wait(timeout=30)
        sweep_id = str(_sweep_record(project)["id"])
        listed = run(["ls", "--sweep", sweep_id], cwd=project.root)
        assert f"sweep {sweep_id} (lost)" in listed.stderr
        statuses = [line.split()[2] for line in listed.stdout.splitlines()[1:]]
        assert statuses == ["running", "running", "not"], listed.describe()
        for folder in _ready(project):
            (folder / "go").touch()
        wait_for(
            lambda: all(
                read_json(f / "run.json")["status"] == "succeeded" for f in _ready(project)
            ),
            30,
            "the orphaned members to succeed",
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    code, err = _let_run(project, args, 3)
    assert code == 0, err
    assert f"resuming sweep {sweep_id}: 2 done, 0 to rerun, 1 new" in err


# A stand-in for git, first on PATH with GIT_DIR set (so the code copy asks it which paths
# are ignored): `ls-files`, asked while a member's run folder is prepared, says `waiting` and
# waits for `open` while the gate holds `block`; anything else fails as outside a repository.
GATED_GIT = """#!/bin/sh
for arg in "$@"; do
  if [ "$arg" = ls-files ]; then
    if [ -e "$GATE/block" ]; then
      : > "$GATE/waiting"
      while [ ! -e "$GATE/open" ]; do sleep 0.01; done
    fi
    exit 0
  fi
done
exit 128
"""


def _gated_git(project: Project) -> tuple[Path, dict[str, str]]:
    """The gate folder, and the environment that makes preparing a member wait on it."""
    gate = project.root / "gate"
    tools = project.root / "tools"
    gate.mkdir(parents=True)
    tools.mkdir()
    git = tools / "git"
    git.write_text(GATED_GIT)
    git.chmod(0o755)
    env = {
        "PATH": f"{tools}{os.pathsep}{os.environ.get('PATH', '')}",
        "GIT_DIR": str(project.root / "no-repository"),
        "GATE": str(gate),
    }
    return gate, env


def _pending_signals(pid: int) -> int:
    """The signals sent to process `pid` and not yet delivered to any of its threads."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("ShdPnd:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no ShdPnd line for pid {pid}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_member_being_prepared_when_the_stop_signal_comes_never_starts(
    project: Project, signum: signal.Signals
) -> None:
    """The signal comes while the fourth member's run folder is prepared (between events).

    The sweep used to take it only after starting that member (and any other free slot):
    a member started after the stop, then stopped at once and recorded killed. While both
    slots are busy, the next member is prepared ahead: the third, before the gate blocks;
    once it has started in the first member's slot, the fourth, held at the gate.
    """
    config = _config(project)
    gate, env = _gated_git(project)
    args = [config, "--sweep", "seed", "range(0, 4)", "--parallel", "2"]
    process = start(args, project.root, env=env)
    try:
        wait_for(lambda: len(_ready(project)) == 2, 30, "two members to start")
        third = project.output / "s2" / "exp.0" / "run.json"
        wait_for(third.exists, 30, "the third member to be prepared ahead")
        (gate / "block").touch()
        (project.output / "s0" / "exp.0" / "go").touch()  # its slot goes to the third member
        wait_for((gate / "waiting").exists, 30, "the fourth member to be prepared")
        wait_for(lambda: len(_ready(project)) == 3, 30, "the third member to start")
        process.send_signal(signum)
        wait_for(
            lambda: not _pending_signals(process.pid) & (1 << (signum - 1)),
            30,
            "the signal to reach the sweep",
        )
        (gate / "open").touch()
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = err.decode()
    assert process.returncode == 128 + signum, text
    name = signal.Signals(signum).name
    assert f"{name}: starting no more members (1 not started); stopping 2 running" in text
    assert "1 succeeded, 2 did not, 0 skipped (done or running), 1 not started" in text
    # Only the three members started before the signal have a run folder; nothing else ran.
    assert sorted(p.relative_to(project.output) for p in _ready(project)) == [
        Path("s0/exp.0"),
        Path("s1/exp.0"),
        Path("s2/exp.0"),
    ]
    assert sorted(p.name for p in project.output.iterdir()) == [".sweeps", "s0", "s1", "s2"]
    assert read_json(project.output / "s0/exp.0/run.json")["status"] == "succeeded"
    for stopped in ("s1", "s2"):
        killed = read_json(project.output / stopped / "exp.0" / "run.json")
        assert (killed["status"], killed["signal"]) == ("killed", name)
    recorded = _sweep_record(project)
    assert recorded["state"] == "interrupted"
    assert recorded["summary"] == {"succeeded": 1, "killed": 2}
    members = recorded["members"]
    assert isinstance(members, list)
    assert [(m["status"], m["run_dir"] is None) for m in members] == [
        ("succeeded", False),
        ("killed", False),
        ("killed", False),
        ("not started", True),
    ]
    (folder,) = (project.output / ".sweeps").iterdir()
    assert len((folder / "members.jsonl").read_text().splitlines()) == 3
    listed = run(["ls", "--sweep", str(recorded["id"])], cwd=project.root)
    statuses = [line.split()[2] for line in listed.stdout.splitlines()[1:]]
    assert statuses == ["succeeded", "killed", "killed", "not"], listed.describe()


# Imported at the start of every interpreter the sweep starts (PYTHONPATH): a member's
# supervisor (`expyrun _supervise`) says `waiting` and waits for `open` while the gate holds
# `block`, before expyrun is even imported (a supervisor starting on a loaded machine).
GATED_START = """
import os, sys, time
gate = os.environ.get("GATE")
if gate and "_supervise" in sys.argv and os.path.exists(os.path.join(gate, "block")):
    open(os.path.join(gate, "waiting"), "w").close()
    while not os.path.exists(os.path.join(gate, "open")):
        time.sleep(0.01)
"""


def test_a_member_stopped_while_its_supervisor_starts_is_recorded_killed(
    project: Project,
) -> None:
    """Its supervisor dies of the forwarded SIGTERM before it can record anything.

    The member's run.json said `prepared` for ever and the sweep called it `lost`; it was
    killed before its entry point started, as a run stopped that early records itself.
    """
    config = _config(project)
    gate = project.root / "gate"
    gate.mkdir()
    project.write("startup/sitecustomize.py", GATED_START)
    env = {"GATE": str(gate), "PYTHONPATH": str(project.root / "startup")}
    args = [config, "--sweep", "seed", "range(0, 4)", "--parallel", "2"]
    process = start(args, project.root, env=env)
    try:
        wait_for(lambda: len(_ready(project)) == 2, 30, "two members to start")
        (gate / "block").touch()
        (project.output / "s0" / "exp.0" / "go").touch()  # its slot goes to the third member
        wait_for((gate / "waiting").exists, 30, "the third member's supervisor to start")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        (gate / "open").touch()
        if process.poll() is None:
            process.kill()
            process.wait()
    text = err.decode()
    assert process.returncode == 128 + signal.SIGTERM, text
    assert "SIGTERM: starting no more members (1 not started); stopping 2 running" in text
    third = read_json(project.output / "s2/exp.0/run.json")
    assert third["status"] == "killed", third
    assert third["signal"] == "SIGTERM"
    assert third["error"] == "SIGTERM before the entry point started"
    assert not (project.output / "s2/exp.0/ready").exists()
    assert "[3/4] killed in " in text
    recorded = _sweep_record(project)
    assert recorded["summary"] == {"succeeded": 1, "killed": 2}


# Says it is ready, waits for `go`, then fails if its seed is 0.
FAILING_FIRST_ENTRY = (
    WAITING_ENTRY
    + """
if config["seed"] == 0:
    raise SystemExit(1)
"""
)


def test_a_member_prepared_ahead_is_removed_when_no_more_members_start(project: Project) -> None:
    """While both slots are busy, the third member is prepared ahead; --fail-fast then stops
    the sweep from starting it: its folder is removed (never left `prepared`), and the sweep
    records it as not started, as the fourth."""
    entry = project.entry(FAILING_FIRST_ENTRY)
    config = project.config(entry, name="s{seed}", extra={"seed": 0})
    args = [config, "--sweep", "seed", "range(0, 4)", "--parallel", "2", "--fail-fast"]
    process = start(args, project.root)
    try:
        wait_for(lambda: len(_ready(project)) == 2, 30, "two members to start")
        third = project.output / "s2" / "exp.0" / "run.json"
        wait_for(third.exists, 30, "the third member to be prepared ahead")
        assert read_json(third)["status"] == "prepared"
        (project.output / "s0" / "exp.0" / "go").touch()  # fails: no more members start
        wait_for(lambda: not third.exists(), 30, "the third member's folder to go")
        (project.output / "s1" / "exp.0" / "go").touch()
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = err.decode()
    assert process.returncode == 1, text
    assert "1 failed: starting no more members" in text
    assert sorted(p.name for p in project.output.iterdir()) == [".sweeps", "s0", "s1"]
    recorded = _sweep_record(project)
    members = recorded["members"]
    assert isinstance(members, list)
    assert [m["status"] for m in members] == ["failed", "succeeded", "not started", "not started"]
    (folder,) = (project.output / ".sweeps").iterdir()
    assert len((folder / "members.jsonl").read_text().splitlines()) == 2


def _let_run(
    project: Project,
    args: list[str | Path],
    members: int,
    before_go: Callable[[], None] | None = None,
) -> tuple[int, str]:
    """Run `expyrun ARGS` until `members` members are ready in all (then `before_go`), let
    them all end; its exit code and stderr."""
    process = start(args, project.root)

    def ready() -> None:
        wait_for(lambda: len(_ready(project)) == members, 30, f"{members} members to start")
        if before_go is not None:
            before_go()

    return _let_end(process, project, ready)


def _let_end(
    process: subprocess.Popen[bytes], project: Project, first: Callable[[], None]
) -> tuple[int, str]:
    """`first`, then let every member ready to run end (`go`) and the sweep with them; its
    exit code and stderr. The sweep is killed if anything fails."""
    try:
        first()
        for folder in _ready(project):
            (folder / "go").touch()
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, err.decode()


def _start_with_a_member_prepared_ahead(project: Project) -> tuple[subprocess.Popen[bytes], Path]:
    """A sweep of two members, one at a time: the first runs (waiting for `go`), the second's
    folder is prepared ahead (`prepared`). The sweep process, and that folder."""
    config = _config(project)
    process = start([config, "--sweep", "seed", "range(0, 2)", "--parallel", "1"], project.root)

    def ahead() -> Path | None:
        for folder in project.output.glob("s1/exp.*"):
            if read_json(folder / "run.json")["status"] == "prepared":
                return folder
        return None

    try:
        wait_for(lambda: len(_ready(project)) == 1, 30, "the first member to start")
        return process, wait_for(ahead, 30, "the second member to be prepared ahead")
    except BaseException:
        process.kill()
        process.wait()
        raise


def test_a_member_prepared_ahead_and_removed_by_clean_is_prepared_again(project: Project) -> None:
    """The folder prepared ahead waits `prepared` while a member runs; once it is a minute old,
    `expyrun clean --status prepared` removes it. The member then gets a new folder (it was
    started in the removed one: an internal error, exit 70)."""
    process, prepared = _start_with_a_member_prepared_ahead(project)

    def clean_then_start_the_second() -> None:
        old = time.time() - 120  # as if the first member had run two minutes
        os.utime(prepared / "run.json", (old, old))
        cleaned = run(["clean", str(project.output), "--status", "prepared", "--yes"], project.root)
        assert cleaned.code == 0, cleaned.describe()
        (_ready(project)[0] / "go").touch()
        wait_for(lambda: len(_ready(project)) == 2, 30, "the second member to start")

    code, err = _let_end(process, project, clean_then_start_the_second)
    assert code == 0, err
    folders = sorted(project.output.glob("*/exp.*"))
    assert [read_json(folder / "run.json")["status"] for folder in folders] == ["succeeded"] * 2
    assert _sweep_record(project)["summary"] == {"succeeded": 2}


def test_a_resume_removes_the_member_a_killed_sweep_prepared_ahead(project: Project) -> None:
    """SIGKILLed while a member is prepared ahead, the sweep leaves that folder `prepared` and
    outside its record; `sweep resume` removes it (and runs the member in a folder of its own),
    so no folder says `prepared` for good."""
    process, _ = _start_with_a_member_prepared_ahead(project)
    try:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        sweep_id = str(_sweep_record(project)["id"])
        code, err = _let_run(project, ["sweep", "resume", sweep_id, str(project.output)], 2)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert code == 0, err
    assert "removed 1 run folder(s)" in err
    second = [read_json(f / "run.json")["status"] for f in project.output.glob("s1/exp.*")]
    assert second == ["succeeded"]
