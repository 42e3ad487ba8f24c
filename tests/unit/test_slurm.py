"""Slurm without a cluster: job fields, requeue detection, KillWait, sbatch options and scripts.

The commands expyrun calls (`scontrol`, `sbatch`, `squeue`, `scancel`) are replaced by small
shell scripts in a tmp folder that is the whole PATH, so no real Slurm is ever reached.

The rendered batch scripts are compared with golden files in `tests/unit/golden/`. After an
intended change to the script, regenerate them and review the diff:

    EXPYRUN_UPDATE_GOLDEN=1 python -m pytest tests/unit/test_slurm.py -k golden
    git diff tests/unit/golden/
"""

from __future__ import annotations

import difflib
import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
from config_support import RUN, resolve_text

from expyrun.errors import ConfigError, SlurmError
from expyrun.launch import submit
from expyrun.slurm import commands, job
from expyrun.slurm import script as slurm_script
from expyrun.slurm.job import SlurmJob

GOLDEN = Path(__file__).parent / "golden"
UPDATE_GOLDEN_VARIABLE = "EXPYRUN_UPDATE_GOLDEN"
# Fixed paths and version: golden files must not depend on the machine or the release.
PYTHON = "/opt/venvs/ml/bin/python"
CWD = Path("/home/ada/project")
VERSION = "0.0.0-golden"

JOB = {
    "SLURM_JOB_ID": "4242",
    "SLURM_JOB_NAME": "mnist",
    "SLURM_JOB_NODELIST": "node[01-02]",
    "SLURM_JOB_PARTITION": "gpu",
}
ARRAY_TASK = {
    **JOB,
    "SLURM_JOB_ID": "4245",  # a task has its own job id ...
    "SLURM_ARRAY_JOB_ID": "4242",  # ... and the array's
    "SLURM_ARRAY_TASK_ID": "3",
}


