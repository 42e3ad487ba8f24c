"""Multi-task runs, the pure parts: srun's variables, the run's status from its tasks, the
batch script of a job of several tasks, and the record written by many supervisors at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from expyrun.errors import SlurmError, UsageError
from expyrun.launch import task_count
from expyrun.run import record, tasks
from expyrun.run.record import RunRecord
from expyrun.slurm import script as slurm_script
from expyrun.slurm import tasks as slurm_tasks

GOLDEN = Path(__file__).parent / "golden"


def _step(**changes: str) -> dict[str, str]:
    env = {
        "SLURM_JOB_ID": "4242",
        "SLURM_STEP_ID": "1",
        "SLURM_STEP_NUM_TASKS": "6",
        "SLURM_PROCID": "4",
        "SLURM_LOCALID": "1",
        "SLURM_NODEID": "1",
        "SLURM_STEP_TASKS_PER_NODE": "3(x2)",
        "SLURM_STEP_NODELIST": "gpu[07-08]",
        "MASTER_ADDR": "gpu07",
    }
    env.update(changes)
    return {key: value for key, value in env.items() if value != "-"}


def test_a_task_of_a_step_from_sruns_variables() -> None:
    task = slurm_tasks.step_task(_step())
    assert task == tasks.Task(
        rank=4,
        world_size=6,
        local_rank=1,
        local_world_size=3,
        master_addr="gpu07",
        master_port=10000 + 4242 % 20000,
        group="slurm-4242.1",
    )
    # Only what is not set already.
    assert task.environment({"MASTER_PORT": "29500"}) == {
        "RANK": "4",
        "LOCAL_RANK": "1",
        "WORLD_SIZE": "6",
        "LOCAL_WORLD_SIZE": "3",
        "MASTER_ADDR": "gpu07",
    }


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"SLURM_STEP_ID": "-"}, id="batch-step"),
        pytest.param({"SLURM_STEP_NUM_TASKS": "-"}, id="no-step-tasks"),
        pytest.param({"SLURM_STEP_NUM_TASKS": "1"}, id="one-task"),
        pytest.param({"SLURM_JOB_ID": "-"}, id="no-job"),
    ],
)
def test_not_a_multi_task_step(changes: dict[str, str]) -> None:
    assert slurm_tasks.step_task(_step(**changes)) is None


def test_a_requeued_step_is_another_group() -> None:
    task = slurm_tasks.step_task(_step(SLURM_RESTART_COUNT="2"))
    assert task is not None
    assert task.group == "slurm-4242.1.r2"


def test_a_rank_out_of_range_is_a_slurm_error() -> None:
    with pytest.raises(SlurmError, match="SLURM_PROCID is not a rank below 6: '9'"):
        slurm_tasks.step_task(_step(SLURM_PROCID="9"))


@pytest.mark.parametrize(
    ("text", "counts"),
    [("4", [4]), ("2(x3),1", [2, 2, 2, 1]), ("1,3(x2)", [1, 3, 3])],
)
def test_tasks_per_node(text: str, counts: list[int]) -> None:
    assert slurm_tasks.tasks_per_node(text) == counts


@pytest.mark.parametrize(("job_id", "port"), [("1", 10001), ("20000", 10000), ("123456", 13456)])
def test_master_port_from_the_job_id(job_id: str, port: int) -> None:
    assert slurm_tasks.master_port(job_id) == port
    assert 10000 <= port < 30000  # below Linux's ephemeral ports


def _entry(rank: int, status: str, code: int | None = None, **more: Any) -> dict[str, Any]:
    return {"rank": rank, "status": status, "exit_code": code, "signal": None, **more}


BASE = RunRecord(
    status="running",
    run_dir="/r",
    name="n",
    entry="e",
    debug=False,
    command=[],
    cwd="/",
    host="h",
    user="u",
    python={},
    expyrun_version="0",
    pid=1,
    attempts=({"attempt": 1, "status": "running"},),
)


@pytest.mark.parametrize(
    ("entries", "world", "status", "code"),
    [
        pytest.param([_entry(0, "succeeded", 0), _entry(1, "succeeded", 0)], 2, "succeeded", 0),
        pytest.param([_entry(0, "succeeded", 0)], 2, "running", None, id="one-not-reported"),
        pytest.param(
            [_entry(0, "succeeded", 0), _entry(1, "running", host="elsewhere")],
            2,
            "running",
            None,
            id="one-running-elsewhere",
        ),
        pytest.param(
            [_entry(0, "killed", 143), _entry(1, "failed", 3), _entry(2, "failed", 4)],
            3,
            "failed",
            3,
            id="failed-wins-first-by-rank",
        ),
        pytest.param([_entry(0, "succeeded", 0), _entry(1, "killed", 137)], 2, "killed", 137),
        pytest.param([_entry(0, "succeeded", 0), _entry(1, "lost")], 2, "failed", 1, id="lost"),
        pytest.param(
            [_entry(0, "stopped", 0), _entry(1, "succeeded", 0)], 2, "stopped", 0, id="stopped"
        ),
        pytest.param([_entry(0, "stopped", 0), _entry(1, "failed", 2)], 2, "failed", 2),
    ],
)
def test_the_runs_status_from_its_tasks(
    entries: list[dict[str, Any]], world: int, status: str, code: int | None
) -> None:
    merged = tasks.merge(BASE, entries, world)
    assert (merged.status, merged.exit_code) == (status, code)
    assert merged.attempts[-1]["status"] == status
    assert merged.tasks == entries


def test_a_running_task_whose_supervisor_is_gone_is_lost() -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    entry = _entry(1, "running", pid=int(gone.stdout), host=os.uname().nodename)
    merged = tasks.merge(BASE, [_entry(0, "succeeded", 0), entry], 2)
    assert merged.status == "failed"
    assert merged.tasks is not None
    assert merged.tasks[1]["status"] == "lost"


@pytest.mark.parametrize(
    ("mapping", "several"),
    [
        ({"ntasks": 4}, True),
        ({"n": 2}, True),
        ({"ntasks": 1}, False),
        ({"nodes": "2-4"}, True),
        ({"nodes": 1, "ntasks_per_node": 2}, True),
        ({"gres": "gpu:2"}, False),
        ({}, False),
    ],
)
def test_which_options_ask_for_several_tasks(mapping: dict[str, Any], several: bool) -> None:
    assert slurm_script.several_tasks(slurm_script.sbatch_options(mapping)) is several


def test_golden_script_of_a_job_of_several_tasks() -> None:
    from test_slurm import CWD, PYTHON, VERSION, check_golden

    mapping = {"nodes": 2, "ntasks_per_node": 4, "gpus_per_task": 1, "time": "4:00:00"}
    run_dir = Path("/scratch/ada/runs/ddp/exp.0")
    options = slurm_script.script_options(slurm_script.sbatch_options(mapping), "ddp", run_dir, CWD)
    command = ["expyrun", "ddp.yml", "--slurm"]
    text = slurm_script.render_script(PYTHON, {None: run_dir}, options, command, VERSION)
    check_golden("tasks-2x4.sbatch", text)
    assert text.splitlines()[-1].startswith("exec srun --kill-on-bad-exit=1 ")


WRITER = """
import sys, time
from pathlib import Path
from expyrun.run import record, tasks
rank, world, run_dir = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
task = tasks.Task(rank, world, rank, world, "127.0.0.1", 1, "test")
own = record.read_record(run_dir)
while not (run_dir / "go").exists():
    time.sleep(0.001)
