"""Faults of multi-task runs found in review: stops at every phase, the record, `--nproc 1`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Project, read_json, run, start, wait_for
from tasks_support import step_env, tasks_of

# Each worker marks itself ready, then waits; on SIGINT, task 0 stops at once and the others
# clean up for a while (well within the grace) before they exit.
SLOW_CLEANUP = """
rank = int(os.environ["RANK"])
def on_interrupt(signum, frame):
    if rank == 0:
        raise KeyboardInterrupt
    time.sleep(1.5)
    open(f"cleaned.{rank}", "w").close()
    sys.exit(130)
signal.signal(signal.SIGINT, on_interrupt)
open(f"ready.{rank}", "w").close()
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    time.sleep(0.05)
"""


def _ready(run_dir: Path, world: int) -> bool:
    return all((run_dir / f"ready.{rank}").exists() for rank in range(world))


def _task_status(run_dir: Path, rank: int) -> str | None:
    """Task `rank`'s status in run.json, None before it has an entry there."""
    try:
        tasks = read_json(run_dir / "run.json").get("tasks") or []
    except FileNotFoundError:
        return None
    return next((task["status"] for task in tasks if task["rank"] == rank), None)


def _end(process: subprocess.Popen[bytes], timeout: float = 30) -> str:
    try:
        _, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    return err.decode(errors="replace")


def test_ctrl_c_gives_every_task_its_grace(project: Project) -> None:
    """A task ending on the forwarded Ctrl-C is no failure that cuts the others' grace short."""
    config = project.config(project.entry(SLOW_CLEANUP))
    process = start([config, "--nproc", "2", "--grace", "20"], cwd=project.root)
    run_dir = project.output / "exp" / "exp.0"
    try:
        wait_for(lambda: _ready(run_dir, 2), 30, "both workers to start")
        os.kill(process.pid, signal.SIGINT)
    finally:
        err = _end(process)
    assert process.returncode == 130, err
    assert "stopping the other tasks" not in err
    assert (run_dir / "cleaned.1").exists(), err
    assert not tasks_of(run_dir)[1]["killed_after_grace"]


def test_task_0_records_the_requirements_when_another_task_recorded_first(
    project: Project,
) -> None:
    """The other tasks' entries make run.json say `running` before task 0 reads it (one
    `--nproc 4` run in four, here): task 0 took that for a run folder that ran already, and
    skipped the frozen requirements and the git state. The order is forced here: a prepared
    folder (a finished run's, put back), task 1's supervisor first, then task 0's."""
    config = project.config(project.entry('print("rank", os.environ["RANK"])\n'))
    first = run([config, "--nproc", "2"], cwd=project.root)
    assert first.code == 0, first.describe()
    run_dir = first.run_dir
    prepared = read_json(run_dir / "run.json")
    prepared.update(status="prepared", requirements=None, tasks=None)
    (run_dir / "run.json").write_text(json.dumps(prepared))
    (run_dir / "frozen_requirements.txt").unlink()
    shutil.rmtree(run_dir / ".tasks")
    for rank in (1, 0):
        argv = ["_supervise", run_dir, "--task", str(rank), "--ntasks", "2"]
        task = run(argv, cwd=project.root)
        assert task.code == 0, task.describe()
    record = read_json(run_dir / "run.json")
    assert record["status"] == "succeeded"
    assert record["requirements"] == "frozen_requirements.txt"
    assert (run_dir / "frozen_requirements.txt").is_file()


def test_nproc_1_is_one_task_with_its_rank_environment(project: Project) -> None:
    """`--nproc 1` is `torchrun --nproc-per-node 1`: a world of one, not a run without RANK."""
    body = 'print("rank", os.environ["RANK"], "of", os.environ["WORLD_SIZE"], flush=True)\n'
    config = project.config(project.entry(body))
    result = run([config, "--nproc", "1"], cwd=project.root)
    assert result.code == 0, result.describe()
    assert "rank 0 of 1" in (result.run_dir / "outputs.log").read_text()
    assert [task["status"] for task in tasks_of(result.run_dir)] == ["succeeded"]


# Task 0 ends at once; the others wait for the test's `go` file.
TASK_0_FIRST = """
rank = int(os.environ["RANK"])
if rank:
    open(f"ready.{rank}", "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists("go") and time.monotonic() < deadline:
        time.sleep(0.05)
"""


def test_a_run_whose_task_0_ended_first_shows_the_runs_end(project: Project) -> None:
    """run.json's end fields are the run's: none while a task runs (not task 0's end), then
    the last task's end, and the duration from the first start to the last end."""
    config = project.config(project.entry(TASK_0_FIRST))
    process = start([config, "--nproc", "2"], cwd=project.root)
    run_dir = project.output / "exp" / "exp.0"
    try:
        wait_for(lambda: (run_dir / "ready.1").exists(), 30, "task 1 to start")
        wait_for(lambda: _task_status(run_dir, 0) == "succeeded", 30, "task 0 to end")
        record = read_json(run_dir / "run.json")
        assert record["status"] == "running"
        assert (record["ended_at"], record["exit_code"], record["duration_s"]) == (None,) * 3
        listed = run(["ls", project.output], cwd=project.root)
        assert "running" in listed.stdout, listed.describe()
    finally:
        (run_dir / "go").touch()
        err = _end(process)
    assert process.returncode == 0, err
    record = read_json(run_dir / "run.json")
    tasks = tasks_of(run_dir)
    assert record["ended_at"] == tasks[1]["ended_at"]
    assert record["duration_s"] >= tasks[1]["duration_s"] > tasks[0]["duration_s"]


