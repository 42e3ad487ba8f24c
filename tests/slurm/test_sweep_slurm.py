"""Sweeps on a real Slurm (`expyrun CFG --sweep ... --slurm`, issue 16 "Sweeps on Slurm").

Members are no-ops (they record their config, code and times in their run folder, or fail
when a marker file names them), so each test is a few seconds of queueing. Tests wait on the
members' run.json and on `scontrol show job`, never on fixed sleeps.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from support import Project, read_json, run
from test_expyrun_slurm import _job_env, _scontrol

from expyrun.sweep.slurm import MAX_ARRAY_SIZE_VARIABLE

ENTRY = """
from pkg.version import CODE
import json
start = time.time()
if os.path.exists(os.path.join(config["marks"], "fail.%s" % config["seed"])):
    raise RuntimeError("told to fail")
if os.path.exists(os.path.join(config["marks"], "hang.%s" % config["seed"])):
    attempt = os.environ["EXPYRUN_ATTEMPT"]
    open("ready.%s" % attempt, "w").close()
    while not os.path.exists(os.path.join(config["marks"], "go")):
        time.sleep(0.05)
time.sleep(config["sleep"])
with open("entry.json", "w") as file:
    json.dump({"seed": config["seed"], "code": CODE, "start": start, "end": time.time(),
               "task": os.environ.get("SLURM_ARRAY_TASK_ID")}, file)
