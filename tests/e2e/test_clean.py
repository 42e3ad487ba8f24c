"""`expyrun rm` and `expyrun clean` through the real CLI: selection, refusals, the trash, a
SIGKILL in the middle."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from support import Project, read_json, run, start, start_in_terminal, wait_for

# Exits with config['exit']; with config['files'], first writes that many files into the run
# folder (its cwd); with config['wait'], waits for a `go` file first (a running run).
ENTRY = """
for i in range(config.get("files", 0)):
    open(f"f{i}", "w").close()
if config.get("wait"):
    open("ready", "w").close()
    deadline = time.monotonic() + 120
    while not os.path.exists("go") and time.monotonic() < deadline:
        time.sleep(0.01)
sys.exit(config["exit"])
"""


def _make(project: Project, label: str, exit_code: int = 0, *extra: str) -> Path:
    config = project.root / "config.yml"
    if not config.exists():
        entry = project.entry(ENTRY)
        project.config(
            entry,
            name="{label}",
            extra={"label": "x", "exit": 0, "lr": 0.1, "files": 0, "wait": False},
        )
    result = run([config, "--label", label, "--exit", str(exit_code), *extra], project.root)
    assert result.code == exit_code, result.describe()
    return result.run_dir


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` and its content (the run folders, intact or not)."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _listed(project: Project) -> list[str]:
    result = run(["ls", project.output], cwd=project.root)
    assert result.code == 0, result.describe()
    assert result.stderr == "", result.describe()
    return sorted(line.split()[0] for line in result.stdout.splitlines()[1:])


def test_clean_removes_exactly_the_selected_runs(project: Project) -> None:
    ok = _make(project, "ok")
    failed = _make(project, "bad", 2)
    big_lr = _make(project, "big", 0, "--lr", "0.9")
    failed_too = _make(project, "bad2", 1)
    kept = _tree(ok)
    result = run(["clean", "outputs", "--status", "failed", "--yes"], cwd=project.root)
    assert result.code == 0, result.describe()
    assert [line.split()[0] for line in result.stdout.splitlines()] == [
        "RUN",
        "outputs/bad2/exp.0",
        "outputs/bad/exp.0",
    ]
    assert result.stderr.startswith("expyrun: removed 2 runs, freed ")
    assert not failed.exists()
    assert not failed_too.exists()
    assert _tree(ok) == kept
    assert os.listdir(project.output / ".trash") == []
    by_where = run(["clean", "--where", "lr>0.5", "--yes"], cwd=project.root)
    assert by_where.code == 0, by_where.describe()
    assert not big_lr.exists()
    assert ok.exists()
    assert _listed(project) == ["outputs/ok/exp.0"]


def test_clean_dry_run_older_than_and_no_terminal(project: Project) -> None:
    failed = _make(project, "bad", 1)
    dry = run(["clean", "--status", "failed,killed", "--dry-run"], cwd=project.root)
    assert dry.code == 0, dry.describe()
    assert "outputs/bad/exp.0  failed" in dry.stdout
    assert "would remove 1 run" in dry.stderr
    young = run(["clean", "--status", "failed", "--older-than", "7d", "--yes"], project.root)
    assert young.code == 0
    assert young.stderr == "expyrun: no run to remove\n"
    refused = run(["clean", "--status", "failed"], cwd=project.root)
    assert refused.code == 2
    [line] = refused.stderr.splitlines()
    assert "not asking, stdin is not a terminal (pass --yes" in line
    assert failed.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["clean"], "clean needs --status or --where"),
        (["clean", "--status", "faild"], "unknown status 'faild'"),
        (["clean", "--status", "failed", "--older-than", "7 days"], "--older-than: expected"),
        (["clean", "--where", "lr<"], "expected a value after '<'"),
        (["rm", "outputs/missing"], "no such run folder or name folder"),
    ],
)
def test_bad_input_is_one_line_exit_2(project: Project, args: list[str], message: str) -> None:
    run_dir = _make(project, "ok")
    result = run(args, cwd=project.root)
    assert result.code == 2, result.describe()
    [line] = result.stderr.splitlines()
    assert message in line
    assert run_dir.exists()


def test_rm_refuses_a_running_run_and_removes_the_others(project: Project) -> None:
    done = _make(project, "done", 1)
    process = start(
        [project.root / "config.yml", "--label", "live", "--wait", "true"], project.root
    )
    live = project.output / "live" / "exp.0"
    try:
        wait_for(lambda: (live / "ready").exists(), 30, "the running run to start")
        before = _tree(live)
        result = run(["rm", live, done, "--yes"], cwd=project.root)
        assert result.code == 2, result.describe()
        pid = read_json(live / "run.json")["pid"]
        assert f"not removed: running (supervisor pid {pid}): stop it first" in result.stderr
        assert not done.exists()
        after = _tree(live)
        # Nothing of the running run was removed; it writes on (outputs.log and outputs.index
        # grow, run.json is rewritten).
        assert set(before) <= set(after)
        assert all(
            after[name].startswith(before[name]) for name in before if "run.json" not in name
        )
        clean = run(["clean", "--status", "running", "--yes"], cwd=project.root)
        assert clean.code == 0, clean.describe()
        assert "not removed: running" in clean.stderr
        assert live.exists()
    finally:
        (live / "go").touch()
        process.communicate(timeout=30)
    assert read_json(live / "run.json")["status"] == "succeeded"


@pytest.mark.parametrize(("answer", "code", "removed"), [(b"y", 0, True), (b"n", 1, False)])
def test_rm_asks_on_a_terminal(project: Project, answer: bytes, code: int, removed: bool) -> None:
    run_dir = _make(project, "bad", 1)
    process, master = start_in_terminal(["rm", run_dir], cwd=project.root)
    seen = b""
    try:

        def asked() -> bool:
            nonlocal seen
            seen += os.read(master, 4096)
            return b"[y/N]" in seen

        wait_for(asked, 30, "the question")
        os.write(master, answer + b"\n")
        assert process.wait(30) == code
    finally:
        os.close(master)
    assert run_dir.exists() is not removed


def test_a_sigkill_mid_clean_leaves_every_other_run_intact(project: Project) -> None:
    ok = _make(project, "ok")
    other = _make(project, "other", 0)
    big = _make(project, "big", 1, "--files", "40000")
    intact = {path: _tree(path) for path in (ok, other)}
    trash = project.output / ".trash"
    process = start(["clean", "--status", "failed", "--yes"], cwd=project.root)
    try:
        # Kill it once the big run is in the trash, while its 40,000 files are being deleted.
        wait_for(lambda: trash.is_dir() and os.listdir(trash), 60, "the run to reach the trash")
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    [leftover] = os.listdir(trash)
    assert 0 < len(os.listdir(trash / leftover)) < 40000 + 10, "killed after the deletion ended"
    assert not big.exists()
    assert {path: _tree(path) for path in (ok, other)} == intact
    assert _listed(project) == ["outputs/ok/exp.0", "outputs/other/exp.0"]
    again = run(["clean", "--status", "failed", "--yes"], cwd=project.root)
    assert again.code == 0, again.describe()
    assert "finished removing 1 run folder an interrupted rm/clean left in" in again.stderr
    assert os.listdir(trash) == []
    assert _listed(project) == ["outputs/ok/exp.0", "outputs/other/exp.0"]


def test_rm_takes_a_name_folder_or_last(project: Project) -> None:
    first = _make(project, "a")
    second = _make(project, "a")
    other = _make(project, "b")
    by_name = run(["rm", "outputs/a", "--yes"], cwd=project.root)
    assert by_name.code == 0, by_name.describe()
    assert by_name.stdout.splitlines()[1].split()[0] == "outputs/a/exp.1"
    assert first.exists()
    assert not second.exists()
    newest = run(["rm", "last", "--yes"], cwd=project.root)
    assert newest.code == 0, newest.describe()
    assert not other.exists()
    assert _listed(project) == ["outputs/a/exp.0"]


def test_a_run_the_system_refuses_to_move_is_exit_2(project: Project) -> None:
    """A run folder that cannot be renamed (here its name folder is immutable, which stops
    root too; as another user: permission denied) is refused with a line and exit 2, as a
    running run is; it exited 1, which `rm` documents as 'the question was answered no'."""
    stuck = _make(project, "stuck", 1)
    done = _make(project, "done", 1)
    locked = subprocess.run(["chattr", "+i", str(stuck.parent)], capture_output=True)
    if locked.returncode != 0:
        pytest.skip(f"chattr +i not possible here: {locked.stderr.decode().strip()}")
    try:
        result = run(["rm", stuck, done, "--yes"], cwd=project.root)
        assert result.code == 2, result.describe()
        assert "stuck/exp.0: not removed: Operation not permitted" in result.stderr
        assert not done.exists()
        assert (stuck / "run.json").is_file()
    finally:
        subprocess.run(["chattr", "-i", str(stuck.parent)], check=True)


def test_rm_of_a_linked_run_folder_removes_the_link_only(project: Project) -> None:
    """`rm` of a symbolic link to a run folder removes the link, never its target, and
    reports the bytes it freed (the link's): it reported the target's size as freed."""
    target = _make(project, "real", 1)
    (target / "weights.bin").write_bytes(os.urandom(1 << 20))
    link = project.output / "real" / "exp.7"
    link.symlink_to(target)
    before = _tree(target)
    result = run(["rm", link, "--yes"], cwd=project.root)
    assert result.code == 0, result.describe()
    assert not os.path.lexists(link)
    assert _tree(target) == before
    freed = int(result.stderr.rsplit("(", 1)[1].split()[0])
    assert freed < 64 * 1024, result.describe()  # the target holds 1M of weights
    assert _listed(project) == ["outputs/real/exp.0"]