for i in range(20):
    tasks.write_task_record(run_dir, task, own.replace(status="succeeded", exit_code=0, pid=i))
"""


def test_supervisors_writing_at_once_lose_no_task(tmp_path: Path) -> None:
    world = 6
    record.write_record(tmp_path, BASE.replace(run_dir=str(tmp_path)))
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(rank), str(world), str(tmp_path)])
        for rank in range(world)
    ]
    (tmp_path / "go").touch()
    assert [writer.wait(timeout=60) for writer in writers] == [0] * world
    data = json.loads((tmp_path / "run.json").read_text())
    assert [entry["rank"] for entry in data["tasks"]] == list(range(world))
    assert data["status"] == "succeeded"
    assert sorted(os.listdir(tmp_path / ".tasks")) == [f"task.{r}.json" for r in range(world)]


def test_a_job_of_several_tasks_is_not_requeued() -> None:
    from expyrun.errors import ConfigError

    options = slurm_script.script_options(
        slurm_script.sbatch_options({"ntasks": 2}), "n", Path("/r"), Path("/")
    )
    assert ("no-requeue", None) in options
    assert ("requeue", None) not in options
    with pytest.raises(ConfigError, match="a job of several tasks cannot be requeued"):
        slurm_script.script_options(
            slurm_script.sbatch_options({"ntasks": 2, "requeue": True}), "n", Path("/r"), Path("/")
        )


@pytest.mark.parametrize(
    ("cpus", "limit"),
    [
        pytest.param(1, 64, id="floor"),
        pytest.param(8, 64, id="8-cpus"),
        pytest.param(32, 256, id="8-per-cpu"),
    ],
)
def test_the_nproc_limit_is_eight_per_cpu_and_at_least_64(cpus: int, limit: int) -> None:
    assert task_count.nproc_limit(cpus) == limit


def test_nproc_past_the_limit_is_a_usage_error() -> None:
    task_count.check_nproc(task_count.nproc_limit())
    with pytest.raises(UsageError, match=r"--nproc takes from 1 to \d+ workers on this machine"):
        task_count.check_nproc(task_count.nproc_limit() + 1)


def _past(tasks: list[dict[str, Any]] | None, command: list[str] | None = None) -> RunRecord:
    return BASE._replace(tasks=tasks, command=command or [])


def _nproc_tasks(world: int, group: str | None = "local-77") -> list[dict[str, Any]]:
    return [
        _entry(rank, "succeeded", 0, **({"group": group} if group else {})) for rank in range(world)
    ]


@pytest.mark.parametrize(
    ("past", "flags", "expected", "said"),
    [
        pytest.param(_nproc_tasks(3), {}, 3, "it ran 3 workers (--nproc 3)", id="nproc-run"),
        pytest.param(_nproc_tasks(1), {}, 1, "it ran 1 worker (--nproc 1)", id="nproc-1"),
        pytest.param(_nproc_tasks(3), {"nproc": 5}, 5, "", id="explicit-wins"),
        pytest.param(_nproc_tasks(3), {"detach": True}, 0, "--detach starts one", id="detach"),
        pytest.param(_nproc_tasks(3), {"slurm": True}, 0, "--slurm starts one", id="slurm"),
        pytest.param(_nproc_tasks(2, None), {}, 0, "2 tasks of a Slurm job step", id="no-group"),
        pytest.param(_nproc_tasks(4, "slurm-9.0"), {}, 0, "srun --ntasks=4", id="srun-run"),
        pytest.param(None, {}, 0, "", id="single"),
    ],
)
def test_a_rerun_or_reproduce_runs_as_many_workers_as_the_run(
    past: list[dict[str, Any]] | None,
    flags: dict[str, Any],
    expected: int,
    said: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from expyrun.launch.options import LaunchOptions

    monkeypatch.delenv("SLURM_STEP_ID", raising=False)
    options = task_count.as_it_ran(_past(past), Path("/r"), LaunchOptions("c.yml", **flags))
    assert options.nproc == expected
    assert said in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        pytest.param(["expyrun", "c.yml", "--nproc", "3"], 3, id="spaced"),
        pytest.param(["expyrun", "c.yml", "--nproc=4", "--lr", "1"], 4, id="equals"),
        pytest.param(["expyrun", "rerun", "/r"], 0, id="none"),
    ],
)
def test_the_nproc_of_a_record_without_groups_is_read_from_its_command(
    command: list[str], expected: int
) -> None:
    assert task_count.recorded_nproc(_past(_nproc_tasks(2, None), command)) == expected


def test_a_rerun_in_a_step_of_several_tasks_keeps_sruns_tasks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from expyrun.launch.options import LaunchOptions

    for name, value in _step().items():
        monkeypatch.setenv(name, value)
    assert (
        task_count.as_it_ran(_past(_nproc_tasks(3)), Path("/r"), LaunchOptions("c.yml")).nproc == 0
    )


def test_an_exported_rank_gives_way_to_the_tasks_and_is_warned_of() -> None:
    task = slurm_tasks.step_task(_step())
    assert task is not None
    exported = {"RANK": "0", "LOCAL_RANK": "1", "WORLD_SIZE": "6", "MASTER_PORT": "29500"}
    assert task.environment(exported) == {
        "RANK": "4",
        "LOCAL_RANK": "1",
        "WORLD_SIZE": "6",
        "LOCAL_WORLD_SIZE": "3",
        "MASTER_ADDR": "gpu07",
    }
    assert task.rank_warning(exported) == (
        "task 4 of 6: the environment sets RANK=0, but the worker gets Slurm's RANK=4 (an "
        "exported value is the same in every task: ranks would repeat); unset RANK to silence this"
    )
    assert task.rank_warning({"RANK": "4", "WORLD_SIZE": "6"}) is None
    assert task.rank_warning({}) is None
