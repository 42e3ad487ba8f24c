"""The local test cluster (launcher/local-slurm.sh) and the Slurm test plumbing, on real Slurm.

Every Slurm behaviour the expyrun Slurm tests rely on is checked here first, with
plain batch scripts: exit codes, a USR1 sent to the batch script, requeue, arrays,
the submitting user. The start/stop test stops the cluster and starts it again,
so it runs last in this file.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")
NOBODY = 65534


@pytest.mark.slurm
@pytest.mark.timeout(60)
def test_start_again_is_a_no_op_and_status_answers(local_slurm):
    before = local_slurm.daemons()

    started = local_slurm.run("start", timeout=30)

    assert started.returncode == 0, started.stderr
    assert "already running" in started.stderr
    assert local_slurm.daemons() == before, "start restarted daemons of a running cluster"
    status = local_slurm.run("status", timeout=30)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "slurmctld: running" in status.stdout
    assert local_slurm.conf["PartitionName"] in status.stdout


@pytest.mark.slurm
@pytest.mark.timeout(60)
def test_trivial_job_completes_with_exit_code_0(slurm, tmp_path):
    job = slurm.submit(["true"], cwd=tmp_path)

    info = slurm.wait_for_state(job, {"COMPLETED"})

    assert info["ExitCode"] == "0:0"
    assert info["UserId"].endswith(f"({os.getuid()})")


@pytest.mark.slurm
@pytest.mark.timeout(60)
def test_exit_3_job_fails_with_exit_code_3(slurm, tmp_path):
    job = slurm.submit("#!/bin/bash\nexit 3\n", cwd=tmp_path)

    info = slurm.wait_for_state(job, {"FAILED"})

    assert info["ExitCode"] == "3:0"


@pytest.mark.slurm
@pytest.mark.timeout(60)
def test_scancel_usr1_batch_reaches_the_batch_script_trap(slurm, tmp_path):
    script = """#!/bin/bash
trap 'echo "$SLURM_JOB_ID" > usr1.tmp && mv usr1.tmp usr1; kill "$child"; exit 0' USR1
sleep 300 &
child=$!
echo ready > ready.tmp && mv ready.tmp ready
wait "$child"
"""
    job = slurm.submit(script, cwd=tmp_path)
    slurm.wait_for(lambda: (tmp_path / "ready").exists(), 30, f"job {job} to write 'ready'")

    sent = subprocess.run(
        ["scancel", "--signal=USR1", "--batch", job], capture_output=True, text=True, timeout=30
    )

    assert sent.returncode == 0, sent.stderr
    slurm.wait_for(lambda: (tmp_path / "usr1").exists(), 30, f"job {job}'s USR1 trap")
    assert (tmp_path / "usr1").read_text().strip() == job
    info = slurm.wait_for_state(job, {"COMPLETED"})
    assert info["ExitCode"] == "0:0"


@pytest.mark.slurm
@pytest.mark.timeout(90)
def test_requeue_runs_the_job_again_with_restart_count_1(slurm, tmp_path):
    script = """#!/bin/bash
n=${SLURM_RESTART_COUNT:-0}
echo "$SLURM_JOB_ID $n" > "run.$n.tmp" && mv "run.$n.tmp" "run.$n"
if [ "$n" = 0 ]; then exec sleep 300; fi
"""
    job = slurm.submit(script, cwd=tmp_path)
    slurm.wait_for(lambda: (tmp_path / "run.0").exists(), 30, f"job {job}'s first run")

    requeue = subprocess.run(
        ["scontrol", "requeue", job], capture_output=True, text=True, timeout=30
    )
    assert requeue.returncode == 0, requeue.stderr
    pending = slurm.wait_for_state(job, {"PENDING"})
    # Slurm holds a requeued job back ~2 min (Reason=BeginTime): start it in the next second
    # (slurmd refuses a start in the second of the requeue: "Job credential revoked").
    slurm.start_requeued(job)

    info = slurm.wait_for_state(job, {"COMPLETED"})
    assert pending["Reason"] == "BeginTime"
    assert (tmp_path / "run.1").read_text().split() == [job, "1"]
    assert info["Restarts"] == "1"


@pytest.mark.slurm
@pytest.mark.timeout(60)
def test_array_job_runs_four_tasks_with_their_ids(slurm, tmp_path):
    script = """#!/bin/bash
