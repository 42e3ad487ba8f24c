"""Faults are records, never internal errors: a full disk, a deleted run folder.

A full disk is a real one: a small tmpfs mounted for the test (root only; skipped otherwise).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import (
    Project,
    process_alive,
    read_json,
    run,
    running_held_until,
    start,
    wait_for,
    worker_pid,
)

import expyrun


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, unmounted afterwards."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path) -> None:
    """Write into `folder` until its file system is full."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            os.write(fd, b"f" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


def test_a_record_written_into_its_reserve_needs_no_free_block(tiny_disk: Path) -> None:
    """On a full disk, a record goes into the blocks its reserve set aside: deleting the reserve
    and writing again lost them to another writer filling the disk meanwhile (a task's output:
    a task of a --nproc run was recorded `lost`, now and then)."""
    from expyrun.run.record_file import make_reserve, replace_from_reserve

    reserve, record = tiny_disk / "reserve", tiny_disk / "run.json"
    make_reserve(reserve, 64 * 1024)
    make_reserve(tiny_disk / "small", 16)
    record.write_text("old\n")
    _fill(tiny_disk)
    with pytest.raises(OSError):
        (tiny_disk / "other").write_text("x" * 8192)
    text = '{"status": "succeeded"}\n' * 100
    assert replace_from_reserve(reserve, record, text)
    assert record.read_text() == text
    assert not reserve.exists()
    assert not replace_from_reserve(reserve, record, "again")  # no reserve left
    _fill(tiny_disk)  # again: the reserve's unused blocks were given back
    assert not replace_from_reserve(tiny_disk / "small", record, "x" * 8192)  # larger
    assert record.read_text() == text  # left as it was


CHATTY = """
for i in range(50):
    print(f"line {i} " + "x" * 100_000, flush=True)
open(os.path.join(os.environ["EXPYRUN_CWD"], "finished"), "w").close()
print("entry finished normally", flush=True)
"""

CHECKPOINT = """
with open("checkpoint.bin", "wb") as f:
    try:
        while True:
            f.write(b"c" * 65536)
            f.flush()
    except OSError:
        pass
print("checkpoint written")
"""


def test_a_disk_filled_by_output_ends_in_a_true_record(project: Project, tiny_disk: Path) -> None:
    config = project.config(project.entry(CHATTY))
    config.write_text(config.read_text().replace(str(project.output), str(tiny_disk)))
    result = run([config], cwd=project.root, timeout=120)
    assert result.code == 0, result.describe()
    assert (project.root / "finished").exists()  # the entry ran to its end
    assert "Traceback" not in result.stderr
    assert "cannot write outputs.log (No space left on device): the run goes on" in result.stderr
    # The terminal copy still has everything, the log what fit.
    assert "entry finished normally" in result.stdout
    record = read_json(tiny_disk / "exp" / "exp.0" / "run.json")
    assert record["status"] == "succeeded"
    assert record["exit_code"] == 0
    assert record["output_lost_bytes"] > 0
    assert record["output_lost_since"]
    logged = (tiny_disk / "exp" / "exp.0" / "outputs.log").stat().st_size
    assert logged + record["output_lost_bytes"] == len(result.stdout_bytes)
    assert not list((tiny_disk / "exp" / "exp.0").glob(".run.json*"))  # no temp, no reserve


def test_a_disk_filled_by_the_entry_keeps_its_success(project: Project, tiny_disk: Path) -> None:
    config = project.config(project.entry(CHECKPOINT))
    config.write_text(config.read_text().replace(str(project.output), str(tiny_disk)))
    result = run([config], cwd=project.root, timeout=120)
    assert result.code == 0, result.describe()
    assert "Traceback" not in result.stderr
    run_dir = tiny_disk / "exp" / "exp.0"
    record = read_json(run_dir / "run.json")
    assert record["status"] == "succeeded"
    assert not list(run_dir.glob(".run.json*"))


def test_a_disk_filled_before_the_run_is_recorded_running_keeps_its_success(
    project: Project, tiny_disk: Path
) -> None:
    """The entry filled the disk before the supervisor wrote `running`, the record that made
    the reserve (it no longer came with `prepared`): `running` could not be written, expyrun
    exited 2 and left the record `prepared` (now and then in the test above)."""
    body = CHECKPOINT + 'open(os.path.join(os.environ["EXPYRUN_CWD"], "full"), "w").close()\n'
    config = project.config(project.entry(body))
    config.write_text(config.read_text().replace(str(project.output), str(tiny_disk)))
    command = running_held_until("full")
    result = run([config], cwd=project.root, command=command, timeout=120)
    assert result.code == 0, result.describe()
    assert "Traceback" not in result.stderr
    run_dir = tiny_disk / "exp" / "exp.0"
    assert read_json(run_dir / "run.json")["status"] == "succeeded"
    assert not list(run_dir.glob(".run.json*"))


