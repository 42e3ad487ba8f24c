"""A --slurm sweep's arrays in-process: MaxArraySize, splitting, `--array` specs (issue 16)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from support import Project, run

from expyrun.errors import UsageError
from expyrun.sweep import record
from expyrun.sweep import slurm as sweep_slurm

# The lines around MaxArraySize in `scontrol show config` (Slurm 23.x), as it prints them.
SHOW_CONFIG = """Configuration data as of 2026-11-29T12:28:12
AccountingStorageBackupHost = (null)
MailProg                = /bin/mail
MaxArraySize            = 1001
MaxBatchRequeue         = 5
MaxDBDMsgs              = 20008
"""


def test_max_array_size_is_read_from_scontrol_show_config() -> None:
    assert sweep_slurm.parse_max_array_size(SHOW_CONFIG) == 1001
    assert sweep_slurm.parse_max_array_size(SHOW_CONFIG.replace("1001", "40")) == 40


def test_max_array_size_defaults_to_slurms_when_not_said() -> None:
    text = SHOW_CONFIG.replace("MaxArraySize            = 1001\n", "")
    assert sweep_slurm.parse_max_array_size(text) == sweep_slurm.DEFAULT_MAX_ARRAY_SIZE


def test_max_array_size_test_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sweep_slurm.MAX_ARRAY_SIZE_VARIABLE, "7")
    assert sweep_slurm.max_array_size() == 7
    monkeypatch.setenv(sweep_slurm.MAX_ARRAY_SIZE_VARIABLE, "0")
    with pytest.raises(UsageError):
        sweep_slurm.max_array_size()


@pytest.mark.slurm
def test_max_array_size_of_the_real_cluster_matches_scontrol(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(sweep_slurm.MAX_ARRAY_SIZE_VARIABLE, raising=False)
    text = subprocess.run(
        ["scontrol", "show", "config"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    said = next(line for line in text.splitlines() if line.startswith("MaxArraySize"))
    assert sweep_slurm.max_array_size() == int(said.split("=")[1])


@pytest.mark.parametrize(
    ("numbers", "size", "expected"),
    [
        pytest.param([1, 2, 3], 1001, [{1: 1, 2: 2, 3: 3}], id="fits"),
        pytest.param([1, 2, 3, 4, 5, 6], 3, [{1: 1, 2: 2}, {0: 3, 1: 4, 2: 5}, {0: 6}], id="split"),
        pytest.param([3, 1001, 1002], 1001, [{3: 3}, {0: 1001, 1: 1002}], id="resume-split"),
        pytest.param([2, 9], 3, [{2: 2}, {0: 9}], id="empty-arrays-left-out"),
    ],
)
def test_split_arrays_keeps_task_ids_below_max_array_size(
    numbers: list[int], size: int, expected: list[dict[int, int]]
) -> None:
    arrays = sweep_slurm.split_arrays(numbers, size)
    assert arrays == expected
    assert all(task < size for array in arrays for task in array)
    assert sorted(n for array in arrays for n in array.values()) == sorted(numbers)


@pytest.mark.parametrize(
    ("ids", "parallel", "spec"),
    [
        ([1, 2, 3, 4, 5, 6], 2, "1-6%2"),
        ([3, 7, 12], 2, "3,7,12%2"),
        ([3, 7, 8, 9, 12], None, "3,7-9,12"),
        ([0], 1, "0%1"),
    ],
)
def test_array_spec(ids: list[int], parallel: int | None, spec: str) -> None:
    assert sweep_slurm.array_spec(ids, parallel) == spec


def _config(project: Project, slurm: dict[str, object]) -> Path:
    entry = project.entry("return None\n")
    return project.config(entry, name="s{seed}", extra={"seed": 0}, __slurm__=slurm)


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--gpus", "0,1"], "--gpus does not go with --slurm on a sweep"),
        (["--fail-fast"], "--fail-fast does not go with --slurm on a sweep"),
        (["--detach"], "--detach does not go with --slurm on a sweep"),
    ],
)
def test_flags_a_slurm_sweep_cannot_honour_are_refused(
    project: Project, flags: list[str], said: str
) -> None:
    config = _config(project, {"mem": "1G"})
    result = run([config, "--sweep", "seed", "range(2)", "--slurm", *flags], cwd=project.root)
    assert result.code == 2, result.describe()
    assert said in result.stderr
    assert "Traceback" not in result.stderr
    assert not project.output.exists() or not any(project.output.iterdir())


def test_an_array_of_the_users_is_refused_before_anything_is_made(project: Project) -> None:
    config = _config(project, {"array": "0-3"})
    result = run([config, "--sweep", "seed", "range(2)", "--slurm"], cwd=project.root)
    assert result.code == 2, result.describe()
    assert "key '__run__.__slurm__.array'" in result.stderr, result.describe()
    assert "members are the array's tasks" in result.stderr
    assert not project.output.exists() or not any(project.output.iterdir())


def test_members_asking_for_other_resources_are_refused(project: Project) -> None:
    config = _config(project, {"mem": "{seed}G"})
    result = run([config, "--sweep", "seed", "range(1, 3)", "--slurm"], cwd=project.root)
    assert result.code == 2, result.describe()
    assert "member 2 asks Slurm for other resources than member 1" in result.stderr
    assert not project.output.exists() or not any(project.output.iterdir())


@pytest.mark.parametrize(
    ("statuses", "state", "counts"),
    [
        pytest.param(["pending"] * 3, "submitted", {"pending": 3}, id="none-started"),
        pytest.param(["prepared", "pending"], "submitted", None, id="being-submitted"),
        pytest.param(["succeeded", "running", "pending"], "running", None, id="one-running"),
        pytest.param(["succeeded", "failed", "pending"], "submitted", None, id="rest-queued"),
        pytest.param(
            ["succeeded", "failed", "succeeded"],
            "ended",
            {"succeeded": 2, "failed": 1},
            id="all-ended",
        ),
        pytest.param(["cancelled", "lost", "killed"], "ended", None, id="cancelled-lost"),
        pytest.param(["succeeded", "not started"], "ended", None, id="never-submitted"),
        pytest.param([], "ended", {}, id="no-member"),
    ],
)
def test_a_submitted_sweeps_state_comes_from_its_members(
    statuses: list[str], state: str, counts: dict[str, int] | None
) -> None:
    derived, by_status = record.slurm_state(statuses)
    assert derived == state
    assert sum(by_status.values()) == len(statuses)
    if counts is not None:
        assert by_status == counts


def _submitted(tmp_path: Path) -> tuple[Path, record.SweepRecord]:
    sweep_id, folder = record.create_folder(tmp_path / "outputs")
    found = record.SweepRecord(
        id=sweep_id,
        created_at="2026-11-29T12:00:00+00:00",
        command=["expyrun", "c.yml"],
        cwd=str(tmp_path),
        config_path="c.yml",
        overrides=[],
        sweep_flags=[["seed", "0,1"]],
        dimensions=[{"keys": ["seed"], "values": [["0"], ["1"]]}],
        options={"slurm": True},
        line_key="k",
        definition="d",
        members=[{"index": 1, "digest": "a"}, {"index": 2, "digest": "b"}],
        state=record.SUBMITTED,
        slurm_jobs=[{"job_id": "7", "array": "1-2"}],
    )
    record.write(folder, found)
    return folder, found


ENDED_MEMBERS = [
    {"index": 1, "digest": "a", "run_dir": "/o/s0/exp.0", "status": "succeeded"},
    {"index": 2, "digest": "b", "run_dir": "/o/s1/exp.0", "status": "failed"},
]


def test_the_end_of_a_submitted_sweep_is_recorded(tmp_path: Path) -> None:
    folder, found = _submitted(tmp_path)
    at = "2026-11-29T12:05:00+00:00"
    assert record.record_slurm_end(folder, found, ENDED_MEMBERS, at)
    ended = record.read(folder)
    assert (ended.state, ended.ended_at) == ("ended", at)
    assert ended.summary == {"succeeded": 1, "failed": 1}
    assert ended.members == ENDED_MEMBERS
    assert ended.slurm_jobs == found.slurm_jobs


def test_the_end_is_not_recorded_over_a_resubmission(tmp_path: Path) -> None:
    """A resume holds the start lock while it rewrites the record: never overwrite it."""
    folder, found = _submitted(tmp_path)
    lock = record.start_lock(tmp_path / "outputs")
    try:
        assert not record.record_slurm_end(folder, found, ENDED_MEMBERS, None)
    finally:
        os.close(lock)
    assert record.read(folder) == found
    resubmitted = found.replace(slurm_jobs=[*(found.slurm_jobs or []), {"job_id": "8"}])
    record.write(folder, resubmitted)  # read before it, stale after it
    assert not record.record_slurm_end(folder, found, ENDED_MEMBERS, None)
    assert record.read(folder) == resubmitted
