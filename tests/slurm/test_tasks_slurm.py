"""Multi-task jobs on the real local Slurm (issue 16): `srun expyrun` in a job of several
tasks makes one run folder with a record per task; the tasks meet over TCP with the rank
variables expyrun derives from srun's; a task failing fails the run; `--slurm` with `ntasks`.

The test node has 2 CPUs: jobs of 3 tasks ask for `--overcommit` and little memory. All tasks
run on the one node: what needs several nodes (MASTER_ADDR another host than some tasks',
LOCAL_RANK and LOCAL_WORLD_SIZE per node) is covered by the unit tests of srun's variables.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from support import Project, child_env, read_json, run, wait_for
from tasks_support import RENDEZVOUS_ENTRY, met_line, task_log, tasks_of

from expyrun.slurm.tasks import master_port

pytestmark = pytest.mark.slurm
LAUNCHER = Path(__file__).resolve().parents[2] / "launcher"
SMALL_TASKS = ("--overcommit", "--mem=1G", "--cpus-per-task=1")


def _job_env() -> dict[str, str]:
    """The environment of sbatch, and so of the job: this venv's `expyrun` first on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    return child_env({"PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")})


def _srun_job(slurm, project: Project, config: Path, ntasks: int, expected: str) -> str:
    """A batch job running `srun expyrun CONFIG` with `ntasks` tasks; its id once it ended."""
    script = f"srun --kill-on-bad-exit=1 expyrun {config}\n"
    options = [f"--ntasks={ntasks}", *SMALL_TASKS, f"--output={project.root}/slurm-%j.out"]
    job = slurm.submit(script, cwd=project.root, env=_job_env(), options=options)
    slurm.wait_for_state(job, {expected}, timeout=90)
    return job


def test_srun_tasks_share_one_run_folder_and_meet(slurm, project: Project) -> None:
    config = project.config(project.entry(RENDEZVOUS_ENTRY))
    job = _srun_job(slurm, project, config, 3, "COMPLETED")
    (run_dir,) = project.run_dirs()
    record = read_json(run_dir / "run.json")
    assert (record["status"], record["exit_code"]) == ("succeeded", 0)
    assert record["slurm"]["job_id"] == job
    tasks = tasks_of(run_dir)
    assert len(tasks) == 3
    host = os.uname().nodename
    for rank, task in enumerate(tasks):
        assert task["status"] == "succeeded"
        assert task["host"] == host
        assert task["peak_rss_bytes"] > 0
        log = task_log(run_dir, rank)
        # MASTER_ADDR from `scontrol show hostnames`, MASTER_PORT from the job id.
        assert f"rank {rank}/3 local {rank}/3 master {host}:{master_port(job)}" in log, log
        assert met_line(rank, 3) in log
    assert (project.output / "exp" / ".steps" / f"slurm-{job}.0.json").is_file()
    shown = run(["logs", run_dir, "--task", "1"], cwd=project.root)
    assert shown.stdout == task_log(run_dir, 1)


def test_exported_ranks_give_way_to_sruns(slurm, project: Project) -> None:
    """RANK and WORLD_SIZE exported before srun: every task had rank 0, and they never met."""
    config = project.config(project.entry(RENDEZVOUS_ENTRY))
    env = {**_job_env(), "RANK": "0", "WORLD_SIZE": "1"}
    script = f"srun --kill-on-bad-exit=1 expyrun {config}\n"
    options = ["--ntasks=2", *SMALL_TASKS, f"--output={project.root}/slurm-%j.out"]
    job = slurm.submit(script, cwd=project.root, env=env, options=options)
    slurm.wait_for_state(job, {"COMPLETED"}, timeout=90)
    (run_dir,) = project.run_dirs()
    assert [task["status"] for task in tasks_of(run_dir)] == ["succeeded"] * 2
    for rank in range(2):
        assert met_line(rank, 2) in task_log(run_dir, rank)
    warning = (
        "expyrun: warning: task 1 of 2: the environment sets RANK=0, WORLD_SIZE=1, but the "
        "worker gets Slurm's RANK=1, WORLD_SIZE=2"
    )
    assert task_log(run_dir, 1).startswith(warning)
    assert warning in (project.root / f"slurm-{job}.out").read_text()