def fake_command(bin_dir: Path, name: str, body: str) -> Path:
    """Write an executable `bin_dir/name` running `body` with /bin/sh."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder that is the whole PATH: only the fake commands a test writes there exist."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    return folder


# --- job fields from the environment -----------------------------------------------------------


def test_outside_a_job_there_are_no_fields() -> None:
    assert SlurmJob.from_environ({}) is None
    assert SlurmJob.from_environ({"SLURM_JOB_ID": ""}) is None
    assert SlurmJob.from_environ({"SLURM_ARRAY_JOB_ID": "1", "SLURM_RESTART_COUNT": "2"}) is None


def test_plain_job_fields() -> None:
    assert SlurmJob.from_environ(JOB).fields() == {
        "job_id": "4242",
        "job_name": "mnist",
        "array_job_id": None,
        "array_task_id": None,
        "node_list": "node[01-02]",
        "partition": "gpu",
        "restart_count": 0,
    }


def test_array_task_fields() -> None:
    fields = SlurmJob.from_environ(ARRAY_TASK).fields()
    assert fields is not None
    assert (fields["job_id"], fields["array_job_id"], fields["array_task_id"]) == (
        "4245",
        "4242",
        "3",
    )


def test_only_the_job_id_is_needed() -> None:
    fields = SlurmJob.from_environ({"SLURM_JOB_ID": "7"}).fields()
    assert fields == {
        "job_id": "7",
        "job_name": None,
        "array_job_id": None,
        "array_task_id": None,
        "node_list": None,
        "partition": None,
        "restart_count": 0,
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, 0, id="unset"),
        pytest.param("", 0, id="empty"),
        pytest.param("0", 0, id="first-start"),
        pytest.param("2", 2, id="requeued-twice"),
        pytest.param("two", 0, id="not-a-number"),
    ],
)
def test_restart_count(value: str | None, expected: int) -> None:
    environ = dict(JOB) if value is None else {**JOB, "SLURM_RESTART_COUNT": value}
    assert job.restart_count(environ) == expected
    assert SlurmJob.from_environ(environ).fields()["restart_count"] == expected  # type: ignore[index]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(None, 0, id="no-fields"),
        pytest.param({}, 0, id="pending-record"),
        pytest.param({"restart_count": 3}, 3, id="int"),
        pytest.param({"restart_count": "3"}, 3, id="text"),
        pytest.param({"restart_count": None}, 0, id="null"),
        pytest.param({"restart_count": [1]}, 0, id="garbage"),
    ],
)
def test_recorded_restart_count(fields: dict | None, expected: int) -> None:
    assert job.recorded_restart_count(fields) == expected


# --- requeue detection ---------------------------------------------------------------------------


def _requeued(environ: dict[str, str], count: int = 1) -> dict[str, str]:
    return {**environ, "SLURM_RESTART_COUNT": str(count)}


@pytest.mark.parametrize(
    ("recorded", "current", "expected"),
    [
        pytest.param({"job_id": "4242"}, {"job_id": "4242"}, True, id="same-job"),
        pytest.param({"job_id": "4242"}, {"job_id": "4243"}, False, id="other-job"),
        pytest.param({"job_id": 4242}, {"job_id": "4242"}, True, id="int-vs-text-id"),
        pytest.param(
            {"job_id": "4242", "array_job_id": "4242", "array_task_id": "3"},
            {"job_id": "4245", "array_job_id": "4242", "array_task_id": "3"},
            True,
            id="pending-array-task-vs-its-job",  # recorded at submit: the array's id
        ),
        pytest.param(
            {"job_id": "4245", "array_job_id": "4242", "array_task_id": 3},
            {"job_id": "4245", "array_job_id": "4242", "array_task_id": "3"},
            True,
            id="same-task-int-vs-text",
        ),
        pytest.param(
            {"job_id": "4245", "array_job_id": "4242", "array_task_id": "3"},
            {"job_id": "4246", "array_job_id": "4242", "array_task_id": "4"},
            False,
            id="other-task-same-array",
        ),
        pytest.param(
            {"job_id": "4245", "array_job_id": "4242", "array_task_id": "3"},
            {"job_id": "5245", "array_job_id": "5242", "array_task_id": "3"},
            False,
            id="same-task-other-array",
        ),
        pytest.param(
            {"job_id": "4242", "array_job_id": "4242", "array_task_id": "0"},
            {"job_id": "4242", "array_job_id": None, "array_task_id": None},
            False,
            id="array-task-vs-plain-job",
        ),
        pytest.param(
            {"job_id": "4242"},
            {"job_id": "4242", "array_job_id": "4242", "array_task_id": "0"},
            False,
            id="plain-job-vs-array-task",
        ),
        pytest.param(None, {"job_id": "4242"}, False, id="no-record"),
        pytest.param({"job_id": "4242"}, None, False, id="not-in-a-job"),
        pytest.param({}, {}, False, id="both-empty"),
    ],
)
def test_same_job(recorded: dict | None, current: dict | None, expected: bool) -> None:
    assert job.same_job(recorded, current) is expected
    assert job.same_job(current, recorded) is expected


@pytest.mark.parametrize(
    ("recorded", "environ", "expected"),
    [
        pytest.param({"job_id": "4242", "restart_count": 0}, _requeued(JOB), True, id="requeued"),
        pytest.param(
            {"job_id": "4242", "restart_count": 1}, _requeued(JOB, 3), True, id="requeued-again"
        ),
        pytest.param({"job_id": "4242"}, _requeued(JOB), True, id="pending-record-restart-1"),
        pytest.param({"job_id": "4242", "restart_count": 0}, JOB, False, id="first-start"),
        pytest.param(
            {"job_id": "4242", "restart_count": 1}, _requeued(JOB, 1), False, id="same-start"
        ),
        pytest.param(
            {"job_id": "4242", "restart_count": 2}, _requeued(JOB, 1), False, id="older-start"
        ),
        pytest.param({"job_id": "9999", "restart_count": 0}, _requeued(JOB), False, id="other-job"),
        pytest.param(
            {"job_id": "4245", "array_job_id": "4242", "array_task_id": "3", "restart_count": 0},
            _requeued(ARRAY_TASK),
            True,
            id="array-task-requeued",
        ),
        pytest.param(
            {"job_id": "4246", "array_job_id": "4242", "array_task_id": "4", "restart_count": 0},
            _requeued(ARRAY_TASK),
            False,
            id="array-other-task",
        ),
        pytest.param({"job_id": "4242", "restart_count": 0}, {}, False, id="outside-a-job"),
        pytest.param(None, _requeued(JOB), False, id="never-in-a-job"),
    ],
)
def test_is_requeue_of(recorded: dict | None, environ: dict[str, str], expected: bool) -> None:
    assert job.is_requeue_of(recorded, environ) is expected


def _run_folder(parent: Path, index: int, fields: object, raw: str | None = None) -> Path:
    run_dir = parent / f"exp.{index}"
    run_dir.mkdir(parents=True)
    text = raw if raw is not None else json.dumps({"status": "killed", "slurm": fields})
    (run_dir / "run.json").write_text(text)
    return run_dir


def test_find_requeued_run_picks_the_oldest_folder_of_this_job(tmp_path: Path) -> None:
    parent = tmp_path / "out" / "mnist"
    _run_folder(parent, 0, {"job_id": "1111", "restart_count": 0})  # another job
    first = _run_folder(parent, 1, {"job_id": "4242", "restart_count": 0})
    _run_folder(parent, 2, {"job_id": "4242", "restart_count": 1})  # resumed already
    _run_folder(parent, 3, None)  # not a Slurm run
    _run_folder(parent, 4, None, raw="{not json")
    (parent / "exp.5").mkdir()  # no record yet
    (parent / "notes").mkdir()
    second = _run_folder(parent, 10, {"job_id": "4242", "restart_count": 0})
    assert job.find_requeued_run(parent, _requeued(JOB, 1)) == first
    assert job.find_requeued_run(parent, _requeued(JOB, 2)) == first
    (first / "run.json").write_text(json.dumps({"slurm": {"job_id": "4242", "restart_count": 1}}))
    assert job.find_requeued_run(parent, _requeued(JOB, 1)) == second


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param({}, id="outside-a-job"),
        pytest.param(JOB, id="first-start"),
        pytest.param(_requeued({**JOB, "SLURM_JOB_ID": "9"}), id="other-job"),
    ],
)
def test_find_requeued_run_finds_nothing(tmp_path: Path, environ: dict[str, str]) -> None:
    _run_folder(tmp_path, 0, {"job_id": "4242", "restart_count": 0})
    assert job.find_requeued_run(tmp_path, environ) is None
    assert job.find_requeued_run(tmp_path / "missing", _requeued(JOB)) is None


def test_find_requeued_run_of_an_array_task(tmp_path: Path) -> None:
    pending = {"job_id": "4242", "array_job_id": "4242"}
    _run_folder(tmp_path, 0, {**pending, "array_task_id": "2"})
    task_3 = _run_folder(tmp_path, 1, {**pending, "array_task_id": "3"})
    assert job.find_requeued_run(tmp_path, _requeued(ARRAY_TASK)) == task_3


# --- grace period and KillWait ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kill_wait", "requested", "expected"),
    [
        pytest.param(30.0, 10.0, 10.0, id="default-kill-wait-keeps-grace"),
        pytest.param(30.0, 28.0, 28.0, id="exactly-the-margin"),
        pytest.param(30.0, 60.0, 28.0, id="cut-to-kill-wait-minus-margin"),
        pytest.param(5.0, 10.0, 3.0, id="short-kill-wait"),
        pytest.param(2.4, 10.0, 0.5, id="below-the-margin-keeps-the-minimum"),
        pytest.param(0.0, 10.0, 0.5, id="zero-kill-wait"),
        pytest.param(30.0, 0.0, 0.5, id="zero-grace-gets-the-minimum"),
        pytest.param(30.0, 0.2, 0.5, id="tiny-grace-gets-the-minimum"),
    ],
)
def test_grace_within_kill_wait(kill_wait: float, requested: float, expected: float) -> None:
    assert job.grace_within_kill_wait(kill_wait, requested) == pytest.approx(expected)


SCONTROL_SHOW_CONFIG = """\
Configuration data as of 2024-05-02T10:11:12
AccountingStorageBackupHost = (null)
JobAcctGatherType       = jobacct_gather/none
KeepAliveTime           = SYSTEM_DEFAULT
KillOnBadExit           = 0
KillWait                = 7 sec
LaunchParameters        = (null)
MinJobAge               = 300 sec
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(SCONTROL_SHOW_CONFIG, 7.0, id="scontrol-show-config"),
        pytest.param("KillWait=30\n", 30.0, id="no-spaces-no-unit"),
        pytest.param("KillWait = 0 sec\n", 0.0, id="zero"),
        pytest.param("KillOnBadExit = 0\n", None, id="absent"),
        pytest.param("  KillWait = 5 sec\n", None, id="not-at-line-start"),
        pytest.param("UnkillableStepTimeout = 60 sec\nKillWaitX = 3\n", None, id="other-key"),
        pytest.param("KillWait = UNLIMITED\n", None, id="not-a-number"),
        pytest.param("", None, id="empty"),
    ],
)
def test_parse_kill_wait(text: str, expected: float | None) -> None:
    assert job.parse_kill_wait(text) == expected


