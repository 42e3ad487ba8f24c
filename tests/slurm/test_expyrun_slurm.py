"""expyrun on a real Slurm: run by the launcher recipe, submitting with `--slurm`, signals,
time limits, requeue and arrays (issue 7).

Every job runs the same entry point: it counts the SIGUSR1 it receives in `usr1`, saves a
checkpoint on SIGTERM and returns (or ignores SIGTERM), and resumes from the checkpoint an
earlier attempt left in its cwd (the run folder). It writes `ready.N` once attempt N
installed its handlers: the tests signal a job only after that file exists, and never sleep
to synchronise. Jobs ask for one CPU, so two fit on the test node at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import Project, child_env, read_json, run, start

from expyrun.slurm import job as expyrun_slurm

LAUNCHER = Path(__file__).resolve().parents[2] / "launcher"
RECIPE = LAUNCHER / "sbatch-expyrun.sh"
GPU_RECIPE = LAUNCHER / "sbatch-expyrun-gpu.sh"
# The recipe asks for 2 CPUs and 4 GB: the test node has 2 CPUs, so jobs would queue.
SMALL_JOB = ("--cpus-per-task=1", "--mem=1G")

ENTRY = """
from pkg.version import CODE


def note(path, text):
    with open(path, "a") as f:
        f.write(text + "\\n")


stopping = []
signal.signal(signal.SIGUSR1, lambda signum, frame: note("usr1", "USR1"))
on_term = signal.SIG_IGN if config.get("ignore_term") else lambda *_: stopping.append("SIGTERM")
signal.signal(signal.SIGTERM, on_term)
attempt = os.environ["EXPYRUN_ATTEMPT"]
step = int(open("checkpoint").read()) if os.path.exists("checkpoint") else 0
task = os.environ.get("SLURM_ARRAY_TASK_ID")
threads = os.environ.get("OMP_NUM_THREADS")
print(f"attempt {attempt} from step {step}, code {CODE}, seed {config['seed']}, task {task}")
print(f"OMP_NUM_THREADS={threads}")
sys.stdout.flush()
open(f"ready.{attempt}", "w").close()
deadline = time.monotonic() + config["seconds"]
while not stopping and not os.path.exists("stop") and time.monotonic() < deadline:
    time.sleep(0.05)
    step += 1
if stopping:
    with open("checkpoint.tmp", "w") as f:
        f.write(str(step))
    os.replace("checkpoint.tmp", "checkpoint")
    print(f"{stopping[0]}: checkpoint saved at step {step}", flush=True)
else:
    print(f"done at step {step}", flush=True)
"""


def _project(project: Project, seconds: float, slurm: dict | None = None, **extra) -> Path:
    """The entry's code and a config running it for `seconds` (or until stopped)."""
    project.write("pkg/version.py", 'CODE = "original"\n')
    entry = project.entry(ENTRY)
    run_keys = {"__slurm__": slurm} if slurm is not None else {}
    return project.config(entry, extra={"seconds": seconds, "seed": 0, **extra}, **run_keys)


