"""Pure Slurm helpers: why a job ends, and where a submitted job writes its output.

The lines are `scontrol show job -o` output as a job sees it while Slurm ends it (recorded on
the test cluster with a batch script that runs scontrol in its SIGTERM trap).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from expyrun.slurm import job, script
from expyrun.slurm.job import SlurmJob

ENDING = "JobId=316 JobName=p.sh JobState=COMPLETING Reason={reason} Requeue=1 Restarts={n}"


@pytest.mark.parametrize(
    ("reason", "restarts", "restart_count", "expected"),
    [
        pytest.param("TimeLimit", 0, 0, "TimeLimit", id="time-limit"),
        pytest.param("None", 0, 0, None, id="scancel"),
        pytest.param("None", 1, 0, "Requeued", id="requeue"),
        pytest.param("None", 2, 1, "Requeued", id="second-requeue"),
        pytest.param("None", 1, 1, None, id="scancel-after-a-requeue"),
        pytest.param("TimeLimit", 1, 0, "TimeLimit", id="reason-first"),
    ],
)
def test_end_reason(reason: str, restarts: int, restart_count: int, expected: str | None) -> None:
    text = ENDING.format(reason=reason, n=restarts)
    assert job.parse_end_reason(text, restart_count) == expected


def test_end_reason_of_an_unreadable_answer_is_none() -> None:
    assert job.parse_end_reason("", 0) is None


@pytest.mark.parametrize(
    ("pattern", "task", "expected", "in_the_job"),
    [
        pytest.param("slurm-%j.out", None, "slurm-12.out", "slurm-12.out", id="job"),
        pytest.param("%x-%j.out", None, "train-12.out", "train-12.out", id="job-name"),
        pytest.param("slurm-%A_%a.out", 3, "slurm-12_3.out", "slurm-12_3.out", id="array"),
        # A task's own job id is only known when it runs: the job fills %j in.
        pytest.param("%x-%j.out", 3, "train-%j.out", "train-15.out", id="array-task-id"),
        pytest.param("/logs/%A-%a.out", 0, "/logs/12-0.out", "/logs/12-0.out", id="absolute"),
    ],
)
def test_output_path(pattern: str, task: int | None, expected: str, in_the_job: str) -> None:
    cwd = Path("/work")
    recorded = script.output_path(pattern, cwd, "12", task, "train")
    assert recorded == str(cwd / expected)
    assert job.fill_job_id(recorded, SlurmJob("12" if task is None else "15")) == str(
        cwd / in_the_job
    )