@pytest.fixture
def fresh_kill_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the KillWait an earlier test read (it is read once per process)."""
    monkeypatch.setattr(job, "_kill_wait", None)


@pytest.mark.usefixtures("fresh_kill_wait")
def test_kill_wait_from_scontrol_is_read_once(bin_dir: Path) -> None:
    calls = bin_dir / "calls"
    body = f"echo \"$@\" >> {calls}\nprintf '%s' '{SCONTROL_SHOW_CONFIG}'"
    fake_command(bin_dir, "scontrol", body)
    assert job.kill_wait_seconds() == (7.0, None)
    assert job.kill_wait_seconds() == (7.0, None)
    assert calls.read_text() == "show config\n"


@pytest.mark.usefixtures("fresh_kill_wait")
@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param(None, r"^scontrol: command not found", id="no-scontrol"),
        pytest.param(
            "echo 'scontrol: error: Unable to contact slurm controller' >&2; exit 1",
            r"^scontrol failed \(exit 1\): Unable to contact slurm controller$",
            id="controller-down",
        ),
        pytest.param("echo 'MinJobAge = 300 sec'", r"no KillWait", id="no-kill-wait"),
    ],
)
def test_kill_wait_defaults_when_unreadable(bin_dir: Path, body: str | None, problem: str) -> None:
    if body is not None:
        fake_command(bin_dir, "scontrol", body)
    value, why = job.kill_wait_seconds()
    assert value == job.DEFAULT_KILL_WAIT_SECONDS
    assert why is not None
    assert "\n" not in why
    assert re.search(problem, why), why
    fake_command(bin_dir, "scontrol", "echo 'KillWait = 12 sec'")
    assert job.kill_wait_seconds() == (12.0, None), "a failure must not be remembered"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            "echo 'JobId=4242 JobName=mnist JobState=RUNNING Reason=TimeLimit Dependency=(null)'",
            "TimeLimit",
            id="time-limit",
        ),
        pytest.param("echo 'JobId=4242 JobState=RUNNING Reason=None'", None, id="no-reason"),
        pytest.param("echo 'JobId=4242 JobState=RUNNING'", None, id="no-reason-field"),
        pytest.param("echo 'Reason=Prolog'", "Prolog", id="at-line-start"),
        pytest.param(
            "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1", None, id="fails"
        ),
        pytest.param("exec /bin/sleep 5", None, id="too-slow"),
    ],
)
def test_end_reason(
    bin_dir: Path, monkeypatch: pytest.MonkeyPatch, body: str, expected: str | None
) -> None:
    monkeypatch.setattr(job, "REASON_TIMEOUT_SECONDS", 0.3)
    fake_command(bin_dir, "scontrol", f'[ "$*" = "show job -o 4242" ] || exit 99\n{body}')
    assert job.end_reason("4242") == expected


# --- calling Slurm's commands ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            None,
            "sbatch: command not found (is Slurm installed on this machine?)",
            id="missing",
        ),
        pytest.param(
            "echo 'sbatch: error: Batch job submission failed: Invalid partition name specified'"
            " >&2; exit 1",
            "sbatch failed (exit 1): Batch job submission failed: Invalid partition name specified",
            id="fails-with-its-error-line",
        ),
        pytest.param(
            "echo 'sbatch: warning: something' >&2; echo 'sbatch: error: the last line' >&2;"
            " exit 1",
            "sbatch failed (exit 1): the last line",
            id="last-line-of-stderr",
        ),
        pytest.param(
            "echo 'said on stdout'; exit 4", "sbatch failed (exit 4): said on stdout", id="stdout"
        ),
        pytest.param("exit 3", "sbatch failed (exit 3)", id="silent-failure"),
        pytest.param("exec /bin/sleep 5", "sbatch did not answer within 0.3 s", id="timeout"),
    ],
)
def test_a_failing_command_is_one_line(bin_dir: Path, body: str | None, message: str) -> None:
    if body is not None:
        fake_command(bin_dir, "sbatch", body)
    with pytest.raises(SlurmError) as caught:
        commands.call(["sbatch", "job.sh"], timeout=0.3)
    assert str(caught.value) == message


def test_a_command_that_cannot_be_executed(bin_dir: Path) -> None:
    (bin_dir / "sbatch").write_text("not executable\n")
    (bin_dir / "sbatch").chmod(0o644)
    with pytest.raises(SlurmError, match=r"^sbatch: "):
        commands.call(["sbatch"])


def test_call_closes_stdin_and_returns_stdout(bin_dir: Path) -> None:
    fake_command(bin_dir, "squeue", 'cat; echo "args: $*"; echo "noise" >&2')
    assert commands.call(["squeue", "-h"]) == "args: -h\n"


@pytest.mark.parametrize(
    ("printed", "expected"),
    [
        pytest.param("4242", "4242", id="parsable"),
        pytest.param("4242;cluster1\n", "4242", id="parsable-with-cluster"),
        pytest.param("4242\nsbatch: some note\n", "4242", id="first-line"),
    ],
)
def test_submit_reads_the_job_id(bin_dir: Path, printed: str, expected: str) -> None:
    calls = bin_dir / "calls"
    fake_command(bin_dir, "sbatch", f"echo \"$*\" > {calls}\nprintf '{printed}'")
    assert commands.submit(Path("/runs/exp.0/slurm.sbatch"), hold=True) == expected
    assert calls.read_text() == "--parsable --hold /runs/exp.0/slurm.sbatch\n"
    commands.submit(Path("/runs/exp.0/slurm.sbatch"), hold=False)
    assert calls.read_text() == "--parsable /runs/exp.0/slurm.sbatch\n"


@pytest.mark.parametrize(
    "printed",
    [
        pytest.param("", id="nothing"),
        pytest.param("Submitted batch job 4242", id="not-parsable"),
    ],
)
def test_submit_without_a_job_id_fails(bin_dir: Path, printed: str) -> None:
    fake_command(bin_dir, "sbatch", f"echo '{printed}'")
    with pytest.raises(SlurmError, match=r"^sbatch printed no job id"):
        commands.submit(Path("job.sh"), hold=False)


@pytest.mark.parametrize(
    ("kwargs", "argv"),
    [
        pytest.param({}, "4242", id="plain"),
        pytest.param(
            {"signal_name": "USR1", "batch": True}, "--signal=USR1 --batch 4242", id="usr1"
        ),
    ],
)
def test_cancel_and_release(bin_dir: Path, kwargs: dict, argv: str) -> None:
    calls = bin_dir / "calls"
    fake_command(bin_dir, "scancel", f'echo "scancel $*" >> {calls}')
    fake_command(bin_dir, "scontrol", f'echo "scontrol $*" >> {calls}')
    commands.cancel("4242", **kwargs)
    commands.release("4242")
    assert calls.read_text() == f"scancel {argv}\nscontrol release 4242\n"


def test_job_states(bin_dir: Path) -> None:
    calls = bin_dir / "calls"
    body = f'echo "$*" > {calls}\nprintf "4242|RUNNING\\n 4243_1|PENDING\\n\\nodd line\\n"'
    fake_command(bin_dir, "squeue", body)
    assert commands.job_states(["4242", "4243_1"]) == {"4242": "RUNNING", "4243_1": "PENDING"}
    assert "--jobs=4242,4243_1" in calls.read_text()
    assert commands.job_states([]) == {}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1",
            {},
            id="forgotten-jobs",
        ),
        pytest.param(
            "echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1",
            None,
            id="controller-down",
        ),
    ],
)
def test_job_states_when_squeue_fails(bin_dir: Path, body: str, expected: dict | None) -> None:
    fake_command(bin_dir, "squeue", body)
    assert commands.job_states(["4242"]) == expected


@pytest.mark.parametrize(
    ("fields", "handle"),
    [
        pytest.param({"job_id": "4242"}, "4242", id="plain"),
        pytest.param({"job_id": 4242}, "4242", id="int"),
        pytest.param(
            {"job_id": "4245", "array_job_id": "4242", "array_task_id": "3"}, "4242_3", id="task"
        ),
        pytest.param({"job_id": "4242", "array_task_id": "3"}, "4242", id="task-without-array"),
        pytest.param({}, None, id="none"),
    ],
)
def test_job_handle(fields: dict, handle: str | None) -> None:
    assert commands.job_handle(fields) == handle


# --- sbatch options --------------------------------------------------------------------------


def sbatch_arguments(line: str) -> list[str]:
    """The arguments sbatch reads from one `#SBATCH` line.

    A port of `_get_argument` in Slurm's src/sbatch/opt.c (22.05): `'` and `"` quote, `\\`
    escapes the next character (inside quotes too), an unquoted `#` ends the line, an
    unmatched quote is fatal.
    """
    assert line.startswith("#SBATCH"), line
    text = line[len("#SBATCH") :]
    arguments: list[str] = []
    i = 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        argument: list[str] = []
        quote = ""
        escaped = comment = False
        while i < len(text) and (quote or not text[i].isspace()) and text[i] != "\n":
            char = text[i]
            i += 1
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
                continue
            elif quote:
                if char == quote:
                    quote = ""
                    continue
            elif char in "\"'":
                quote = char
                continue
            elif char == "#":
                comment = True
                break
            argument.append(char)
        assert not quote, f"sbatch: unmatched {quote} in [{line}]"
        if not argument:
            return arguments
        arguments.append("".join(argument))
        if comment:
            return arguments


def sbatch_script_arguments(script: str) -> list[str]:
    """Every argument sbatch reads from a script's `#SBATCH` lines.

    sbatch stops at the first line that is neither blank nor a comment (sbatch(1)).
    """
    arguments: list[str] = []
    for line in script.split("\n"):
        if line.startswith("#SBATCH"):
            arguments += sbatch_arguments(line)
        elif line.strip() and not line.startswith("#"):
            break
    return arguments


@pytest.mark.parametrize(
    ("mapping", "options"),
    [
        pytest.param({}, [], id="empty"),
        pytest.param(None, [], id="absent"),
        pytest.param({"exclusive": True}, [("exclusive", None)], id="true-is-a-flag"),
        pytest.param({"exclusive": False}, [], id="false-is-left-out"),
        pytest.param({"partition": None}, [], id="null-removes-an-inherited-option"),
        pytest.param({"gpus": 2}, [("gpus", "2")], id="int"),
        pytest.param({"mem": "16G"}, [("mem", "16G")], id="string"),
        pytest.param({"time": 60}, [("time", "60")], id="time-in-minutes"),
        pytest.param({"time": "1-00:00:00"}, [("time", "1-00:00:00")], id="time-days"),
        pytest.param({"time": "02:30:00"}, [("time", "02:30:00")], id="time-quoted-in-yaml"),
        pytest.param({"nice": 0}, [("nice", "0")], id="zero-is-a-value"),
        pytest.param({"cpus_per_task": 4}, [("cpus-per-task", "4")], id="underscores-to-dashes"),
        pytest.param({"cpus-per-task": 4}, [("cpus-per-task", "4")], id="dashes-kept"),
        pytest.param({"p": "debug"}, [("p", "debug")], id="short-option"),
        pytest.param({"array": "0-3%2"}, [("array", "0-3%2")], id="array"),
        pytest.param({"comment": "two words"}, [("comment", "two words")], id="spaces-kept"),
        pytest.param(
            {"time": 5, "partition": "a", "p": "b"},
            [("time", "5"), ("partition", "a"), ("p", "b")],
            id="order-kept",
        ),
        pytest.param({"requeue": True}, [("requeue", None)], id="requeue"),
        pytest.param({"no_requeue": True}, [("no-requeue", None)], id="no-requeue"),
        pytest.param({"requeue": False}, [("no-requeue", None)], id="requeue-false-is-no-requeue"),
        pytest.param({"hold": True}, [("hold", None)], id="hold"),
    ],
)
def test_sbatch_options(mapping: dict | None, options: list) -> None:
    assert slurm_script.sbatch_options(mapping) == options


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        pytest.param(
            {"1gpu": 1}, r"^key '__run__\.__slurm__\.1gpu': not an sbatch option name$", id="digit"
        ),
        pytest.param({"--time": 5}, r"'__run__\.__slurm__\.--time': not an sbatch", id="dashes"),
        pytest.param({"mem per cpu": 1}, r"not an sbatch option name", id="spaces"),
        pytest.param({"": 1}, r"not an sbatch option name", id="empty-name"),
        pytest.param(
            {"parsable": True},
            r"'__run__\.__slurm__\.parsable': --parsable cannot be given to a --slurm submission",
        ),
        pytest.param(
            {"wait": True},
            r"--wait cannot be given to a --slurm submission \(.*expyrun logs -f`\)$",
            id="wait",
        ),
        pytest.param({"W": True}, r"'__run__\.__slurm__\.W': --wait cannot be given", id="short-W"),
        pytest.param(
            {"test_only": True},
            r"--test-only cannot be given to a --slurm submission \(with hold: true the job waits",
            id="test-only",
        ),
        pytest.param(
            {"wrap": "python x.py"}, r"--wrap cannot be given to a --slurm submission", id="wrap"
        ),
        pytest.param(
            {"comment": 'say "hi"'}, r"comment': an sbatch option value cannot hold quotes", id="q"
        ),
        pytest.param({"comment": "a\nb"}, r"cannot hold quotes or line breaks", id="newline"),
        pytest.param({"comment": ""}, r"empty sbatch option value \(use null", id="empty"),
    ],
)
def test_sbatch_options_errors(mapping: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        slurm_script.sbatch_options(mapping)
    assert "\n" not in str(caught.value)
    assert re.search(message, str(caught.value)), str(caught.value)


@pytest.mark.parametrize(
    ("name", "value", "line"),
    [
        pytest.param("exclusive", None, "#SBATCH --exclusive", id="flag"),
        pytest.param("time", "60", "#SBATCH --time=60", id="long"),
        pytest.param("p", "debug", "#SBATCH -p debug", id="short"),
        pytest.param("H", None, "#SBATCH -H", id="short-flag"),
        pytest.param("comment", "two words", '#SBATCH --comment="two words"', id="spaces"),
        pytest.param("comment", "tab\there", '#SBATCH --comment="tab\there"', id="tab"),
        pytest.param("comment", "run #3", '#SBATCH --comment="run #3"', id="hash"),
        pytest.param("comment", "it's", '#SBATCH --comment="it\'s"', id="single-quote"),
        pytest.param("job-name", 'a "b"', '#SBATCH --job-name="a \\"b\\""', id="double-quotes"),
        pytest.param("comment", "C:\\tmp", '#SBATCH --comment="C:\\\\tmp"', id="backslash"),
        pytest.param("output", "/o/%x-%j.out", "#SBATCH --output=/o/%x-%j.out", id="patterns"),
        pytest.param("export", "ALL,A=$HOME", "#SBATCH --export=ALL,A=$HOME", id="dollar"),
    ],
)
def test_option_line(name: str, value: str | None, line: str) -> None:
    assert slurm_script.option_line(name, value) == line


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "two words",
        "  leading and trailing  ",
        "run #3",
        "it's",
        'say "hi"',
        "C:\\tmp\\",
        "back\\\\slashes",
        "\\\"'#'\"\\",
        "$HOME `id` $(id) ; & |",
        "ünïcödé 数据",
    ],
)
def test_sbatch_reads_back_every_value(value: str) -> None:
    assert sbatch_arguments(slurm_script.option_line("comment", value)) == [f"--comment={value}"]
    assert sbatch_arguments(slurm_script.option_line("J", value)) == ["-J", value]


@pytest.mark.parametrize(
    ("spec", "ids"),
    [
        pytest.param("0-3", [0, 1, 2, 3], id="range"),
        pytest.param("5", [5], id="single"),
        pytest.param("1,3,5-7", [1, 3, 5, 6, 7], id="list"),
        pytest.param("0-15:4", [0, 4, 8, 12], id="step"),
        pytest.param("0-99%10", list(range(100)), id="throttle"),
        pytest.param("3,1,3, 2", [1, 2, 3], id="unsorted-duplicates-spaces"),
    ],
)
def test_array_task_ids(spec: str, ids: list[int]) -> None:
    assert slurm_script.array_task_ids(spec) == ids


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param("a-b", r"'a-b' is not an array spec", id="letters"),
        pytest.param("", r"is not an array spec", id="empty"),
        pytest.param("1,,2", r"is not an array spec", id="empty-item"),
        pytest.param("-1", r"is not an array spec", id="negative"),
        pytest.param("3-1", r"empty array range '3-1'", id="reversed"),
        pytest.param("0-3:0", r"empty array range '0-3:0'", id="zero-step"),
    ],
)
def test_array_task_ids_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        slurm_script.array_task_ids(spec)
    assert caught.value.key == "__run__.__slurm__.array"


def test_array_environ() -> None:
    assert slurm_script.array_environ(4, [0, 4, 8]) == {
        "SLURM_ARRAY_TASK_ID": "4",
        "SLURM_ARRAY_TASK_COUNT": "3",
        "SLURM_ARRAY_TASK_MIN": "0",
        "SLURM_ARRAY_TASK_MAX": "8",
    }


@pytest.mark.parametrize(
    ("options", "name", "expected"),
    [
        pytest.param([("array", "0-3")], ("array", "a"), "0-3", id="long"),
        pytest.param([("a", "1-2")], ("array", "a"), "1-2", id="short"),
        pytest.param([("a", "1-2"), ("array", "5")], ("array", "a"), "5", id="last-wins"),
        pytest.param([("hold", None)], ("hold", "H"), "", id="flag"),
        pytest.param([("time", "5")], ("array", "a"), None, id="absent"),
    ],
)
def test_option_value(options: list, name: tuple[str, ...], expected: str | None) -> None:
    assert slurm_script.option_value(options, *name) == expected


# --- expyrun's defaults ------------------------------------------------------------------------

RUN_DIR = Path("/scratch/ada/runs/mnist/lenet/exp.3")


def test_script_options_defaults_of_a_single_run() -> None:
    user = [("partition", "gpu")]
    assert slurm_script.script_options(user, "mnist/lenet", RUN_DIR, CWD) == [
        ("job-name", "mnist/lenet"),
        ("output", f"{RUN_DIR}/slurm-%j.out"),
        ("open-mode", "append"),
        ("requeue", None),
        ("partition", "gpu"),
    ]


def test_script_options_defaults_of_an_array() -> None:
    user = [("array", "0-3")]
    assert slurm_script.script_options(user, "sweep", None, CWD) == [
        ("job-name", "sweep"),
        ("output", f"{CWD}/slurm-%A_%a.out"),
        ("open-mode", "append"),
        ("requeue", None),
        ("array", "0-3"),
    ]


@pytest.mark.parametrize(
    ("mapping", "left_out"),
    [
        pytest.param({"job_name": "mine"}, "job-name", id="job-name"),
        pytest.param({"J": "mine"}, "job-name", id="J"),
        pytest.param({"output": "o.txt"}, "output", id="output"),
        pytest.param({"o": "o.txt"}, "output", id="o"),
        pytest.param({"open_mode": "truncate"}, "open-mode", id="open-mode"),
        pytest.param({"no_requeue": True}, "requeue", id="no-requeue"),
        pytest.param({"requeue": False}, "requeue", id="requeue-false"),
    ],
)
def test_the_users_option_replaces_expyruns_default(mapping: dict, left_out: str) -> None:
    user = slurm_script.sbatch_options(mapping)
    options = slurm_script.script_options(user, "exp", RUN_DIR, CWD)
    assert options[-len(user) :] == user
    defaults = [name for name, _ in options[: -len(user)]]
    assert left_out not in defaults
    assert len(defaults) == 3


@pytest.mark.parametrize(
    ("pattern", "task", "expected"),
    [
        pytest.param("slurm-%j.out", None, f"{CWD}/slurm-4242.out", id="job-id"),
        pytest.param("slurm-%A_%a.out", 3, f"{CWD}/slurm-4242_3.out", id="array-task"),
        pytest.param("/logs/%x.%j", None, "/logs/lenet.4242", id="absolute-with-name"),
        pytest.param("%x/out", 0, f"{CWD}/lenet/out", id="relative-folder"),
    ],
)
def test_output_path(pattern: str, task: int | None, expected: str) -> None:
    assert slurm_script.output_path(pattern, CWD, "4242", task, "lenet") == expected


# --- the batch script --------------------------------------------------------------------------

SINGLE_MAPPING = {
    "partition": "gpu",
    "time": "1-00:00:00",
    "gpus": 2,
    "cpus_per_task": 8,
    "mem": "32G",
    "exclusive": True,
    "mail_type": False,
    "comment": "lenet on mnist's run #3",
    "C": "a100|h100",
}
SINGLE_COMMAND = ["expyrun", "configs/mnist.yml", "--slurm", "--lr", "0.1", "--note", "first try"]
ARRAY_MAPPING = {"array": "0-3", "partition": "cpu", "time": 30}
ARRAY_COMMAND = ["expyrun", "configs/sweep.yml", "--slurm"]


def single_script() -> str:
    user = slurm_script.sbatch_options(SINGLE_MAPPING)
    options = slurm_script.script_options(user, "mnist/lenet", RUN_DIR, CWD)
    return slurm_script.render_script(PYTHON, {None: RUN_DIR}, options, SINGLE_COMMAND, VERSION)


def array_script() -> str:
    user = slurm_script.sbatch_options(ARRAY_MAPPING)
    ids = slurm_script.array_task_ids(slurm_script.option_value(user, "array", "a") or "")
    run_dirs: dict[int | None, Path] = {
        task: Path(f"/scratch/ada/runs/sweep/exp.{task}") for task in ids
    }
    options = slurm_script.script_options(user, "sweep", None, CWD)
    return slurm_script.render_script(PYTHON, run_dirs, options, ARRAY_COMMAND, VERSION)


def check_golden(name: str, text: str) -> None:
    """Compare `text` with the golden file `name`, or rewrite it under EXPYRUN_UPDATE_GOLDEN=1."""
    path = GOLDEN / name
    if os.environ.get(UPDATE_GOLDEN_VARIABLE) == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    if not path.is_file():
        pytest.fail(f"no golden file {path}: run with {UPDATE_GOLDEN_VARIABLE}=1 to write it")
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        diff = difflib.unified_diff(
            expected.splitlines(keepends=True),
            text.splitlines(keepends=True),
            fromfile=f"{path} (golden)",
            tofile="rendered now",
        )
        pytest.fail(
            f"the rendered script differs from {path.name}:\n{''.join(diff)}\n"
            f"if the change is intended: {UPDATE_GOLDEN_VARIABLE}=1 pytest {__file__} -k golden",
            pytrace=False,
        )


@pytest.mark.parametrize(
    ("name", "render"),
    [
        pytest.param("single.sbatch", single_script, id="single"),
        pytest.param("array-of-4.sbatch", array_script, id="array-of-4"),
    ],
)
def test_golden_script(name: str, render) -> None:
    check_golden(name, render())


def test_sbatch_reads_every_option_of_the_golden_scripts() -> None:
    assert sbatch_script_arguments(single_script()) == [
        "--job-name=mnist/lenet",
        f"--output={RUN_DIR}/slurm-%j.out",
        "--open-mode=append",
        "--requeue",
        "--partition=gpu",
        "--time=1-00:00:00",
        "--gpus=2",
        "--cpus-per-task=8",
        "--mem=32G",
        "--exclusive",
        "--comment=lenet on mnist's run #3",
        "-C",
        "a100|h100",
    ]
    assert sbatch_script_arguments(array_script())[-3:] == [
        "--array=0-3",
        "--partition=cpu",
        "--time=30",
    ]


def test_a_command_line_with_a_line_break_stays_a_comment() -> None:
    command = ["expyrun", "c.yml", "--slurm", "--note", "line one\nline two\n#SBATCH --mem=1T"]
    options = [("job-name", "exp"), ("time", "5")]
    script = slurm_script.render_script(PYTHON, {None: RUN_DIR}, options, command, VERSION)
    header = script.split("\n#SBATCH --job-name", 1)[0]
    assert all(line.startswith("#") for line in header.split("\n")), header
    assert sbatch_script_arguments(script) == ["--job-name=exp", "--time=5"]


def _fake_python(path: Path) -> str:
    """An executable that prints its arguments one per line, standing for the job's python."""
    fake_command(path.parent, path.name, 'for a in "$@"; do printf "%s\\n" "$a"; done')
    return str(path)


