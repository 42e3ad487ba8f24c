"""Multi-task runs without Slurm: `--nproc N`, and the tasks of a simulated job step.

A simulated step is N `expyrun` processes with the variables srun would give them (no Slurm
is asked: MASTER_ADDR is given). The real thing is in tests/slurm/test_tasks_slurm.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from support import Project, read_json, run, start, wait_for
from tasks_support import RENDEZVOUS_ENTRY, met_line, step_env, task_log, tasks_of

PRINT_RANK = """
print("rank", os.environ["RANK"], "of", os.environ["WORLD_SIZE"], flush=True)
print("port", os.environ["MASTER_PORT"], file=sys.stderr, flush=True)
"""


def _reap(processes: list[subprocess.Popen[bytes]], timeout: float = 60) -> list[int]:
    codes = []
    for process in processes:
        try:
            process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise AssertionError(f"task {process.args} did not end") from None
        codes.append(process.returncode)
    return codes


# --- --nproc ---------------------------------------------------------------------------------


def _wait_for_workers(run_dir: Path, count: int) -> None:
    """Until the first `count` ranks' entries wrote their `ready.RANK` file."""
    wait_for(
        lambda: all((run_dir / f"ready.{rank}").exists() for rank in range(count)),
        30,
        f"the {count} workers to start",
    )


def test_nproc_workers_meet_and_share_one_run_folder(project: Project) -> None:
    config = project.config(project.entry(RENDEZVOUS_ENTRY))
    result = run([config, "--nproc", "3"], cwd=project.root)
    assert result.code == 0, result.describe()
    assert project.run_dirs() == [result.run_dir]
    run_dir = result.run_dir
    for rank in range(3):
        log = task_log(run_dir, rank)
        assert f"rank {rank}/3 local {rank}/3 master 127.0.0.1:" in log
        assert met_line(rank, 3) in log
    record = read_json(run_dir / "run.json")
    assert record["status"] == "succeeded"
    assert record["exit_code"] == 0
    tasks = tasks_of(run_dir)
    assert [task["status"] for task in tasks] == ["succeeded"] * 3
    logs = ["outputs.log", "outputs.task1.log", "outputs.task2.log"]
    assert [task["log"] for task in tasks] == logs
    assert len({task["pid"] for task in tasks}) == 3
    for task in tasks:
        assert task["host"] == os.uname().nodename
        assert task["peak_rss_bytes"] > 0
        assert task["cpu_user_s"] is not None
    # `logs --task N` shows one task's output.
    shown = run(["logs", run_dir, "--task", "2"], cwd=project.root)
    assert shown.code == 0
    assert shown.stdout == task_log(run_dir, 2)
    missing = run(["logs", run_dir, "--task", "3"], cwd=project.root)
    assert missing.code == 2
    assert "the run has no task 3 (its tasks are 0, 1, 2)" in missing.stderr


def test_a_failing_worker_stops_the_others_and_fails_the_run(project: Project) -> None:
    config = project.config(project.entry(RENDEZVOUS_ENTRY), extra={"fail_rank": 1})
    result = run([config, "--nproc", "3", "--grace", "5"], cwd=project.root)
    assert result.code == 1, result.describe()
    assert "task 1 ended with exit code 1: stopping the other tasks" in result.stderr
    run_dir = result.run_dir
    record = read_json(run_dir / "run.json")
    assert (record["status"], record["exit_code"]) == ("failed", 1)
    tasks = tasks_of(run_dir)
    assert tasks[1]["status"] == "failed"
    assert tasks[1]["exit_code"] == 1
    for rank in (0, 2):  # waiting for the failed task: stopped by SIGTERM
        assert tasks[rank]["status"] == "killed", tasks[rank]
        assert tasks[rank]["signal"] == "SIGTERM"
    assert "ValueError: rank 1 fails on purpose" in task_log(run_dir, 1)
    status = run(["status", run_dir], cwd=project.root)
    assert status.code == 1
    assert "tasks      3 (expyrun logs RUN --task N)" in status.stdout
    assert "  1. failed, exit 1 on " in status.stdout
    # (" on HOST" follows when the task had started its worker before the SIGTERM)
    assert "  2. killed (SIGTERM), exit 143" in status.stdout


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_stops_every_worker(project: Project, signum: int) -> None:
    config = project.config(project.entry(RENDEZVOUS_ENTRY), extra={"wait": True})
    process = start([config, "--nproc", "2", "--grace", "5"], cwd=project.root)
    try:
        run_dir = project.output / "exp" / "exp.0"
        _wait_for_workers(run_dir, 2)
        os.kill(process.pid, signum)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 128 + signum, err.decode()
    record = read_json(run_dir / "run.json")
    assert record["status"] == "killed"
    name = signal.Signals(signum).name
    assert [(task["status"], task["signal"]) for task in tasks_of(run_dir)] == [
        ("killed", name),
        ("killed", name),
    ]