def _job_env() -> dict[str, str]:
    """The environment of sbatch, and so of the job: this venv's `expyrun` first on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    return child_env({"PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")})


def _submit_recipe(
    slurm, project: Project, config: Path, *options: str, args=(), recipe: Path = RECIPE
) -> str:
    return slurm.submit(
        recipe,
        cwd=project.root,
        env=_job_env(),
        options=[*SMALL_JOB, *options],
        args=[str(config), *args],
    )


def _submit_expyrun(slurm, project: Project, config: Path, *args: str) -> tuple[str, list[Path]]:
    """`expyrun CONFIG --slurm ARGS`: the job id (tracked) and the run folders it printed."""
    result = run([config, "--slurm", *args], cwd=project.root, env=_job_env())
    assert result.code == 0, result.describe()
    job, *run_dirs = result.stdout.split()
    slurm.track(job)
    assert job.isdigit(), result.describe()
    assert "warning" not in result.stderr, result.describe()
    return job, [Path(path) for path in run_dirs]


def _wait_ready(slurm, run_dir: Path, job: str, attempt: int = 1) -> None:
    def ready() -> bool:
        if (run_dir / f"ready.{attempt}").exists():
            return True
        infos = slurm.job_infos(job)
        states = {info.get("JobState") for info in infos}
        assert not states & {"FAILED", "CANCELLED", "COMPLETED", "TIMEOUT"}, _describe(job, infos)
        return False

    slurm.wait_for(ready, 60, f"attempt {attempt} of job {job} to be ready in {run_dir}")


def _describe(job: str, infos: list[dict[str, str]]) -> str:
    text = f"job {job} ended early: {[(i.get('JobState'), i.get('Reason')) for i in infos]}"
    for info in infos[:1]:
        path = Path(info.get("StdOut", ""))
        if path.is_file():
            text += f"\n--- {path} ---\n{path.read_text(errors='replace')}"
    return text


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _scontrol(*args: str) -> None:
    done = subprocess.run(
        ["scontrol", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, f"scontrol {' '.join(args)}: {done.stderr}"


def _expyrun(project: Project, *args: str | Path):
    return run(list(args), cwd=project.root, env=_job_env())


# --- the launcher recipe ----------------------------------------------------------------------


@pytest.mark.slurm
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("recipe", "options"),
    [
        pytest.param(RECIPE, (), id="cpu"),
        pytest.param(GPU_RECIPE, ("--gres=none",), id="gpu"),  # the test node has no GPU
    ],
)
def test_recipe_job_succeeds_and_records_its_slurm_ids(slurm, project, recipe, options):
    config = _project(project, seconds=0)

    # The recipe's arguments are expyrun's: the config, then overrides.
    job = _submit_recipe(slurm, project, config, *options, args=["--seed", "7"], recipe=recipe)
    info = slurm.wait_for_state(job, {"COMPLETED"})

    assert info["ExitCode"] == "0:0"
    [run_dir] = project.run_dirs()
    record = read_json(run_dir / "run.json")
    assert record["status"] == "succeeded", record
    assert record["slurm"]["job_id"] == job
    assert record["slurm"]["node_list"] == info["NodeList"]
    assert record["slurm"]["partition"] == info["Partition"]
    assert record["slurm"]["restart_count"] == 0
    assert record["slurm"]["array_task_id"] is None
    assert [a["attempt"] for a in record["attempts"]] == [1]
    # expyrun is the batch task: its messages and the run's output reach the job's output file.
    job_output = Path(info["StdOut"]).read_text()
    assert f"expyrun: run folder: {run_dir}" in job_output
    assert "attempt 1 from step 0, code original, seed 7" in job_output
    assert "attempt 1 from step 0" in (run_dir / "outputs.log").read_text()
    if recipe == GPU_RECIPE:  # numpy/torch threads: the CPUs the job has, not the node's
        assert "OMP_NUM_THREADS=1\n" in job_output


@pytest.mark.slurm
@pytest.mark.timeout(60)
def test_scancel_usr1_batch_reaches_the_entry_handler_exactly_once(slurm, project):
    config = _project(project, seconds=60)
    job = _submit_recipe(slurm, project, config)
    run_dir = project.output / "exp" / "exp.0"
    _wait_ready(slurm, run_dir, job)

    done = subprocess.run(
        ["scancel", "--signal=USR1", "--batch", job], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    slurm.wait_for(lambda: (run_dir / "usr1").exists(), 30, "the entry's SIGUSR1 handler")
    (run_dir / "stop").touch()
    info = slurm.wait_for_state(job, {"COMPLETED"})

    # The run ended after the handler ran: a second copy of the signal would be counted.
    assert _lines(run_dir / "usr1") == ["USR1"]
    record = read_json(run_dir / "run.json")
    assert record["status"] == "succeeded", record
    assert record["signal"] is None
    assert "forwarded SIGUSR1 to the worker" in Path(info["StdOut"]).read_text()


@pytest.mark.slurm
@pytest.mark.timeout(180)
def test_time_limit_warns_with_usr1_then_runs_the_checkpoint_path(slurm, project):
    config = _project(project, seconds=600)
    # Slurm sends the warning at its first time check (every 30 s) with less than N + 30 s
    # left: with N = 20, 10 to 40 s after the start, after the entry installed its handler.
    job = _submit_recipe(slurm, project, config, "--time=1", "--signal=B:USR1@20")
    run_dir = project.output / "exp" / "exp.0"
    _wait_ready(slurm, run_dir, job)

    slurm.wait_for(lambda: (run_dir / "usr1").exists(), 70, "the time limit's warning signal")
    # The limit comes 60 s after the start, enforced up to 30 s late; then KillWait (5 s).
    info = slurm.wait_for_state(job, {"TIMEOUT"}, timeout=120)

    assert info["Reason"] == "TimeLimit"
    assert _lines(run_dir / "usr1") == ["USR1"]
    assert (run_dir / "checkpoint").exists()
    assert "SIGTERM: checkpoint saved" in (run_dir / "outputs.log").read_text()
    record = read_json(run_dir / "run.json")
    # The entry returned after its checkpoint, because Slurm asked: stopped (issue 14).
    assert record["status"] == "stopped", record
    assert record["signal"] == "SIGTERM"
    assert record["stop_request"]["by"] == "slurm"
    assert record["stop_request"]["reason"] == "TimeLimit"
    assert record["killed_after_grace"] is False
    assert record["slurm"]["end_reason"] == "TimeLimit"
    assert record["attempts"][-1]["slurm_end_reason"] == "TimeLimit"
    status = _expyrun(project, "status", run_dir)
    assert "ending: TimeLimit" in status.stdout, status.describe()


# --- requeue ----------------------------------------------------------------------------------


@pytest.mark.slurm
@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["recipe", "--slurm"])
def test_requeue_resumes_the_same_run_folder_as_attempt_2(slurm, project, how):
    config = _project(project, seconds=600)
    if how == "recipe":
        job = _submit_recipe(slurm, project, config)
        run_dir = project.output / "exp" / "exp.0"
    else:
        job, [run_dir] = _submit_expyrun(slurm, project, config)
    _wait_ready(slurm, run_dir, job)

    _scontrol("requeue", job)
    pending = slurm.wait_for_state(job, {"PENDING"})
    assert (run_dir / "checkpoint").exists()
    (run_dir / "stop").touch()  # the second attempt ends at once
    slurm.start_requeued(job)
    info = slurm.wait_for_state(job, {"COMPLETED"}, timeout=60)

    assert pending["Restarts"] == "1"
    assert info["Restarts"] == "1"
    assert project.run_dirs() == [run_dir], "the requeued job made a new run folder"
    saved = int((run_dir / "checkpoint").read_text())
    log = (run_dir / "outputs.log").read_text()
    separator = f"===== expyrun: attempt 2 (Slurm job {job}, restart 1, on "
    assert separator in log
    first, second = log.split(separator)
    assert "attempt 1 from step 0" in first
    assert f"SIGTERM: checkpoint saved at step {saved}" in first
    assert f"attempt 2 from step {saved}" in second
    assert f"done at step {saved}" in second
    record = read_json(run_dir / "run.json")
    assert record["status"] == "succeeded", record
    assert record["slurm"]["job_id"] == job
    assert record["slurm"]["restart_count"] == 1
    attempts = record["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert [a["restart_count"] for a in attempts] == [0, 1]
    assert [a["signal"] for a in attempts] == ["SIGTERM", None]
    assert [a["status"] for a in attempts] == ["stopped", "succeeded"]
    assert attempts[0]["stop_request"]["by"] == "slurm"
    assert "stop_request" not in attempts[1]
    assert [a.get("slurm_end_reason") for a in attempts] == ["Requeued", None]
    assert "end_reason" not in record["slurm"]  # the last attempt's, which just ended


@pytest.mark.slurm
@pytest.mark.timeout(90)
def test_requeue_after_expyrun_was_killed_records_the_lost_attempt(slurm, project):
    """As after a node failure: the first attempt never recorded its end."""
    config = _project(project, seconds=600)
    job, [run_dir] = _submit_expyrun(slurm, project, config)
    _wait_ready(slurm, run_dir, job)

    done = subprocess.run(
        ["scancel", "--signal=KILL", "--batch", job], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    slurm.wait_for_state(job, {"FAILED"})
    assert read_json(run_dir / "run.json")["status"] == "running"
    assert "status     lost" in _expyrun(project, "status", run_dir).stdout
    (run_dir / "stop").touch()
    _scontrol("requeue", job)
    slurm.wait_for_state(job, {"PENDING"})
    slurm.start_requeued(job)
    slurm.wait_for_state(job, {"COMPLETED"}, timeout=60)

    assert project.run_dirs() == [run_dir]
    record = read_json(run_dir / "run.json")
    assert record["status"] == "succeeded", record
    assert [a["status"] for a in record["attempts"]] == ["lost", "succeeded"]
    log = (run_dir / "outputs.log").read_text()
    assert f"===== expyrun: attempt 2 (Slurm job {job}, restart 1, on " in log
    assert "attempt 2 from step 0" in log  # no checkpoint: the first attempt was killed


# --- expyrun CONFIG --slurm -------------------------------------------------------------------


@pytest.mark.slurm
@pytest.mark.timeout(90)
def test_held_submission_runs_the_snapshot_not_the_code_edited_meanwhile(slurm, project):
    config = _project(project, seconds=0, slurm={"hold": None})

    job, [run_dir] = _submit_expyrun(slurm, project, config, "--__run__.__slurm__.hold", "true")

    held = slurm.job_info(job)
    assert (held["JobState"], held["Reason"]) == ("PENDING", "JobHeldUser")
    record = read_json(run_dir / "run.json")
    assert record["status"] == "pending"
    assert record["slurm"]["job_id"] == job
    listed = json.loads(_expyrun(project, "ls", project.output, "--json").stdout)
    assert [(row["run_dir"], row["status"]) for row in listed] == [(str(run_dir), "pending")]
    status = _expyrun(project, "status", run_dir)
    assert status.code == 0, status.describe()
    assert "status     pending" in status.stdout
    follower = start(["logs", "-f", run_dir], cwd=project.root, env=_job_env())
    try:
        project.write("pkg/version.py", 'CODE = "edited"\n')
        _scontrol("release", job)
        slurm.wait_for_state(job, {"COMPLETED"})
        followed, _ = follower.communicate(timeout=30)
    finally:
        follower.kill()
        follower.wait()

    assert follower.returncode == 0
    assert b"attempt 1 from step 0, code original" in followed
    log = (run_dir / "outputs.log").read_text()
    assert "code original" in log
    assert "edited" not in log
    record = read_json(run_dir / "run.json")
    assert record["status"] == "succeeded", record
    assert record["slurm"]["job_id"] == job
    assert record["slurm"]["node_list"]
    assert "code original" in Path(record["slurm"]["output"]).read_text()


@pytest.mark.slurm
@pytest.mark.timeout(60)
def test_stop_cancels_a_pending_submission(slurm, project):
    config = _project(project, seconds=0, slurm={"hold": True})
    job, [run_dir] = _submit_expyrun(slurm, project, config)

    stopped = _expyrun(project, "stop", run_dir)

    assert stopped.code == 0, stopped.describe()
    assert f"cancelled Slurm job {job}" in stopped.stderr
    assert slurm.job_info(job)["JobState"] == "CANCELLED"
    record = read_json(run_dir / "run.json")
    assert record["status"] == "cancelled"
    assert record["ended_at"]
    status = _expyrun(project, "status", run_dir)
    assert status.code == 1
    assert "status     cancelled" in status.stdout
    assert not (run_dir / "outputs.log").exists()


@pytest.mark.slurm
@pytest.mark.timeout(60)
def test_stop_ends_a_running_submission_gracefully(slurm, project):
    config = _project(project, seconds=600)
    job, [run_dir] = _submit_expyrun(slurm, project, config)
    _wait_ready(slurm, run_dir, job)

    stopped = _expyrun(project, "stop", run_dir)

    assert stopped.code == 0, stopped.describe()
    assert f"(Slurm job {job})" in stopped.stderr
    slurm.wait_for_state(job, {"CANCELLED"})
    assert (run_dir / "checkpoint").exists()
    record = read_json(run_dir / "run.json")
    assert record["status"] == "stopped", record
    assert record["stop_request"]["by"] == "expyrun stop"
    assert record["signal"] == "SIGTERM"
    assert record["killed_after_grace"] is False
    assert "SIGTERM: checkpoint saved" in (run_dir / "outputs.log").read_text()


@pytest.mark.slurm
@pytest.mark.timeout(60)
def test_entry_ignoring_sigterm_is_killed_and_recorded_within_killwait(slurm, project):
    config = _project(project, seconds=600, ignore_term=True)
    job, [run_dir] = _submit_expyrun(slurm, project, config)
    _wait_ready(slurm, run_dir, job)

    done = subprocess.run(["scancel", job], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    info = slurm.wait_for_state(job, {"CANCELLED"})

    # expyrun exited by itself (128 + SIGTERM), before Slurm's SIGKILL (it would read 0:9).
    assert info["ExitCode"] == "143:0"
    kill_wait, _ = expyrun_slurm.kill_wait_seconds()
    record = read_json(run_dir / "run.json")
    assert record["grace_s"] == kill_wait - expyrun_slurm.KILL_WAIT_MARGIN_SECONDS
    assert record["status"] == "killed", record
    assert record["signal"] == "SIGTERM"
    assert record["killed_after_grace"] is True
    assert not (run_dir / "checkpoint").exists()


# --- arrays -----------------------------------------------------------------------------------


@pytest.mark.slurm
@pytest.mark.timeout(90)
def test_slurm_array_of_four_gives_four_run_folders(slurm, project):
    # Each task writes its own output file, named with its own job id (%j).
    options = {"array": "0-3", "job-name": "four", "output": "%x-%A_%a-%j.out"}
    config = _project(project, seconds=0, slurm=options, seed="${SLURM_ARRAY_TASK_ID}")

    # Each task's config is resolved with its task id: no warning, even under --strict.
    job, run_dirs = _submit_expyrun(slurm, project, config, "--strict")
    slurm.wait_for_state(job, {"COMPLETED"}, timeout=60)

    assert run_dirs == project.run_dirs()
    assert len(run_dirs) == 4
    for task, run_dir in enumerate(run_dirs):
        record = read_json(run_dir / "run.json")
        assert record["status"] == "succeeded", record
        assert record["slurm"]["array_job_id"] == job
        assert record["slurm"]["array_task_id"] == str(task)
        assert f"seed {task}, task {task}" in (run_dir / "outputs.log").read_text()
        output = Path(record["slurm"]["output"])
        assert output.name == f"four-{job}_{task}-{record['slurm']['job_id']}.out"
        assert f"seed {task}, task {task}" in output.read_text()


@pytest.mark.slurm
@pytest.mark.timeout(90)
def test_recipe_array_of_four_gives_four_run_folders(slurm, project):
    config = _project(project, seconds=0)

    job = _submit_recipe(slurm, project, config, "--array=0-3")
    slurm.wait_for_state(job, {"COMPLETED"}, timeout=60)

    run_dirs = project.run_dirs()
    assert len(run_dirs) == 4
    records = [read_json(run_dir / "run.json") for run_dir in run_dirs]
    assert {r["status"] for r in records} == {"succeeded"}
    assert {r["slurm"]["array_job_id"] for r in records} == {job}
    assert sorted(r["slurm"]["array_task_id"] for r in records) == ["0", "1", "2", "3"]


# --- what goes wrong --------------------------------------------------------------------------


@pytest.mark.slurm
@pytest.mark.timeout(60)
def test_sbatch_refusing_the_job_leaves_no_run_folder(slurm, project):
    config = _project(project, seconds=0, slurm={"partition": "no-such-partition"})

    result = _expyrun(project, config, "--slurm")

    assert result.code == 69, result.describe()  # EX_UNAVAILABLE: sbatch failed, not the input
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("expyrun: error: sbatch failed"), line
    assert "Invalid partition name specified" in line
    assert not project.output.exists()


# `expyrun ARGS` with a SIGTERM sent to itself right after sbatch answered (the job taken by
# the controller, its id not read yet); prints the id sbatch gave on stderr.
SIGNAL_AFTER_SBATCH = """
import os, signal, sys
from expyrun import cli
from expyrun.slurm import commands

call = commands.call


def answered(argv, *args, **kwargs):
    out = call(argv, *args, **kwargs)
    if argv[0] == "sbatch":
        print("sbatch gave", out.strip(), file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
    return out


commands.call = answered
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slurm
@pytest.mark.timeout(60)
def test_a_stop_signal_as_sbatch_answers_leaves_no_job_and_no_run_folder(slurm, project):
    """The job was left held in the queue for good, its run folder removed."""
    config = _project(project, seconds=0)
    command = [sys.executable, "-c", SIGNAL_AFTER_SBATCH]

    result = run([config, "--slurm"], cwd=project.root, env=_job_env(), command=command)

    job = result.stderr.split("sbatch gave ", 1)[1].split()[0]
    slurm.track(job)
    assert result.code == 143, result.describe()
    assert "expyrun: error: interrupted (SIGTERM)" in result.stderr
    assert not project.output.exists()
    assert {info.get("JobState") for info in slurm.job_infos(job)} == {"CANCELLED"}