@pytest.mark.parametrize("task", [0, 2, 3])
def test_the_array_script_runs_the_tasks_folder(tmp_path: Path, task: int) -> None:
    """bash runs the script with the task's folder, however odd its path."""
    python = _fake_python(tmp_path / "py thon")
    run_dirs: dict[int | None, Path] = {
        i: tmp_path / f'it\'s a $HOME `run` "{i}"' / f"exp.{i}" for i in (0, 2, 3)
    }
    script = tmp_path / "job.sbatch"
    script.write_text(
        slurm_script.render_script(python, run_dirs, [("array", "0,2,3")], ["x"], "1")
    )
    done = subprocess.run(
        ["/bin/bash", str(script)],
        env={"SLURM_ARRAY_TASK_ID": str(task), "PATH": os.defpath},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stdout.splitlines() == [
        "-m",
        "expyrun",
        "_supervise",
        str(run_dirs[task]),
        "--copy-output",
    ]


def test_an_array_task_without_a_folder_fails_in_the_job(tmp_path: Path) -> None:
    python = _fake_python(tmp_path / "python")
    script = tmp_path / "job.sbatch"
    script.write_text(slurm_script.render_script(python, {0: tmp_path / "exp.0"}, [], ["x"], "1"))
    done = subprocess.run(
        ["/bin/bash", str(script)],
        env={"SLURM_ARRAY_TASK_ID": "7", "PATH": os.defpath},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr == "expyrun: error: no run folder for array task 7\n"
    assert done.stdout == ""


def test_the_single_script_runs_its_folder(tmp_path: Path) -> None:
    python = _fake_python(tmp_path / "python")
    run_dir = tmp_path / "a b" / "exp.0"
    script = tmp_path / "job.sbatch"
    script.write_text(slurm_script.render_script(python, {None: run_dir}, [], ["x"], "1"))
    done = subprocess.run(
        ["/bin/bash", str(script)], capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout.splitlines() == [
        "-m",
        "expyrun",
        "_supervise",
        str(run_dir),
        "--copy-output",
    ]


@pytest.mark.parametrize(
    ("written", "number"), [("1:00:00", 3600), ("10:00", 600), ("1:30:00  # comment", 5400)]
)
def test_a_time_limit_read_as_a_base_60_number_is_a_config_error(
    tmp_path: Path, written: str, number: int
) -> None:
    # YAML 1.1 reads an unquoted 1:00:00 as 3600: sbatch would get --time=3600 (minutes).
    with pytest.raises(ConfigError) as caught:
        resolve_text(tmp_path, f"{RUN}  __slurm__:\n    time: {written}\n", run=False)
    message = str(caught.value)
    assert f"as the base-60 number {number}" in message
    assert "__run__.__slurm__.time" in message
    assert 'quote it: time: "' in message
    assert "config.yml:6:" in message


def test_a_quoted_time_limit_reaches_sbatch_as_written(tmp_path: Path) -> None:
    text = f'{RUN}  __slurm__:\n    time: "1:00:00"\n    mem: 4000\n'
    resolved = resolve_text(tmp_path, text, run=False)
    options = slurm_script.sbatch_options(submit.slurm_mapping(resolved))
    assert options == [("time", "1:00:00"), ("mem", "4000")]
