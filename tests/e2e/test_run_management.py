"""Tags, notes, the `stopped` status and `expyrun diff`, through the real CLI (issue 14)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from support import Project, read_json, run, start, wait_for

# Says it is ready, records the signals it handles, then waits for a `go` file in its run
# folder; `linger`: after a handled signal, keep running that many seconds (a run that goes
# on after a hangup); exits with `code`.
WAITING_ENTRY = """
def handled(signum, frame):
    open("signals", "a").write(signal.Signals(signum).name + "\\n")
    if config.get("linger"):
        end = time.monotonic() + config["linger"]
        while time.monotonic() < end:
            pass
        open("go", "w").close()
    elif config.get("exit_on_signal"):
        sys.exit(config.get("code", 0))
for name in config.get("handle", []):
    signal.signal(getattr(signal, name), handled)
open("ready", "w").close()
deadline = time.monotonic() + 120
while not os.path.exists("go") and time.monotonic() < deadline:
    time.sleep(0.01)
sys.exit(config.get("code", 0))
"""


def _detached(project: Project, *args: str, **extra: object) -> Path:
    entry = project.entry(WAITING_ENTRY)
    result = run([project.config(entry, extra=extra), "--detach", *args], cwd=project.root)
    assert result.code == 0, result.describe()
    run_dir = Path(result.stdout.splitlines()[-1])
    wait_for(lambda: (run_dir / "ready").exists(), 20, "the detached entry to start")
    return run_dir


def _record(run_dir: Path) -> dict:
    return read_json(run_dir / "run.json")


def _ended(run_dir: Path) -> dict:
    ended = ("succeeded", "stopped", "failed", "killed")
    return wait_for(lambda: (r := _record(run_dir))["status"] in ended and r, 30, "the run to end")


# --- tags and notes -----------------------------------------------------------------------


def test_tags_and_note_at_launch_then_edited(project: Project) -> None:
    entry = project.entry("pass")
    config = project.config(entry)
    launched = run(
        [config, "--tag", "baseline", "--tag=lr.0-1", "--tag", "baseline", "--note", "first"],
        cwd=project.root,
    )
    assert launched.code == 0, launched.describe()
    run_dir = launched.run_dir
    assert (launched.record["tags"], launched.record["note"]) == (["baseline", "lr.0-1"], "first")

    edited = run(["tag", "outputs/exp", "+best", "-baseline", "+x_1"], cwd=project.root)
    assert edited.code == 0, edited.describe()
    assert _record(run_dir)["tags"] == ["lr.0-1", "best", "x_1"]
    listed = run(["tag", run_dir], cwd=project.root)
    assert listed.stdout == f"{run_dir}: lr.0-1 best x_1\n"

    assert run(["note", "last", "lr too high; see plots/"], cwd=project.root).code == 0
    assert _record(run_dir)["note"] == "lr too high; see plots/"
    assert run(["note", run_dir], cwd=project.root).stdout == "lr too high; see plots/\n"
    status = run(["status", run_dir], cwd=project.root).stdout
    assert "tags       lr.0-1, best, x_1\n" in status
    assert "note       lr too high; see plots/\n" in status
    assert run(["note", run_dir, ""], cwd=project.root).code == 0
    assert _record(run_dir)["note"] is None
    listing = json.loads(run(["ls", project.output, "--json"], cwd=project.root).stdout)
    assert listing[0]["tags"] == ["lr.0-1", "best", "x_1"]
    again = run(["rerun", run_dir, "--tag", "rerun"], cwd=project.root)  # its own tags only
    assert again.code == 0, again.describe()
    assert (again.record["tags"], again.record["note"]) == (["rerun"], None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--tag", "has space"], "invalid tag name 'has space'", id="launch-space"),
        pytest.param(["--tag", "-x"], "invalid tag name '-x'", id="launch-dash"),
        pytest.param(["--tag", "a" * 65], "invalid tag name", id="launch-too-long"),
        pytest.param(["--tag"], "--tag needs a value", id="launch-no-value"),
    ],
)
def test_bad_tags_at_launch_make_nothing(project: Project, args: list[str], message: str) -> None:
    config = project.config(project.entry("pass"))
    result = run([config, *args], cwd=project.root)
    assert result.code == 2, result.describe()
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not project.output.exists()


def test_a_bad_edit_changes_no_run(project: Project) -> None:
    config = project.config(project.entry("pass"), extra={"i": 0})
    first = run([config, "--tag", "a"], cwd=project.root).run_dir
    for args, message in [
        (["tag", first, "+ok", "+no=pe"], "invalid tag name 'no=pe'"),
        (["tag", first, project.root / "missing", "+ok"], "no such run folder"),
        (["tag", "+ok"], "missing the run"),
        (["note", project.root / "missing", "x"], "no such run folder"),
    ]:
        result = run(args, cwd=project.root)
        assert result.code == 2, result.describe()
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert _record(first)["tags"] == ["a"]


def test_tags_edited_while_the_run_runs_survive_its_final_record(project: Project) -> None:
    """The supervisor writes the final record from the record it holds since the start: the
    tags and note edited meanwhile must be in it, and the edits lose none of its fields."""
    run_dir = _detached(project, "--tag", "launched")
    for edit in (["+a", "+b"], ["-launched", "+c"], ["+d", "-a"]):
        assert run(["tag", run_dir, *edit], cwd=project.root).code == 0
    assert run(["note", run_dir, "edited while running"], cwd=project.root).code == 0
    running = _record(run_dir)
    assert (running["status"], running["tags"]) == ("running", ["b", "c", "d"])
    assert running["pid"]
    assert running["child_pid"]
    # Edits race with the final record: start a stream of them, then let the run end.
    editor = start(["tag", run_dir, "+during"], cwd=project.root)
    (run_dir / "go").touch()
    final = _ended(run_dir)
    editor.communicate(timeout=30)
    assert editor.returncode == 0
    after = run(["tag", run_dir, "+after"], cwd=project.root)
    assert after.code == 0, after.describe()
    final = _record(run_dir)
    assert final["status"] == "succeeded"
    assert final["exit_code"] == 0
    assert final["ended_at"]
    assert final["duration_s"] is not None
    assert final["tags"] == ["b", "c", "d", "during", "after"]
    assert final["note"] == "edited while running"
    assert not list(run_dir.glob(".run.json*"))  # no temporary file, no reserve


# --- the stopped status ---------------------------------------------------------------------


def test_expyrun_stop_of_a_run_that_exits_0_is_stopped(project: Project) -> None:
    run_dir = _detached(project, handle=["SIGTERM"], exit_on_signal=True)
    result = run(["stop", run_dir], cwd=project.root)
    assert result.code == 0, result.describe()
    assert "expyrun: stopped\n" in result.stderr
    record = _record(run_dir)
    assert (record["status"], record["exit_code"], record["signal"]) == ("stopped", 0, "SIGTERM")
    request = record["stop_request"]
    assert (request["signal"], request["by"]) == ("SIGTERM", "expyrun stop")
    assert record["attempts"][-1]["stop_request"] == request
    status = run(["status", run_dir], cwd=project.root)
    assert status.code == 0
    assert "status     stopped (SIGTERM, asked by expyrun stop)" in status.stdout
    follow = run(["logs", "-f", run_dir], cwd=project.root)
    assert follow.code == 0
    listing = run(["ls", project.output, "--status", "stopped"], cwd=project.root)
    assert listing.stdout.splitlines()[1].split()[:2] == ["outputs/exp/exp.0", "stopped"]
    assert len(listing.stdout.splitlines()) == 2
    succeeded = run(["ls", project.output, "--status", "succeeded"], cwd=project.root)
    assert succeeded.stdout.splitlines()[1:] == []


def test_a_stop_request_then_a_failure_stays_failed(project: Project) -> None:
    run_dir = _detached(project, handle=["SIGTERM"], exit_on_signal=True, code=3)
    assert run(["stop", run_dir], cwd=project.root).code == 0
    record = _record(run_dir)
    assert (record["status"], record["exit_code"]) == ("failed", 3)
    assert record["stop_request"]["by"] == "expyrun stop"
    assert run(["status", run_dir], cwd=project.root).code == 3


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_signal_to_the_supervisor_is_a_stop_request(project: Project, name: str) -> None:
    run_dir = _detached(project, handle=[name], exit_on_signal=True)
    pid = _record(run_dir)["pid"]
    os.kill(pid, getattr(signal, name))
    record = _ended(run_dir)
    assert record["status"] == "stopped", record
    assert (record["stop_request"]["signal"], record["stop_request"]["by"]) == (name, "signal")


def test_a_run_that_outlives_a_hangup_succeeded(project: Project) -> None:
    """A hangup has no grace and no kill behind it: a run that ignores it and goes on for
    longer than the grace period ended on its own."""
    run_dir = _detached(project, "--grace", "0.2", handle=["SIGHUP"], linger=1.0)
    os.kill(_record(run_dir)["pid"], signal.SIGHUP)
    record = _ended(run_dir)
    assert record["status"] == "succeeded", record
    assert record["stop_request"]["signal"] == "SIGHUP"  # it was asked, all the same


def test_a_run_killed_after_the_grace_is_killed_with_its_request(project: Project) -> None:
    run_dir = _detached(project, "--grace", "0.5", handle=["SIGTERM"])
    assert run(["stop", run_dir], cwd=project.root).code == 0
    record = _record(run_dir)
    assert (record["status"], record["killed_after_grace"]) == ("killed", True)
    assert record["stop_request"]["by"] == "expyrun stop"


# --- diff -------------------------------------------------------------------------------------


def _two_runs(project: Project) -> tuple[Path, Path]:
    """Two runs of one project: the second with other config values and edited code."""
    body = "print(config['training']['lr'])\n"
    entry = project.entry(body)
    project.write("pkg/weights.bin", "")
    (project.root / "pkg" / "weights.bin").write_bytes(b"\0\1\2")
    extra = {"training": {"lr": 0.1, "epochs": 3}, "layers": [1, 2], "seed": 1}
    config = project.config(entry, extra=extra)
    first = run([config], cwd=project.root).run_dir
    project.entry(body + "print('new line')\n")
    (project.root / "pkg" / "weights.bin").write_bytes(b"\0\1\3")
    project.write("pkg/extra.py", "X = 1\n")
    second = run(
        [config, "--training.lr", "0.01", "--layers", "[1, 3, 4]", "--seed", "null"],
        cwd=project.root,
    ).run_dir
    return first, second


def test_diff_lists_config_requirements_and_code_changes(project: Project) -> None:
    first, second = _two_runs(project)
    requirements = (second / "frozen_requirements.txt").read_text()
    (second / "frozen_requirements.txt").write_text(requirements + "tinyextra==1.0\n")
    for run_dir, acc in ((first, 0.5), (second, 0.75)):  # as an entry that returned them
        record = _record(run_dir)
        record["result"] = {"acc": acc, "loss": 1.0}
        (run_dir / "run.json").write_text(json.dumps(record))

    result = run(["diff", first, "outputs/exp", "--code"], cwd=project.root)
    assert result.code == 1, result.describe()
    text = result.stdout
    assert "config:\n" in text
    assert "  changed  training.lr: 0.1 -> 0.01\n" in text
    assert "  changed  layers.1: 2 -> 3\n" in text
    assert "  added    layers.2: 4\n" in text
    assert "  changed  seed: 1 -> null\n" in text
    assert "__code__" not in text  # each run's own folder is no difference
    assert "result:\n  changed  result.acc: 0.5 -> 0.75\n" in text
    assert "requirements:\n  added    tinyextra 1.0\n" in text
    assert "--- a/pkg/main.py\n+++ b/pkg/main.py\n" in text
    assert "+    print('new line')\n" in text
    assert "--- /dev/null\n+++ b/pkg/extra.py\n@@ -0,0 +1 @@\n+X = 1\n" in text
    assert "Binary files a/pkg/weights.bin and b/pkg/weights.bin differ" in text

    data = json.loads(run(["diff", first, second, "--json"], cwd=project.root).stdout)
    assert data["same"] is False
    assert {"kind": "changed", "key": "training.lr", "before": 0.1, "after": 0.01} in data["config"]
    assert data["requirements"] == [
        {"kind": "added", "name": "tinyextra", "before": "", "after": "1.0"}
    ]
    assert "code" not in data  # not asked for
    without_code = run(["diff", first, second], cwd=project.root)
    assert "code:" not in without_code.stdout


def test_diff_of_the_same_runs_is_empty_and_exits_0(project: Project) -> None:
    config = project.config(project.entry("pass"), extra={"a": {"b": 1}})
    first = run([config], cwd=project.root).run_dir
    second = run([config], cwd=project.root).run_dir
    # What importing from the copies wrote there (unless PYTHONDONTWRITEBYTECODE): not code.
    for run_dir, stamp in ((first, b"one"), (second, b"two")):
        (run_dir / "pkg" / "__pycache__").mkdir(exist_ok=True)
        (run_dir / "pkg" / "__pycache__" / "main.cpython-311.pyc").write_bytes(stamp)
    result = run(["diff", first, second, "--code"], cwd=project.root)
    assert (result.code, result.stdout) == (0, ""), result.describe()
    assert "are the same" in result.stderr
    data = json.loads(run(["diff", first, second, "--json", "--code"], cwd=project.root).stdout)
    assert data["same"] is True
    assert data["code"] == []


def test_diff_bad_input_exits_2(project: Project) -> None:
    config = project.config(project.entry("pass"))
    first = run([config], cwd=project.root).run_dir
    (project.root / "broken").mkdir()
    for args, message in [
        (["diff", first], "the following arguments are required: RUN_B"),
        (["diff", first, project.root / "nope"], "no such run folder"),
        (["diff", first, project.root / "broken"], "not a run folder"),
    ]:
        result = run(args, cwd=project.root)
        assert result.code == 2, result.describe()
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
