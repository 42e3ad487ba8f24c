"""Attempts in run.json: a requeued Slurm job runs its run folder again, each start an attempt.

The record's top level describes the current attempt; `attempts` keeps one entry per attempt,
the earlier ones as they ended.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from expyrun.run import record
from expyrun.run.record import NOT_STARTED, RunRecord

PREPARED = RunRecord(
    status="prepared",
    run_dir="/runs/mnist/exp.0",
    name="mnist",
    entry="pkg.main:main",
    debug=False,
    command=["expyrun", "c.yml", "--slurm"],
    cwd="/home/ada/project",
    host="login1",
    user="ada",
    python={"executable": "/usr/bin/python3", "version": "3.11.2"},
    expyrun_version="0.0.0",
    requirements="frozen_requirements.txt",
    grace_s=10.0,
)
PENDING = PREPARED.replace(status="pending", slurm={"job_id": "4242", "script": "slurm.sbatch"})
JOB = {"job_id": "4242", "node_list": "node01", "restart_count": 0}


def _start(
    current: RunRecord, host: str, restart: int, started_at: str, pid: int = 100
) -> RunRecord:
    """What the supervisor writes when its worker has started (`run_prepared`)."""
    earlier = record.earlier_attempts(current)
    return record.new_attempt(
        current,
        earlier,
        host=host,
        pid=pid,
        pid_started_at=1000.0 + pid,
        child_pid=pid + 1,
        started_at=started_at,
        grace_s=8.0,
        slurm={**(current.slurm or {}), **JOB, "node_list": host, "restart_count": restart},
    )


def _end(current: RunRecord, status: str, **fields: object) -> RunRecord:
    """What the supervisor writes when the attempt has ended."""
    return record.end_attempt(
        current,
        status=status,
        ended_at=fields.pop("ended_at", "2024-05-02T10:05:00.000+00:00"),
        duration_s=fields.pop("duration_s", 300.0),
        peak_rss_bytes=1 << 20,
        cpu_user_s=1.5,
        cpu_system_s=0.5,
        output_bytes=2048,
        **fields,
    )


def test_a_first_attempt() -> None:
    assert record.earlier_attempts(PENDING) == []
    running = _start(PENDING, "node01", 0, "2024-05-02T10:00:00.000+00:00")
    assert running.status == "running"
    assert (running.host, running.pid, running.child_pid) == ("node01", 100, 101)
    assert running.slurm == {"script": "slurm.sbatch", **JOB, "node_list": "node01"}
    assert running.attempts == (
        {
            "attempt": 1,
            "status": "running",
            "started_at": "2024-05-02T10:00:00.000+00:00",
            "ended_at": None,
            "duration_s": None,
            "exit_code": None,
            "signal": None,
            "killed_after_grace": False,
            "host": "node01",
            "slurm_job_id": "4242",
            "restart_count": 0,
        },
    )


def test_end_attempt_fills_the_top_level_and_the_last_entry() -> None:
    running = _start(PENDING, "node01", 0, "2024-05-02T10:00:00.000+00:00")
    ended = _end(running, "killed", exit_code=143, signal="SIGTERM", killed_after_grace=True)
    assert (ended.status, ended.exit_code, ended.signal) == ("killed", 143, "SIGTERM")
    assert ended.killed_after_grace is True
    assert ended.peak_rss_bytes == 1 << 20
    (entry,) = ended.attempts
    assert entry["attempt"] == 1
    assert entry["status"] == "killed"
    assert entry["exit_code"] == 143
    assert entry["signal"] == "SIGTERM"
    assert entry["killed_after_grace"] is True
    assert entry["ended_at"] == "2024-05-02T10:05:00.000+00:00"
    assert entry["duration_s"] == 300.0
    assert "peak_rss_bytes" not in entry  # only ATTEMPT_FIELDS, the rest is the run's


def test_a_second_attempt_keeps_the_first_as_it_ended() -> None:
    first = _start(PENDING, "node01", 0, "2024-05-02T10:00:00.000+00:00")
    first = _end(first, "killed", exit_code=143, signal="SIGTERM")
    first = first.replace(slurm={**(first.slurm or {}), "end_reason": "Preempted"})
    first = record.end_attempt(first)  # the reason reaches the entry as the pipeline writes it
    first_entry = dict(first.attempts[0])

    second = _start(first, "node07", 1, "2024-05-02T11:00:00.000+00:00", pid=200)
    assert second.status == "running"
    assert (second.host, second.pid, second.child_pid) == ("node07", 200, 201)
    # The top level describes the new attempt: what the first left is cleared.
    for name in ("ended_at", "duration_s", "exit_code", "signal", "peak_rss_bytes"):
        assert getattr(second, name) is None, name
    assert second.killed_after_grace is False
    assert second.started_at == "2024-05-02T11:00:00.000+00:00"
    # The run's own fields stay.
    assert (second.requirements, second.run_dir, second.user) == (
        "frozen_requirements.txt",
        "/runs/mnist/exp.0",
        "ada",
    )
    assert len(second.attempts) == 2
    assert second.attempts[0] == first_entry
    assert second.attempts[0]["slurm_end_reason"] == "Preempted"
    assert second.attempts[0]["host"] == "node01"
    assert second.attempts[1]["attempt"] == 2
    assert second.attempts[1]["status"] == "running"
    assert second.attempts[1]["host"] == "node07"
    assert second.attempts[1]["restart_count"] == 1

    done = _end(second, "succeeded", exit_code=0)
    assert [entry["status"] for entry in done.attempts] == ["killed", "succeeded"]
    assert done.attempts[0] == first_entry
    assert done.attempts[1]["exit_code"] == 0
    assert done.exit_code == 0


def test_a_second_attempt_does_not_change_what_it_was_given() -> None:
    first = _end(_start(PENDING, "node01", 0, "t0"), "killed", exit_code=143)
    earlier = record.earlier_attempts(first)
    before = [dict(entry) for entry in earlier]
    second = record.new_attempt(first, earlier, host="node07", started_at="t1")
    second = _end(second, "failed", exit_code=1)
    assert earlier == before
    assert first.status == "killed"
    assert first.attempts[0]["status"] == "killed"
    earlier[0]["status"] = "changed"
    assert first.attempts[0]["status"] == "killed"


@pytest.mark.parametrize("status", sorted(NOT_STARTED))
def test_earlier_attempts_excludes_runs_that_never_started(status: str) -> None:
    assert record.earlier_attempts(PREPARED.replace(status=status)) == []


def test_an_attempt_whose_supervisor_died_is_lost() -> None:
    running = _start(PENDING, "node01", 0, "t0")  # then the node failed: nothing more written
    (entry,) = record.earlier_attempts(running)
    assert entry["status"] == "lost"
    assert entry["attempt"] == 1
    second = _start(running, "node02", 1, "t1")
    assert [e["status"] for e in second.attempts] == ["lost", "running"]


def test_a_record_without_attempts_counts_as_one() -> None:
    """A run that ran before attempts existed (or outside Slurm) still has its first attempt."""
    ran = PREPARED.replace(status="failed", exit_code=1, started_at="t0", ended_at="t1")
    (entry,) = record.earlier_attempts(ran)
    assert entry["attempt"] == 1
    assert (entry["status"], entry["exit_code"], entry["started_at"]) == ("failed", 1, "t0")
    assert "slurm_job_id" not in entry  # not a Slurm run


def test_a_run_outside_slurm_has_one_attempt_without_slurm_fields() -> None:
    running = record.new_attempt(PREPARED, [], host="laptop", pid=5, started_at="t0")
    ended = _end(running, "succeeded", exit_code=0)
    (entry,) = ended.attempts
    assert entry["status"] == "succeeded"
    assert not any(key.startswith("slurm") or key == "restart_count" for key in entry)


def test_attempts_survive_run_json(tmp_path: Path) -> None:
    first = _end(_start(PENDING, "node01", 0, "t0"), "killed", exit_code=143)
    second = _end(_start(first, "node02", 1, "t1"), "succeeded", exit_code=0)
    record.write_record(tmp_path, second)
    read = record.read_record(tmp_path)
    assert read == second
    assert isinstance(read.attempts, tuple)
    assert [entry["attempt"] for entry in read.attempts] == [1, 2]


def test_a_new_attempt_clears_the_error_and_result_of_the_last() -> None:
    first = _start(PENDING, "node01", 0, "2024-05-02T10:00:00.000+00:00")
    failed = _end(first, "failed", exit_code=1, error="ValueError: loss is nan")
    failed = failed.replace(result="{1: 2}", result_repr=True)
    assert failed.attempts[-1]["error"] == "ValueError: loss is nan"
    second = _start(failed, "node02", 1, "2024-05-02T11:00:00.000+00:00")
    assert (second.error, second.result, second.result_repr) == (None, None, False)
    assert second.attempts[0]["error"] == "ValueError: loss is nan"
    assert "error" not in second.attempts[1]