return {"seed": config["seed"]}
"""
# One CPU and a little memory: two members fit on the test node at once.
SLURM = {"cpus-per-task": 1, "mem": "200M", "time": 5}


def _config(project: Project, sleep: float = 0.5, **slurm: Any) -> Path:
    project.write("pkg/version.py", 'CODE = "original"\n')
    entry = project.entry(ENTRY)
    marks = project.root / "marks"
    marks.mkdir(exist_ok=True)
    extra = {"seed": 0, "sleep": sleep, "marks": str(marks)}
    return project.config(entry, name="s{seed}", extra=extra, __slurm__={**SLURM, **slurm})


def _sweep(slurm, project: Project, config: Path, *flags: str, env: dict[str, str] | None = None):
    """Submit the sweep of seeds 1-6; (sweep id, job ids), the jobs tracked for teardown."""
    args = [config, "--sweep", "seed", "range(1, 7)", "--slurm", *flags]
    result = run(args, cwd=project.root, env={**_job_env(), **(env or {})})
    assert result.code == 0, result.describe()
    sweep_id, *jobs = result.stdout.split()
    for job in jobs:
        slurm.track(job)
    assert jobs, result.describe()
    assert all(job.isdigit() for job in jobs), result.describe()
    return sweep_id, jobs, result


def _sweep_record(project: Project, sweep_id: str) -> dict[str, Any]:
    return read_json(project.output / ".sweeps" / sweep_id / "sweep.json")


def _listed(project: Project, sweep_id: str) -> dict[int, dict[str, Any]]:
    result = run(["ls", "--sweep", sweep_id, "--json", project.output], cwd=project.root)
    assert result.code == 0, result.describe()
    return {m["index"]: m for m in json.loads(result.stdout)["members"]}


def _wait_all(slurm, project: Project, sweep_id: str, statuses: set[str], timeout: float = 90):
    def done() -> dict[int, dict[str, Any]] | None:
        listed = _listed(project, sweep_id)
        ended = all(m["status"] in statuses for m in listed.values())
        return listed if ended else None

    return slurm.wait_for(done, timeout, f"every member of sweep {sweep_id} in {statuses}")


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    most = current = 0
    for _, change in events:  # an end sorts before a start at the same instant
        current += change
        most = max(most, current)
    return most


def _times(run_dir: str) -> tuple[float, float]:
    data = read_json(Path(run_dir) / "run.json")
    start = datetime.fromisoformat(data["started_at"]).timestamp()
    return start, datetime.fromisoformat(data["ended_at"]).timestamp()


@pytest.mark.slurm
@pytest.mark.timeout(120)
def test_sweep_is_one_array_throttled_and_runs_the_code_of_submit_time(slurm, project):
    config = _config(project, hold=True)
    sweep_id, jobs, result = _sweep(slurm, project, config, "--parallel", "2")
    assert len(jobs) == 1, result.describe()
    # Every member is prepared and pending before any runs; the code is edited meanwhile.
    listed = _listed(project, sweep_id)
    assert sorted(listed) == [1, 2, 3, 4, 5, 6]
    assert {m["status"] for m in listed.values()} == {"pending"}, listed
    project.write("pkg/version.py", 'CODE = "edited"\n')
    info = slurm.job_info(jobs[0])
    assert info.get("ArrayTaskThrottle") == "2", info
    swept = _sweep_record(project, sweep_id)
    assert swept["state"] == "submitted"
    assert [(j["job_id"], j["array"]) for j in swept["slurm_jobs"]] == [(jobs[0], "1-6%2")]
    _scontrol("release", jobs[0])

    listed = _wait_all(slurm, project, sweep_id, {"succeeded", "failed", "lost", "cancelled"})
    assert {m["status"] for m in listed.values()} == {"succeeded"}, listed
    for index, member in listed.items():
        entry = read_json(Path(member["run_dir"]) / "entry.json")
        assert entry["seed"] == index
        assert entry["task"] == str(index)
        assert entry["code"] == "original"  # the snapshot of submit time
        record = read_json(Path(member["run_dir"]) / "run.json")
        assert record["slurm"]["array_job_id"] == jobs[0]
        assert record["slurm"]["array_task_id"] == str(index)
        assert record["sweep"]["id"] == sweep_id
    # The node fits two members (one CPU each): the throttle is what the times show only
    # with --parallel 1 (the split test); here Slurm's own ArrayTaskThrottle says %2.
    assert _max_overlap([_times(m["run_dir"]) for m in listed.values()]) <= 2


@pytest.mark.slurm
@pytest.mark.timeout(150)
def test_resume_submits_only_the_failed_member(slurm, project):
    config = _config(project, sleep=0)
    (project.root / "marks" / "fail.3").touch()
    sweep_id, [_first], _ = _sweep(slurm, project, config, "--parallel", "3")
    listed = _wait_all(slurm, project, sweep_id, {"succeeded", "failed", "lost", "cancelled"})
    assert {i: m["status"] for i, m in listed.items() if m["status"] != "succeeded"} == {
        3: "failed"
    }
    (project.root / "marks" / "fail.3").unlink()

    again, [second], result = _sweep(slurm, project, config, "--parallel", "3")
    assert again == sweep_id
    assert "resuming sweep" in result.stderr
    assert "5 done, 1 to rerun, 0 new" in result.stderr
    # A pending array's ArrayTaskId is its spec (`3%3`): the throttle, task 3 alone.
    assert [info["ArrayTaskId"].split("%")[0] for info in slurm.job_infos(second)] == ["3"]
    assert _sweep_record(project, sweep_id)["slurm_jobs"][-1]["array"] == "3%3"
    listed = _wait_all(slurm, project, sweep_id, {"succeeded", "failed", "lost", "cancelled"})
    assert {m["status"] for m in listed.values()} == {"succeeded"}, listed
    assert len(listed[3]["runs"]) == 2  # the failed folder is kept; the rerun is a new one
    assert [len(m["runs"]) for i, m in listed.items() if i != 3] == [1] * 5

    # Nothing left to do: a third submission submits nothing.
    result = run(
        [config, "--sweep", "seed", "range(1, 7)", "--slurm", "--parallel", "3"],
        cwd=project.root,
        env=_job_env(),
    )
    assert result.code == 0, result.describe()
    assert result.stdout.split() == [sweep_id], result.describe()
    assert "nothing submitted" in result.stderr


@pytest.mark.slurm
@pytest.mark.timeout(120)
def test_sweep_larger_than_max_array_size_is_split_and_still_throttled(slurm, project):
    # One at a time: the node fits two members, so only the arrays' chaining keeps it to one.
    config = _config(project, sleep=0.3)
    env = {MAX_ARRAY_SIZE_VARIABLE: "3"}  # task ids 0-2: members 1-2, 3-5, 6
    sweep_id, jobs, result = _sweep(slurm, project, config, "--parallel", "1", env=env)
    assert len(jobs) == 3, result.describe()
    swept = _sweep_record(project, sweep_id)
    assert [j["array"] for j in swept["slurm_jobs"]] == ["1-2%1", "0-2%1", "0%1"]
    assert [j["members"] for j in swept["slurm_jobs"]] == [
        {"1": 1, "2": 2},
        {"0": 3, "1": 4, "2": 5},
        {"0": 6},
    ]
    listed = _wait_all(slurm, project, sweep_id, {"succeeded", "failed", "lost", "cancelled"})
    assert {m["status"] for m in listed.values()} == {"succeeded"}, listed
    for index, member in listed.items():
        assert read_json(Path(member["run_dir"]) / "entry.json")["seed"] == index
    assert _max_overlap([_times(m["run_dir"]) for m in listed.values()]) == 1


@pytest.mark.slurm
@pytest.mark.timeout(90)
def test_stop_sweep_id_cancels_every_array(slurm, project):
    config = _config(project, hold=True)
    env = {MAX_ARRAY_SIZE_VARIABLE: "4"}
    sweep_id, jobs, _ = _sweep(slurm, project, config, env=env)
    assert len(jobs) == 2
    # The same command again while they wait: pending members are not submitted twice.
    args = [config, "--sweep", "seed", "range(1, 7)", "--slurm"]
    again = run(args, cwd=project.root, env={**_job_env(), **env})
    assert again.code == 0, again.describe()
    assert again.stdout.split() == [sweep_id], again.describe()
    assert "0 done, 0 to rerun, 0 new, 6 queued" in again.stderr
    result = run(["stop", sweep_id], cwd=project.root)
    assert result.code == 0, result.describe()
    for job in jobs:
        slurm.wait_for_state(job, {"CANCELLED"})
    listed = _wait_all(slurm, project, sweep_id, {"cancelled"}, timeout=30)
    assert sorted(listed) == [1, 2, 3, 4, 5, 6]


@pytest.mark.slurm
@pytest.mark.timeout(120)
def test_requeued_member_resumes_in_its_own_folder(slurm, project):
    config = _config(project, sleep=0)
    marks = project.root / "marks"
    (marks / "hang.2").touch()
    sweep_id, [job], _ = _sweep(slurm, project, config, "--parallel", "2")
    run_dir = project.output / "s2" / "exp.0"
    slurm.wait_for(lambda: (run_dir / "ready.1").exists(), 60, "member 2 to start")

    _scontrol("requeue", f"{job}_2")
    slurm.wait_for_state(f"{job}_2", {"PENDING"})
    (marks / "go").touch()
    slurm.start_requeued(f"{job}_2")
    listed = _wait_all(slurm, project, sweep_id, {"succeeded", "failed", "lost", "cancelled"})
    assert {m["status"] for m in listed.values()} == {"succeeded"}, listed
    assert listed[2]["runs"] == [str(run_dir)], "the requeued member made a new run folder"
    record = read_json(run_dir / "run.json")
    assert [a["attempt"] for a in record["attempts"]] == [1, 2]
    assert record["slurm"]["array_task_id"] == "2"
    assert record["slurm"]["restart_count"] == 1
    assert sorted(p.name for p in project.output.glob("s2/exp.*")) == ["exp.0"]


@pytest.mark.slurm
@pytest.mark.timeout(60)
def test_sbatch_refusing_the_sweep_leaves_no_run_folder_and_no_sweep(slurm, project):
    config = _config(project, partition="no-such-partition")
    args = [config, "--sweep", "seed", "range(1, 7)", "--slurm"]
    result = run(args, cwd=project.root, env=_job_env())
    assert result.code == 69, result.describe()
    assert "Traceback" not in result.stderr
    assert not project.output.exists() or sorted(project.output.rglob("*")) == [
        project.output / ".sweeps"
    ]


@pytest.mark.slurm
@pytest.mark.timeout(120)
def test_the_sweeps_state_follows_its_members_with_no_process_of_expyrun(slurm, project):
    """Nothing of expyrun's outlives the submission: what is shown comes from the members."""
    config = _config(project, sleep=0, hold=True)
    marks = project.root / "marks"
    (marks / "hang.2").touch()
    (marks / "fail.3").touch()
    sweep_id, [job], _ = _sweep(slurm, project, config, "--parallel", "2")

    def shown() -> dict[str, Any]:
        result = run(["ls", "--sweep", sweep_id, "--json", project.output], cwd=project.root)
        assert result.code == 0, result.describe()
        return json.loads(result.stdout)

    assert (shown()["state"], shown()["summary"]) == ("submitted", {"pending": 6})
    _scontrol("release", job)
    slurm.wait_for(
        lambda: (project.output / "s2" / "exp.0" / "ready.1").exists(), 60, "member 2 to run"
    )
    assert shown()["state"] == "running"
    assert _sweep_record(project, sweep_id)["state"] == "submitted"  # what it was, not is
    (marks / "go").touch()
    _wait_all(slurm, project, sweep_id, {"succeeded", "failed", "lost", "cancelled"})

    document = shown()
    assert (document["state"], document["summary"]) == ("ended", {"succeeded": 5, "failed": 1})
    swept = _sweep_record(project, sweep_id)  # recorded by the first command that saw the end
    assert swept["state"] == "ended"
    assert swept["summary"] == {"succeeded": 5, "failed": 1}
    ends = [read_json(Path(m["run_dir"]) / "run.json")["ended_at"] for m in document["members"]]
    assert swept["ended_at"] == max(ends)
    assert [(m["index"], m["status"]) for m in swept["members"]] == [
        (1, "succeeded"),
        (2, "succeeded"),
        (3, "failed"),
        (4, "succeeded"),
        (5, "succeeded"),
        (6, "succeeded"),
    ]
    listed = run(["ls", "--sweep", sweep_id, project.output], cwd=project.root)
    assert f"sweep {sweep_id} (ended: 5 succeeded, 1 failed)" in listed.stderr, listed.describe()
    stopped = run(["stop", sweep_id], cwd=project.root)
    assert stopped.code == 0, stopped.describe()
    assert f"sweep {sweep_id} is not running (ended: 5 succeeded, 1 failed)" in stopped.stderr

    # A resume submits the failed member again: the sweep is queued again, not ended.
    (marks / "fail.3").unlink()
    again, [second], result = _sweep(slurm, project, config, "--parallel", "2")
    assert again == sweep_id
    assert "5 done, 1 to rerun, 0 new" in result.stderr
    swept = _sweep_record(project, sweep_id)
    assert (swept["state"], swept["ended_at"], swept["summary"]) == ("submitted", None, None)
    assert shown()["state"] in ("submitted", "running")
    _scontrol("release", second)
    _wait_all(slurm, project, sweep_id, {"succeeded", "failed", "lost", "cancelled"})
    assert (shown()["state"], shown()["summary"]) == ("ended", {"succeeded": 6})