def test_expyrun_stop_stops_every_worker(project: Project) -> None:
    config = project.config(project.entry(RENDEZVOUS_ENTRY), extra={"wait": True})
    process = start([config, "--nproc", "2", "--grace", "5"], cwd=project.root)
    run_dir = project.output / "exp" / "exp.0"
    try:
        _wait_for_workers(run_dir, 2)
        stopped = run(["stop", run_dir], cwd=project.root)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert stopped.code == 0, stopped.describe()
    assert process.returncode == 143
    assert read_json(run_dir / "run.json")["status"] == "killed"
    assert [task["status"] for task in tasks_of(run_dir)] == ["killed", "killed"]


# Ends with exit 0 on SIGTERM (a checkpoint, then a clean exit): one task stopping this way
# fails no task, so its launcher would stop no other.
STOPS_CLEANLY = """
import signal
rank = int(os.environ["RANK"])

def stop(signum, frame):
    print(f"rank {rank} stopping", flush=True)
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
open(f"ready.{rank}", "w").close()
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    time.sleep(0.05)
sys.exit(3)
"""


def _gone(task: dict) -> bool:
    """Whether the task's supervisor and worker have both ended (neither pid runs as them)."""
    from expyrun.run.process_identity import process_matches

    host = task["host"]
    return not process_matches(task["pid"], host, task["pid_started_at"]) and not (
        process_matches(task["child_pid"], host, None) and _is_worker(task["child_pid"])
    )


def _is_worker(pid: int) -> bool:
    try:
        return b"expyrun" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_expyrun_stop_stops_every_task_of_an_nproc_run(project: Project) -> None:
    """Through the launcher: every task gets SIGTERM once, and each ends `stopped`."""
    config = project.config(project.entry(STOPS_CLEANLY))
    process = start([config, "--nproc", "3", "--grace", "10"], cwd=project.root)
    run_dir = project.output / "exp" / "exp.0"
    try:
        _wait_for_workers(run_dir, 3)
        stopped = run(["stop", run_dir], cwd=project.root)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert stopped.code == 0, stopped.describe()
    assert "stopping the run's tasks through their launcher" in stopped.stderr
    assert process.returncode == 0, err.decode()
    record = read_json(run_dir / "run.json")
    assert record["status"] == "stopped"
    tasks = tasks_of(run_dir)
    assert [task["status"] for task in tasks] == ["stopped"] * 3
    for task in tasks:
        assert f"rank {task['rank']} stopping\n" in task_log(run_dir, task["rank"])
        assert _gone(task)


IGNORES_SIGTERM = """
import signal
rank = int(os.environ["RANK"])
signal.signal(signal.SIGTERM, lambda signum, frame: print(f"rank {rank} goes on", flush=True))
open(f"ready.{rank}", "w").close()
time.sleep(300)
"""


