"""Sweeps attacked through the real CLI: races between commands, repeated flags, bad values."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import psutil
from support import Project, read_json, run, start, wait_for


def _waits_on_a_lock(pid: int) -> bool:
    """Whether process `pid` is blocked on a file lock (a `->` line of /proc/locks)."""
    lines = Path("/proc/locks").read_text().splitlines()
    return any("->" in line and line.split()[5] == str(pid) for line in lines)


def _quick_config(project: Project) -> Path:
    entry = project.entry("return None")
    return project.config(entry, name="s{seed}", extra={"seed": 0})


def test_the_same_sweep_started_while_another_command_starts_it_runs_no_member_twice(
    project: Project,
) -> None:
    """A second identical command between the record's creation and its `running` state.

    The first command is held there (its background sweep supervisor stopped before it
    recorded the sweep running); the second must not run the members a second time.
    """
    config = _quick_config(project)
    args = [config, "--sweep", "seed", "0,1"]
    first = start([*args, "--detach"], project.root)
    second: subprocess.Popen[bytes] | None = None
    supervisor: psutil.Process | None = None
    try:
        parent = psutil.Process(first.pid)
        supervisor = wait_for(
            lambda: next(iter(parent.children()), None), 30, "the sweep supervisor", period=0.002
        )
        supervisor.send_signal(signal.SIGSTOP)
        (record,) = (project.output / ".sweeps").glob("*/sweep.json")
        assert read_json(record)["state"] == "prepared"
        second = start(args, project.root)
        waiting = second
        wait_for(
            lambda: waiting.poll() is not None or _waits_on_a_lock(waiting.pid),
            30,
            "the second command to end or wait",
        )
        # Two commands planning at once would both run every member (seen 1 time in 5 with
        # two plain foreground commands): the second waits until the first is running.
        assert second.poll() is None, second.communicate()[1].decode()
        assert not list(project.output.glob("*/exp.*"))
        supervisor.send_signal(signal.SIGCONT)
        _, err = first.communicate(timeout=60)
        assert first.returncode == 0, err.decode()
        _, err = second.communicate(timeout=60)
        wait_for(lambda: read_json(record)["state"] == "ended", 60, "the sweep to end")
    finally:
        if supervisor is not None and supervisor.is_running():
            supervisor.send_signal(signal.SIGCONT)
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    # The second command waited for the first to record its sweep running, then saw it
    # running (refused) or ended (nothing left to run): each member ran once.
    assert len(list(project.output.glob("*/exp.*"))) == 2, err.decode()
    assert len((record.parent / "members.jsonl").read_text().splitlines()) == 2


def _nothing_created(project: Project) -> bool:
    return not project.output.exists() or not any(project.output.iterdir())


def test_a_key_swept_twice_on_the_command_line_is_an_error(project: Project) -> None:
    """`--sweep seed 0,1 --sweep seed 2,3` silently ran 2 and 3 only (the first dropped)."""
    config = _quick_config(project)
    result = run([config, "--sweep", "seed", "0,1", "--sweep", "seed", "2,3"], project.root)
    assert result.code == 2, result.describe()
    assert result.stderr.count("\n") == 1, result.describe()
    assert "--sweep seed is given twice" in result.stderr
    assert _nothing_created(project)


def test_a_value_repeated_in_a_dimension_is_an_error(project: Project) -> None:
    """`--sweep seed 1,1,2`: two identical members, one config hash, so resume could not
    tell them apart (both took the last run folder of the pair)."""
    config = _quick_config(project)
    for values in ("1,1,2", "[1, 2, 1]"):
        result = run([config, "--sweep", "seed", values], project.root)
        assert result.code == 2, result.describe()
        assert result.stderr.count("\n") == 1, result.describe()
        assert "members 1 and 2" in result.stderr or "members 1 and 3" in result.stderr
        assert _nothing_created(project)


def _killed_sweep_with_two_running_members(project: Project) -> str:
    """A sweep of 3 members, 2 at once, SIGKILLed while 2 run; its id."""
    entry = project.entry(
        """
open("ready", "w").close()
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    time.sleep(0.01)
"""
    )
    config = project.config(entry, name="s{seed}", extra={"seed": 0})
    sweep = start([config, "--sweep", "seed", "range(0, 3)", "--parallel", "2"], project.root)
    try:
        wait_for(lambda: len(list(project.output.glob("*/exp.*/ready"))) == 2, 30, "2 members")
        sweep.kill()
        sweep.wait()
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    (folder,) = (project.output / ".sweeps").glob("*/sweep.json")
    return folder.parent.name


def test_stop_of_a_sweep_whose_supervisor_was_killed_stops_its_running_members(
    project: Project,
) -> None:
    """Was: `sweep ID is not running (running)`, exit 0, both members left running."""
    sweep_id = _killed_sweep_with_two_running_members(project)
    stopped = run(["stop", sweep_id], project.root)
    assert stopped.code == 0, stopped.describe()
    assert f"sweep {sweep_id} is not running (lost): stopping its 2 running" in stopped.stderr
    for ready in project.output.glob("*/exp.*/ready"):
        record = read_json(ready.parent / "run.json")
        assert record["status"] == "killed"
        assert record["signal"] == "SIGTERM"


def test_dotted_keys_in_a_config_sweep_section_as_docs_sweeps_md_writes_them(
    project: Project,
) -> None:
    """`__sweep__: {training.lr: [...]}` was refused: a dotted key of a config is a nested
    mapping once parsed (`training: {lr: [...]}`), which __sweep__ took for a bad value."""
    entry = project.entry("return None")
    config = project.config(
        entry,
        name="{model.name}-lr{training.lr}",
        extra={"model": {"name": "resnet"}, "training": {"lr": 0.1, "batch_size": 32}},
    )
    text = config.read_text() + (
        "__sweep__:\n"
        "  training.lr: [0.1, 0.01]\n"
        "  model.name,training.batch_size: [[resnet, 256], [vit, 64]]\n"
    )
    config.write_text(text)
    result = run([config, "--print-config", "--json"], project.root)
    assert result.code == 0, result.describe()
    members = json.loads(result.stdout)["members"]
    assert [m["name"] for m in members] == [
        "resnet-lr0.1",
        "vit-lr0.1",
        "resnet-lr0.01",
        "vit-lr0.01",
    ]
    assert members[1]["values"] == {
        "training.lr": 0.1,
        "model.name": "vit",
        "training.batch_size": 64,
    }


def test_stop_of_a_resumed_sweep_also_stops_the_members_its_lost_supervisor_started(
    project: Project,
) -> None:
    """Was: `stopped: sweep ID interrupted (1 killed)`, the 2 members skipped as running
    (started before the resume) left running."""
    sweep_id = _killed_sweep_with_two_running_members(project)
    resumed = run(["sweep", "resume", sweep_id, "--detach"], project.root)
    assert resumed.code == 0, resumed.describe()
    assert "0 done, 0 to rerun, 1 new, 2 running" in resumed.stderr
    wait_for(lambda: len(list(project.output.glob("*/exp.*/ready"))) == 3, 30, "member 3")
    stopped = run(["stop", sweep_id], project.root)
    assert stopped.code == 0, stopped.describe()
    for ready in project.output.glob("*/exp.*/ready"):
        assert read_json(ready.parent / "run.json")["status"] == "killed", stopped.describe()