def test_a_run_folder_deleted_while_the_run_runs(project: Project) -> None:
    body = """
open("started", "w").close()
while os.path.exists(os.environ["EXPYRUN_RUN_DIR"]):
    time.sleep(0.01)
print("the entry goes on")
"""
    config = project.config(project.entry(body))
    process = start([config], cwd=project.root)
    run_dir = project.output / "exp" / "exp.0"
    try:
        wait_for(lambda: (run_dir / "started").exists(), 30, "the entry to start")
        wait_for(lambda: _deleted(run_dir), 10, "the run folder to be deleted")  # as below
        _out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()
    assert "cannot write the record: the run folder is gone" in err.decode()


def test_ls_shows_a_record_with_a_wrong_typed_field_as_unreadable(project: Project) -> None:
    config = project.config(project.entry("pass"))
    for _ in range(3):
        assert run([config], cwd=project.root).code == 0
    bad = project.output / "exp" / "exp.1" / "run.json"
    data = json.loads(bad.read_text())
    data["started_at"] = 5
    bad.write_text(json.dumps(data))
    (project.output / "exp" / "exp.2" / "run.json").write_text("[1, 2")
    listed = run(["ls", project.output], cwd=project.root)
    assert listed.code == 0, listed.describe()
    assert "Traceback" not in listed.stderr
    rows = {line.split()[0]: line.split()[1] for line in listed.stdout.splitlines()[1:]}
    assert rows == {
        "outputs/exp/exp.0": "succeeded",
        "outputs/exp/exp.1": "unreadable",
        "outputs/exp/exp.2": "unreadable",
    }
    assert "'started_at' is an integer, expected a string" in listed.stderr
    as_json = json.loads(run(["ls", project.output, "--json"], cwd=project.root).stdout)
    assert sorted(row["status"] for row in as_json) == ["succeeded", "unreadable", "unreadable"]
    for command in (["status"], ["logs"], ["stop"]):
        shown = run([*command, bad.parent], cwd=project.root)
        assert shown.code == 2, shown.describe()
        assert shown.stderr.count("\n") == 1
        assert "unreadable record: 'started_at' is an integer" in shown.stderr


def test_ls_follows_a_name_folder_that_is_a_symbolic_link(project: Project) -> None:
    elsewhere = project.root / "elsewhere"
    elsewhere.mkdir(parents=True)
    project.output.mkdir(parents=True)
    (project.output / "linked").symlink_to(elsewhere)
    (elsewhere / "loop").symlink_to(project.output)  # a cycle: listed once, and it ends
    config = project.config(project.entry("pass"), name="linked")
    assert run([config], cwd=project.root).code == 0
    listed = run(["ls", project.output], cwd=project.root)
    assert listed.code == 0, listed.describe()
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:]] == ["outputs/linked/exp.0"]


def _fake_running_record(run_dir: Path, pid: int) -> None:
    data = read_json(run_dir / "run.json")
    data.update(status="running", pid=pid, pid_started_at=None, host=os.uname().nodename)
    (run_dir / "run.json").write_text(json.dumps(data))


def test_stop_never_signals_a_process_it_cannot_confirm(project: Project) -> None:
    """A record without pid_started_at names a pid that is not the run's supervisor."""
    config = project.config(project.entry("pass"))
    done = run([config], cwd=project.root)
    decoy = subprocess.Popen(["sleep", "60"])
    try:
        _fake_running_record(done.run_dir, decoy.pid)
        stopped = run(["stop", done.run_dir], cwd=project.root)
        assert stopped.code == 2, stopped.describe()
        assert "cannot confirm that process" in stopped.stderr
        assert decoy.poll() is None  # not signalled
    finally:
        decoy.kill()
        decoy.wait()


def test_stop_confirms_a_supervisor_without_start_time_by_its_log(project: Project) -> None:
    """Without pid_started_at, the process holding the run's outputs.log is its supervisor."""
    body = """
open("ready", "w").close()
while True:
    time.sleep(0.05)
"""
    config = project.config(project.entry(body))
    process = start([config, "--grace", "1"], cwd=project.root)
    run_dir = project.output / "exp" / "exp.0"
    try:
        wait_for(lambda: (run_dir / "ready").exists(), 30, "the entry to start")
        wait_for(lambda: read_json(run_dir / "run.json")["status"] == "running", 10, "running")
        _fake_running_record(run_dir, process.pid)
        stopped = run(["stop", run_dir], cwd=project.root)
        assert stopped.code == 0, stopped.describe()
        process.communicate(timeout=30)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 128 + signal.SIGTERM