def test_a_stop_while_the_tasks_start_records_them_killed(project: Project) -> None:
    """SIGTERM as the task supervisors start: those that had not recorded yet were stopped
    by it (killed), not lost; the run was killed, not failed."""
    config = project.config(project.entry(SLOW_CLEANUP))
    process = start([config, "--nproc", "3", "--grace", "5"], cwd=project.root)
    run_dir = project.output / "exp" / "exp.0"
    try:
        assert process.stderr is not None
        for line in process.stderr:  # the line said just before the tasks start
            if b"3 tasks share it" in line:
                break
        os.kill(process.pid, signal.SIGTERM)
    finally:
        _end(process)
    assert process.returncode == 143
    record = read_json(run_dir / "run.json")
    assert (record["status"], record["signal"]) == ("killed", "SIGTERM"), record["tasks"]
    assert {task["status"] for task in tasks_of(run_dir)} == {"killed"}
    # A task recorded in run.json only (no file of its own) still has its log to show.
    shown = run(["logs", run_dir, "--task", "2"], cwd=project.root)
    assert shown.code == 0, shown.describe()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, unmounted afterwards (as in test_faults.py)."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    argv = ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)]
    mounted = subprocess.run(argv, capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


# Once every task has recorded that it runs (its reserve made), fill the disk.
CHATTY = """
def wait_for_all(pattern):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(os.path.exists(pattern.format(n=n)) for n in range(3)):
            return
        time.sleep(0.02)
    raise TimeoutError(pattern)
run_dir = os.environ["EXPYRUN_RUN_DIR"]
wait_for_all(os.path.join(run_dir, ".tasks", "task.{n}.reserve"))
open(os.path.join(run_dir, f"seen.{os.environ['RANK']}"), "w").close()
wait_for_all(os.path.join(run_dir, "seen.{n}"))
for i in range(20):
    print(f"line {i} " + "x" * 100_000, flush=True)
print("entry finished normally", flush=True)
"""


def test_a_disk_filled_by_the_tasks_output_ends_in_a_true_record(
    project: Project, tiny_disk: Path
) -> None:
    """Each task keeps a reserve for its last entry on a full disk, as run.json has one:
    without it the tasks' final entries failed, and the run was `failed`, its tasks `lost`."""
    config = project.config(project.entry(CHATTY))
    config.write_text(config.read_text().replace(str(project.output), str(tiny_disk)))
    result = run([config, "--nproc", "3"], cwd=project.root, timeout=120)
    assert result.code == 0, result.stderr
    assert "cannot write outputs" in result.stderr
    run_dir = tiny_disk / "exp" / "exp.0"
    record = read_json(run_dir / "run.json")
    assert [task["status"] for task in tasks_of(run_dir)] == ["succeeded"] * 3, result.stderr
    assert record["status"] == "succeeded"
    assert not list((run_dir / ".tasks").glob(".*.tmp"))
    # What each task's log missed is in its entry, as the message says (not task 0's alone).
    lost = [task.get("output_lost_bytes") or 0 for task in tasks_of(run_dir)]
    assert all(lost), lost


@pytest.mark.parametrize("flag", ["--detach", "--slurm"])
def test_detach_or_slurm_in_a_step_of_several_tasks_is_refused(project: Project, flag: str) -> None:
    """`srun -n 2 expyrun CFG --detach` made one run folder per task, each waiting forever
    for the other task (`running` for good); `--slurm` would submit one job per task."""
    config = project.config(project.entry('print("hello")\n'))
    result = run([config, flag], cwd=project.root, env=step_env(1, 2))
    assert result.code == 2, result.describe()
    assert result.stderr.startswith(f"expyrun: error: {flag} in a job step of 2 tasks")
    assert len(result.stderr.splitlines()) == 1
    assert not project.output.exists()


# Each worker waits for SIGUSR1 (a checkpoint request), then ends normally.
ON_USR1 = """
rank = int(os.environ["RANK"])
got = []
signal.signal(signal.SIGUSR1, lambda signum, frame: got.append(signum))
open(f"ready.{rank}", "w").close()
deadline = time.monotonic() + 60
while not got and time.monotonic() < deadline:
    time.sleep(0.02)
print(f"rank {rank}: {'SIGUSR1' if got else 'nothing'}", flush=True)
"""


def test_sigusr1_reaches_every_worker(project: Project) -> None:
    """SIGUSR1 (Slurm's `--signal=B:USR1@T` warning) sent to expyrun reaches the workers, as in a
    single run: it killed the --nproc launcher (the default action), and so the whole run."""
    config = project.config(project.entry(ON_USR1))
    process = start([config, "--nproc", "2", "--grace", "5"], cwd=project.root)
    run_dir = project.output / "exp" / "exp.0"
    try:
        wait_for(lambda: _ready(run_dir, 2), 30, "both workers to start")
        os.kill(process.pid, signal.SIGUSR1)
    finally:
        err = _end(process)
    assert process.returncode == 0, err
    assert "rank 0: SIGUSR1" in (run_dir / "outputs.log").read_text()
    assert "rank 1: SIGUSR1" in (run_dir / "outputs.task1.log").read_text()
    assert read_json(run_dir / "run.json")["status"] == "succeeded"