def test_expyrun_stop_stops_every_srun_task(slurm, project: Project) -> None:
    config = project.config(project.entry(RENDEZVOUS_ENTRY), extra={"wait": True})
    script = f"srun --kill-on-bad-exit=1 expyrun {config} --grace 3\n"
    options = ["--ntasks=3", *SMALL_TASKS, f"--output={project.root}/slurm-%j.out"]
    job = slurm.submit(script, cwd=project.root, env=_job_env(), options=options)
    run_dir = project.output / "exp" / "exp.0"
    wait_for(
        lambda: all((run_dir / f"ready.{rank}").exists() for rank in range(3)),
        60,
        "the 3 srun tasks to start",
    )
    stopped = run(["stop", run_dir], cwd=project.root)
    assert stopped.code == 0, stopped.describe()
    assert "stopping tasks 0, 1, 2 on this host" in stopped.stderr
    slurm.wait_for_state(job, {"COMPLETED", "FAILED", "CANCELLED"}, timeout=60)
    assert read_json(run_dir / "run.json")["status"] == "killed"
    tasks = tasks_of(run_dir)
    assert [(task["status"], task["signal"]) for task in tasks] == [("killed", "SIGTERM")] * 3


def test_a_failing_srun_task_fails_the_run(slurm, project: Project) -> None:
    config = project.config(project.entry(RENDEZVOUS_ENTRY), extra={"fail_rank": 2})
    _srun_job(slurm, project, config, 3, "FAILED")
    (run_dir,) = project.run_dirs()
    record = read_json(run_dir / "run.json")
    assert (record["status"], record["exit_code"]) == ("failed", 1)
    tasks = tasks_of(run_dir)
    assert (tasks[2]["status"], tasks[2]["exit_code"]) == ("failed", 1)
    # srun --kill-on-bad-exit: Slurm stopped the others, waiting for task 2 at the meeting.
    for rank in (0, 1):
        assert (tasks[rank]["status"], tasks[rank]["signal"]) == ("killed", "SIGTERM")
    assert "ValueError: rank 2 fails on purpose" in task_log(run_dir, 2)


def test_the_multi_gpu_recipe(slurm, project: Project, tmp_path: Path) -> None:
    """The recipe, adapted as its users do: the test node has no GPU (its GPU lines go)."""
    recipe = (LAUNCHER / "sbatch-expyrun-multigpu.sh").read_text()
    lines = [line for line in recipe.splitlines() if "-per-gpu" not in line and "gpus-" not in line]
    adapted = tmp_path / "multigpu.sh"
    adapted.write_text("\n".join(lines) + "\n")
    config = project.config(project.entry(RENDEZVOUS_ENTRY))
    options = ["--ntasks-per-node=2", *SMALL_TASKS, f"--output={project.root}/slurm-%j.out"]
    job = slurm.submit(adapted, cwd=project.root, env=_job_env(), options=options, args=[config])
    slurm.wait_for_state(job, {"COMPLETED"}, timeout=90)
    (run_dir,) = project.run_dirs()
    assert [task["status"] for task in tasks_of(run_dir)] == ["succeeded"] * 2
    for rank in range(2):
        assert met_line(rank, 2) in task_log(run_dir, rank)


def test_slurm_submission_of_several_tasks(slurm, project: Project) -> None:
    small = {"ntasks": 2, "overcommit": True, "mem": "1G", "cpus_per_task": 1, "time": 5}
    config = project.config(project.entry(RENDEZVOUS_ENTRY), __slurm__=small)
    result = run([config, "--slurm"], cwd=project.root, env=_job_env())
    assert result.code == 0, result.describe()
    job = slurm.track(result.stdout.splitlines()[0])
    run_dir = Path(result.stdout.splitlines()[-1])
    assert "exec srun --kill-on-bad-exit=1 " in (run_dir / "slurm.sbatch").read_text()
    slurm.wait_for_state(job, {"COMPLETED"}, timeout=90)
    record = read_json(run_dir / "run.json")
    assert record["status"] == "succeeded"
    assert [task["status"] for task in tasks_of(run_dir)] == ["succeeded"] * 2
    for rank in range(2):
        assert met_line(rank, 2) in task_log(run_dir, rank)