def _as_nobody() -> list[str]:
    """`python -m expyrun` as user nobody, or skip: needs root, runuser, a readable expyrun."""
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("a second user needs root and runuser")
    python = f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"
    if not os.path.exists(python):
        pytest.skip(f"no {python} for user nobody (this interpreter's home may be private)")
    paths = [str(Path(expyrun.__file__).parents[1]), sysconfig.get_paths()["platlib"]]
    probe = subprocess.run(
        ["runuser", "-u", "nobody", "--", python, "-c", "import expyrun.cli, yaml, psutil"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"user nobody cannot import expyrun here: {probe.stderr.decode()[-200:]}")
    return [
        "runuser",
        "-u",
        "nobody",
        "--",
        "env",
        f"PYTHONPATH={os.pathsep.join(paths)}",
        python,
        "-m",
        "expyrun",
    ]


@pytest.fixture
def shared_project() -> Iterator[Project]:
    """A project in a folder every user may read (pytest's own tmp folders are private)."""
    root = Path(tempfile.mkdtemp(prefix="expyrun-shared-"))
    root.chmod(0o755)
    try:
        yield Project(root / "project")
    finally:
        shutil.rmtree(root, ignore_errors=True)


WAITING_ENTRY = """
open("ready", "w").close()
while True:
    time.sleep(0.05)
"""


@pytest.mark.parametrize("readable", [True, False])
def test_stop_on_another_users_run_is_a_clear_error(
    shared_project: Project, readable: bool
) -> None:
    nobody = _as_nobody()
    project = shared_project
    config = project.config(project.entry(WAITING_ENTRY))
    process = start([config], cwd=project.root)
    run_dir = project.output / "exp" / "exp.0"
    try:
        wait_for(lambda: (run_dir / "ready").exists(), 30, "the entry to start")
        wait_for(lambda: read_json(run_dir / "run.json")["status"] == "running", 10, "running")
        if not readable:
            run_dir.chmod(0o700)
        denied = run(["stop", run_dir], cwd=Path("/"), command=nobody)
        assert denied.code == 2, denied.describe()
        assert "Traceback" not in denied.stderr
        assert denied.stderr.count("\n") == 1, denied.stderr
        expected = "it runs as another user" if readable else "cannot read run.json"
        assert expected in denied.stderr
        assert process.poll() is None
    finally:
        process.kill()
        process.communicate()


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_signal_during_the_code_copy_leaves_no_half_made_folder(
    project: Project, name: str
) -> None:
    entry = project.entry("pass")
    with open(project.root / "pkg" / "weights.bin", "wb") as f:
        f.truncate(8 << 30)  # sparse: the copy writes 8 GB, the signal comes long before
    config = project.config(entry, extra={"x": 1})
    process = start([config], cwd=project.root)
    copied = project.output / "exp" / "exp.0" / "pkg" / "weights.bin"
    try:
        wait_for(lambda: copied.exists(), 60, "the code copy to be under way")
        process.send_signal(getattr(signal, name))
        _out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 128 + getattr(signal, name), err.decode()
    assert "Traceback" not in err.decode()
    assert "interrupted" in err.decode()
    assert not (project.output / "exp" / "exp.0").exists()


def test_the_worker_ends_when_its_supervisor_dies_after_the_run_folder_was_deleted(
    project: Project,
) -> None:
    """The rescue cannot save the output anywhere: it still ends every process of the run."""
    config = project.config(project.entry(WAITING_ENTRY))
    process = start([config], cwd=project.root)
    run_dir = project.output / "exp" / "exp.0"
    try:
        wait_for(lambda: (run_dir / "ready").exists(), 30, "the entry to start")
        worker = worker_pid(run_dir)
        # The supervisor may write a file into the folder while it is deleted (rm -rf races
        # the same way): delete until it is gone.
        wait_for(lambda: _deleted(run_dir), 10, "the run folder to be deleted")
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
        wait_for(lambda: not process_alive(worker), 10, "the worker to end")
    finally:
        process.kill()
        process.communicate()


def _deleted(folder: Path) -> bool:
    """Try once to delete `folder`; True when it is gone."""
    try:
        shutil.rmtree(folder)
    except FileNotFoundError:
        pass
    except OSError:  # ENOTEMPTY: a file appeared while deleting
        return False
    return not folder.exists()