def test_expyrun_stop_kill_kills_every_task_at_once(project: Project) -> None:
    """The launcher forwards the second SIGTERM once each task took the first: they did merge,
    and every task but one waited out its grace (300 s here: the stop would time out)."""
    config = project.config(project.entry(IGNORES_SIGTERM))
    process = start([config, "--nproc", "3", "--grace", "300"], cwd=project.root)
    run_dir = project.output / "exp" / "exp.0"
    try:
        _wait_for_workers(run_dir, 3)
        stopped = run(["stop", run_dir, "--kill"], cwd=project.root, timeout=60)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert stopped.code == 0, stopped.describe()
    tasks = tasks_of(run_dir)
    assert [(task["status"], task["killed_after_grace"]) for task in tasks] == [
        ("killed", True)
    ] * 3
    assert all(_gone(task) for task in tasks)


def test_the_workers_stop_when_the_launcher_is_killed(project: Project) -> None:
    config = project.config(project.entry(RENDEZVOUS_ENTRY), extra={"wait": True})
    process = start([config, "--nproc", "2", "--grace", "5"], cwd=project.root)
    run_dir = project.output / "exp" / "exp.0"
    try:
        _wait_for_workers(run_dir, 2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the launcher alone: the tasks have sessions
        process.communicate()
    wait_for(
        lambda: read_json(run_dir / "run.json")["status"] == "killed", 30, "the run to be stopped"
    )
    assert [(task["status"], task["signal"]) for task in tasks_of(run_dir)] == [
        ("killed", "SIGTERM"),
        ("killed", "SIGTERM"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--nproc", "0"], "--nproc takes a number of workers >= 1, got '0'", id="0"),
        pytest.param(["--nproc", "x"], "--nproc takes a number of workers >= 1, got 'x'", id="x"),
        pytest.param(["--nproc=-1"], "--nproc takes a number of workers >= 1, got '-1'", id="-1"),
        pytest.param(["--nproc", "1.5"], "workers >= 1, got '1.5'", id="float"),
        # A digit to str.isdigit, not to int(): this was an internal error (exit 70).
        pytest.param(["--nproc", "\u00b2"], "workers >= 1, got '\u00b2'", id="superscript"),
        pytest.param(["--nproc", "9" * 5000], "got a 5000-digit number", id="5000-digits"),
        # No upper bound forked that many task supervisors.
        pytest.param(["--nproc", "100000"], "--nproc takes from 1 to ", id="100000"),
        pytest.param(["--nproc", "9" * 18], "workers on this machine, got 9999", id="18-digits"),
        pytest.param(["--nproc", "2", "--slurm"], "--nproc and --slurm exclude", id="slurm"),
        pytest.param(["--nproc", "2", "--detach"], "--nproc cannot be detached", id="detach"),
    ],
)
def test_bad_nproc_is_refused_before_anything_is_made(
    project: Project, args: list[str], message: str
) -> None:
    config = project.config(project.entry(PRINT_RANK))
    result = run([config, *args], cwd=project.root)
    assert result.code == 2, result.describe()
    assert result.stderr.startswith("expyrun: error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert not project.output.exists()


def _ranks_printed(run_dir: Path, world: int) -> list[str]:
    return [task_log(run_dir, rank).splitlines()[0] for rank in range(world)]


def test_exported_ranks_give_way_to_the_nproc_workers_with_a_warning(project: Project) -> None:
    config = project.config(project.entry(PRINT_RANK))
    result = run([config, "--nproc", "2"], cwd=project.root, env={"RANK": "5", "WORLD_SIZE": "9"})
    assert result.code == 0, result.describe()
    warning = (
        "expyrun: warning: the environment sets RANK=5, WORLD_SIZE=9, but each of the 2 workers "
        "gets its own (as torchrun's do); unset RANK WORLD_SIZE to silence this"
    )
    assert result.stderr.count(warning) == 1, result.stderr
    assert _ranks_printed(result.run_dir, 2) == ["rank 0 of 2", "rank 1 of 2"]


def test_a_rerun_runs_as_many_workers_as_the_run_had(project: Project) -> None:
    """A rerun (and a rerun of it) of a `--nproc 3` run starts 3 workers; `--nproc M` wins."""
    config = project.config(project.entry(PRINT_RANK))
    first = run([config, "--nproc", "3"], cwd=project.root)
    assert first.code == 0, first.describe()
    again = run(["rerun", first.run_dir], cwd=project.root)
    assert again.code == 0, again.describe()
    assert "it ran 3 workers (--nproc 3): so does this run" in again.stderr
    assert _ranks_printed(again.run_dir, 3) == [f"rank {rank} of 3" for rank in range(3)]
    assert [task["status"] for task in tasks_of(again.run_dir)] == ["succeeded"] * 3
    assert all(task["group"].startswith("local-") for task in tasks_of(again.run_dir))
    # A rerun of the rerun (its command line has no --nproc: its tasks say it), with --nproc 2.
    fewer = run(["rerun", again.run_dir, "--nproc", "2"], cwd=project.root)
    assert fewer.code == 0, fewer.describe()
    assert len(tasks_of(fewer.run_dir)) == 2
    assert _ranks_printed(fewer.run_dir, 2) == ["rank 0 of 2", "rank 1 of 2"]
    assert again.run_dir != fewer.run_dir


def test_a_rerun_of_a_record_without_task_groups_reads_its_command_line(
    project: Project,
) -> None:
    """A record written before task entries named their group: `--nproc=2` in its command."""
    config = project.config(project.entry(PRINT_RANK))
    first = run([config, "--nproc=2"], cwd=project.root)
    assert first.code == 0, first.describe()
    record = read_json(first.run_dir / "run.json")
    for task in record["tasks"]:
        del task["group"]
    (first.run_dir / "run.json").write_text(json.dumps(record))
    again = run(["rerun", first.run_dir], cwd=project.root)
    assert again.code == 0, again.describe()
    assert _ranks_printed(again.run_dir, 2) == ["rank 0 of 2", "rank 1 of 2"]


# --- simulated job steps ----------------------------------------------------------------------


def test_tasks_starting_at_once_share_one_run_folder(project: Project) -> None:
    config = project.config(project.entry(PRINT_RANK))
    world = 4
    tasks = [
        start([config], cwd=project.root, env=step_env(rank, world, job_id="7101"))
        for rank in range(world)
    ]
    assert _reap(tasks) == [0] * world
    (run_dir,) = project.run_dirs()
    record = read_json(run_dir / "run.json")
    assert record["status"] == "succeeded"
    assert [task["status"] for task in tasks_of(run_dir)] == ["succeeded"] * world
    for rank in range(world):
        log = task_log(run_dir, rank)
        assert f"rank {rank} of {world}\n" in log
        assert "port 17101\n" in log  # derived from the job id
    assert (project.output / "exp" / ".steps" / "slurm-7101.0.json").is_file()


def test_exported_ranks_give_way_to_the_steps_with_a_warning(project: Project) -> None:
    """RANK/WORLD_SIZE exported before srun are the same in every task: Slurm's win, said."""
    config = project.config(project.entry(PRINT_RANK))
    world = 2
    exported = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}
    tasks = [
        start([config], cwd=project.root, env=step_env(rank, world, job_id="7105", **exported))
        for rank in range(world)
    ]
    outputs = [process.communicate(timeout=60) for process in tasks]
    assert [process.returncode for process in tasks] == [0, 0], outputs
    (run_dir,) = project.run_dirs()
    for rank, (_, err) in enumerate(outputs):
        warning = (
            f"expyrun: warning: task {rank} of 2: the environment sets "
            + ("WORLD_SIZE=1" if rank == 0 else "RANK=0, LOCAL_RANK=0, WORLD_SIZE=1")
            + ", but the worker gets Slurm's "
            + ("WORLD_SIZE=2" if rank == 0 else "RANK=1, LOCAL_RANK=1, WORLD_SIZE=2")
        )
        stderr = err.decode()
        assert stderr.count(warning) == 1, stderr
        log = task_log(run_dir, rank)
        assert log.startswith(warning), log  # outputs.log too, first
        assert f"rank {rank} of {world}\n" in log
        assert log.count("expyrun: warning:") == 1
    assert [task["status"] for task in tasks_of(run_dir)] == ["succeeded"] * world
    shown = run(["logs", run_dir, "--task", "1"], cwd=project.root)
    assert shown.stdout.startswith("expyrun: warning: task 1 of 2"), shown.describe()


def test_expyrun_stop_stops_every_task_of_a_step(project: Project) -> None:
    """srun's tasks on this host: each task's supervisor is signalled (no launcher here)."""
    config = project.config(project.entry(RENDEZVOUS_ENTRY), extra={"wait": True})
    world = 3
    tasks = [
        start([config, "--grace", "10"], cwd=project.root, env=step_env(rank, world, "7106"))
        for rank in range(world)
    ]
    try:
        run_dir = project.output / "exp" / "exp.0"
        _wait_for_workers(run_dir, world)
        stopped = run(["stop", run_dir], cwd=project.root)
        codes = _reap(tasks, timeout=30)
    finally:
        for process in tasks:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
    assert stopped.code == 0, stopped.describe()
    assert "stopping tasks 0, 1, 2 on this host" in stopped.stderr
    assert codes == [128 + signal.SIGTERM] * world
    assert read_json(run_dir / "run.json")["status"] == "killed"
    entries = tasks_of(run_dir)
    assert [(task["status"], task["signal"]) for task in entries] == [("killed", "SIGTERM")] * 3
    assert all(_gone(task) for task in entries)


def test_expyrun_stop_stops_a_task_that_starts_while_it_waits(project: Project) -> None:
    """srun starts a step's tasks one by one: one recorded after `stop` began is stopped too
    (here while tasks 0 and 1, which take SIGTERM for a message, wait out their grace)."""
    config = project.config(project.entry(IGNORES_SIGTERM))
    world = 3
    run_dir = project.output / "exp" / "exp.0"

    def task(rank: int) -> subprocess.Popen[bytes]:
        env = step_env(rank, world, "7107")
        return start([config, "--grace", "4"], cwd=project.root, env=env)

    tasks = [task(0), task(1)]
    stopping = None
    try:
        _wait_for_workers(run_dir, 2)
        stopping = start(["stop", run_dir], cwd=project.root)
        wait_for(
            lambda: all("goes on" in task_log(run_dir, rank) for rank in (0, 1)),
            30,
            "tasks 0 and 1 to get the SIGTERM",
        )
        tasks.append(task(2))
        codes = _reap(tasks, timeout=30)
        _, err = stopping.communicate(timeout=30)
    finally:
        for process in [*tasks, *([stopping] if stopping else [])]:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
    assert stopping.returncode == 0, err.decode()
    assert "stopping task 2, started since" in err.decode()
    assert codes == [128 + signal.SIGTERM] * world
    entries = tasks_of(run_dir)
    assert [(task["status"], task["signal"]) for task in entries] == [("killed", "SIGTERM")] * 3
    assert read_json(run_dir / "run.json")["status"] == "killed"


def test_expyrun_stop_names_the_hosts_of_tasks_it_cannot_reach(project: Project) -> None:
    config = project.config(project.entry(PRINT_RANK))
    done = run([config, "--nproc", "2"], cwd=project.root)
    assert done.code == 0, done.describe()
    record = read_json(done.run_dir / "run.json")  # as if it ran on two other nodes
    record["status"] = "running"
    record["host"] = "node-a"
    for task in record["tasks"]:
        task.update(status="running", host=f"node-{'ab'[task['rank']]}")
    (done.run_dir / "run.json").write_text(json.dumps(record))
    stopped = run(["stop", done.run_dir], cwd=project.root)
    assert stopped.code == 2, stopped.describe()
    assert stopped.stderr.splitlines() == [
        f"expyrun: error: {done.run_dir}: the run's tasks run on other hosts (task 0 on node-a; "
        "task 1 on node-b: run `expyrun stop` there)"
    ]


def test_tasks_wait_for_a_slow_task_0(project: Project) -> None:
    config = project.config(project.entry(PRINT_RANK))
    world = 3
    # An exported MASTER_PORT wins over the derived one.
    env = {rank: step_env(rank, world, job_id="7102", MASTER_PORT="12999") for rank in range(3)}
    others = [start([config], cwd=project.root, env=env[rank]) for rank in (1, 2)]
    try:
        for process in others:  # each says it waits (task 0 has not started at all)
            assert process.stderr is not None
            line = process.stderr.readline().decode()
            assert "waiting for task 0's run folder" in line, line
        assert project.run_dirs() == []
        first = start([config], cwd=project.root, env=env[0])
    except BaseException:
        _reap_killed(others)
        raise
    assert _reap([first, *others]) == [0, 0, 0]
    (run_dir,) = project.run_dirs()
    assert [task["status"] for task in tasks_of(run_dir)] == ["succeeded"] * 3
    assert "port 12999" in task_log(run_dir, 2)


def test_tasks_stop_when_task_0_fails_before_the_run(project: Project) -> None:
    config = project.config("pkg.missing:main")
    world = 3
    tasks = [
        start([config], cwd=project.root, env=step_env(rank, world, job_id="7103"))
        for rank in range(world)
    ]
    outputs = [process.communicate(timeout=60) for process in tasks]
    codes = [process.returncode for process in tasks]
    assert codes == [2, 2, 2], outputs
    for rank in (1, 2):
        err = outputs[rank][1].decode()
        assert f"task {rank} of 3 (slurm-7103.0): task 0 failed before the run:" in err, err
    assert project.run_dirs() == []


def test_a_task_waits_a_bounded_time_for_task_0(project: Project) -> None:
    config = project.config(project.entry(PRINT_RANK))
    result = run(
        [config], cwd=project.root, env=step_env(1, 2, job_id="7104", EXPYRUN_TASK_WAIT="0.2")
    )
    assert result.code == 2, result.describe()
    claim = project.output / "exp" / ".steps" / "slurm-7104.0.json"
    assert result.stderr.splitlines()[-1].startswith(
        f"expyrun: error: {claim}: task 1 of 2 (slurm-7104.0): task 0 published no run folder "
        "within 0.2 s (is task 0 running expyrun with the same config?"
    )
    assert "Traceback" not in result.stderr
    assert project.run_dirs() == []


def test_a_batch_step_alone_is_one_task(project: Project) -> None:
    """`expyrun` in a batch script with --ntasks=4: no step id, no step task count: one task."""
    config = project.config(project.entry('print("alone", "RANK" in os.environ)'))
    env = {"SLURM_JOB_ID": "7105", "SLURM_NTASKS": "4", "SLURM_PROCID": "0"}
    result = run([config], cwd=project.root, env=env)
    assert result.code == 0, result.describe()
    assert result.log == b"alone False\n"
    assert read_json(result.run_dir / "run.json")["tasks"] is None


def _reap_killed(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


def test_task_logs_of_a_single_run(project: Project, tmp_path: Path) -> None:
    config = project.config(project.entry('print("one")'))
    result = run([config], cwd=project.root)
    assert result.code == 0
    shown = run(["logs", result.run_dir, "--task", "0"], cwd=project.root)
    assert (shown.code, shown.stdout) == (0, "one\n")
    other = run(["logs", result.run_dir, "--task", "1"], cwd=project.root)
    assert other.code == 2
    assert "the run has no task 1 (it has one task: 0)" in other.stderr