t=$SLURM_ARRAY_TASK_ID
echo "$SLURM_ARRAY_JOB_ID $t $SLURM_ARRAY_TASK_COUNT" > "task.$t.tmp" && mv "task.$t.tmp" "task.$t"
"""
    job = slurm.submit(script, cwd=tmp_path, options=["--array=0-3"])

    slurm.wait_for_state(job, {"COMPLETED"})

    tasks = sorted(p.read_text().split() for p in tmp_path.glob("task.*"))
    assert tasks == [[job, str(i), "4"] for i in range(4)]
    records = slurm.job_infos(job)
    assert sorted(r["ArrayTaskId"] for r in records) == ["0", "1", "2", "3"]
    assert {r["ArrayJobId"] for r in records} == {job}
    assert {r["ExitCode"] for r in records} == {"0:0"}


@pytest.fixture
def shared_dir():
    """A folder every user can write (pytest's tmp_path is private to its owner)."""
    path = Path(tempfile.mkdtemp(prefix="expyrun-slurm-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slurm
@pytest.mark.timeout(60)
def test_job_runs_as_the_submitting_user(slurm, shared_dir):
    if os.geteuid() == 0:
        try:
            pwd.getpwuid(NOBODY)
        except KeyError:
            pytest.skip(f"no user {NOBODY} to submit as")
        uid = NOBODY
        as_user = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    else:
        uid, as_user = os.getuid(), []
    proc = subprocess.run(
        [*as_user, "sbatch", "--parsable", f"--chdir={shared_dir}", "--time=5", "--wrap=id -u"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    job = slurm.track(proc.stdout.strip().split(";")[0])

    info = slurm.wait_for_state(job, {"COMPLETED"})

    assert info["UserId"].endswith(f"({uid})")
    assert (shared_dir / f"slurm-{job}.out").read_text().strip() == str(uid)


# Runs last: it stops the cluster and starts it again.
@pytest.mark.slurm
@pytest.mark.timeout(120)
def test_stop_and_start_return_when_called_with_captured_output(local_slurm, slurm, tmp_path):
    try:
        stopped = local_slurm.run("stop", timeout=60)

        assert stopped.returncode == 0, stopped.stderr
        assert local_slurm.run("status", timeout=30).returncode != 0
        assert set(local_slurm.daemons().values()) == {"not running"}
        again = local_slurm.run("stop", timeout=30)
        assert again.returncode == 0, again.stderr
        assert "nothing to stop" in again.stderr
        started = local_slurm.run("start", timeout=90)
        assert started.returncode == 0, started.stderr
        assert local_slurm.run("status", timeout=30).returncode == 0
        job = slurm.submit(["true"], cwd=tmp_path)
        assert slurm.wait_for_state(job, {"COMPLETED"})["ExitCode"] == "0:0"
    finally:
        if local_slurm.run("status", timeout=30).returncode != 0:
            local_slurm.run("start", timeout=90)


# Not marked slurm: checks the skip/fail gate itself, with a stand-in `scontrol`
# (no real process can be made "not answering" while the real cluster runs).
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("scontrol", "reason"),
    [
        pytest.param(
            'echo "slurm_ping error: Unable to contact slurm controller" >&2; exit 1',
            "`scontrol ping` exited 1: slurm_ping error: Unable to contact slurm controller",
            id="refused",
        ),
        pytest.param("exec sleep 30", "`scontrol ping` did not answer within 1 s", id="hangs"),
    ],
)
def test_slurm_tests_skip_without_slurm_and_fail_when_required(tmp_path, scontrol, reason):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(CONFTEST, project / "conftest.py")
    (project / "pytest.ini").write_text("[pytest]\nmarkers =\n    slurm: needs Slurm\n")
    (project / "test_gate.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.slurm\n"
        "def test_marked():\n    pass\n\n"
        "def test_uses_fixture(slurm):\n    pass\n\n"
        "def test_plain():\n    pass\n"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "scontrol"
    fake.write_text(f"#!/bin/sh\n{scontrol}\n")
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "EXPYRUN_REQUIRE_SLURM"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["EXPYRUN_SLURM_PROBE_TIMEOUT"] = "1"
    argv = [sys.executable, "-m", "pytest", "-rsE", "-p", "no:cacheprovider", str(project)]

    def run(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            cwd=project,
            env={**env, **extra},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=45,
        )

    skipped = run()
    required = run(EXPYRUN_REQUIRE_SLURM="1")

    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert "1 passed, 2 skipped" in skipped.stdout
    assert reason in skipped.stdout
    assert "set EXPYRUN_REQUIRE_SLURM=1 to fail instead" in skipped.stdout
    assert required.returncode == 1, required.stdout + required.stderr
    assert "1 passed, 2 errors" in required.stdout
    assert f"EXPYRUN_REQUIRE_SLURM=1 but no Slurm: {reason}" in required.stdout
