"""Plumbing for the tests that need a real Slurm (marked ``slurm``).

A test marked ``slurm`` runs when a Slurm controller answers ``scontrol ping``
within a few seconds (``launcher/local-slurm.sh start`` sets one up on this
machine). When none answers it is SKIPPED with the reason, unless
``EXPYRUN_REQUIRE_SLURM=1`` (as in CI), where it FAILS with that reason.

The ``slurm`` fixture gives the helpers the Slurm tests share::

    def test_x(slurm, tmp_path):
        job = slurm.submit("#!/bin/bash\\nexit 3\\n", cwd=tmp_path)
        info = slurm.wait_for_state(job, {"FAILED"})
        assert info["ExitCode"] == "3:0"

- ``submit(script, cwd, env=None, options=(), args=())`` runs ``sbatch
  --parsable`` and returns the job id (a string). ``script`` is the text of a
  batch script (str), a batch script file (Path, given ``args``: ``sbatch
  launcher/sbatch-expyrun.sh cfg.yml``), or a command line (a sequence of str,
  passed as ``--wrap``). ``env`` is the whole environment of sbatch, and so of
  the job (default: this process's). Unless ``options`` say otherwise the job
  is named after the test, runs in ``cwd`` and has a 10-minute limit.
- ``wait_for_state(job_id, states, timeout)`` polls ``scontrol show job -o``
  every 0.15 s (not ``sbatch --wait``, which returns seconds late) until every
  record of the job (every task of an array) is in one of ``states``; it
  fails at once when the job ends in another state, and on timeout with the
  job's record and the end of its output file.
- ``job_info(job_id)`` / ``job_infos(job_id)``: ``scontrol show job -o``
  parsed into dicts (``JobState``, ``ExitCode``, ``Restarts``, ...).
- ``track(job_id)`` registers a job submitted another way (``expyrun
  --slurm``, ``sbatch`` as another user): at teardown every job of the test is
  ``scancel``-ed and awaited (bounded), so the next test finds a free node.
- ``wait_for(predicate, timeout, what)``: poll anything else (a file a job
  writes) with a monotonic deadline.
- ``start_requeued(job_id)``: start a requeued (PENDING) job now instead of
  after Slurm's ~2 min requeue delay.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from pathlib import Path

import pytest

REQUIRE_ENV = "EXPYRUN_REQUIRE_SLURM"
PROBE_TIMEOUT_ENV = "EXPYRUN_SLURM_PROBE_TIMEOUT"
POLL_INTERVAL = 0.15
COMMAND_TIMEOUT = 30.0
REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_SLURM = REPO_ROOT / "launcher" / "local-slurm.sh"

# States after which a job does not run again on its own.
END_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)

_KEY_VALUE = re.compile(
    r"(?:^|\s)(?P<key>[A-Za-z][A-Za-z0-9_/:]*)=(?P<value>.*?)(?=\s[A-Za-z][A-Za-z0-9_/:]*=|$)"
)
_UNPROBED = object()
_probe_result: object = _UNPROBED


# ------------------------------------------------------------------ detection


def slurm_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes"}


def _probe() -> str | None:
    timeout = float(os.environ.get(PROBE_TIMEOUT_ENV, "5"))
    hint = "`launcher/local-slurm.sh start` sets up a one-node cluster"
    try:
        proc = subprocess.run(
            ["scontrol", "ping"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        return f"no Slurm: `scontrol` is not on PATH ({hint})"
    except subprocess.TimeoutExpired:
        return f"no Slurm: `scontrol ping` did not answer within {timeout:g} s ({hint})"
    out = " ".join((proc.stdout + proc.stderr).split())
    if proc.returncode != 0 or " is UP" not in out:
        lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines()]
        said = next((line for line in lines if line), "(no output)")
        return f"no Slurm: `scontrol ping` exited {proc.returncode}: {said} ({hint})"
    return None


def slurm_unavailable_reason() -> str | None:
    """None when a Slurm controller answers, else why not (probed once per session)."""
    global _probe_result
    if _probe_result is _UNPROBED:
        _probe_result = _probe()
    assert _probe_result is None or isinstance(_probe_result, str)
    return _probe_result


def require_slurm() -> None:
    """Skip the current test when no Slurm answers; fail under EXPYRUN_REQUIRE_SLURM=1."""
    reason = slurm_unavailable_reason()
    if reason is None:
        return
    if slurm_required():
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}", pytrace=False)
    pytest.skip(f"{reason}; set {REQUIRE_ENV}=1 to fail instead")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("slurm") is not None:
        require_slurm()


# -------------------------------------------------------------------- helpers


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> object:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}", pytrace=False)
        time.sleep(POLL_INTERVAL)


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def _checked(argv: Sequence[str]) -> str:
    proc = _run(argv)
    if proc.returncode != 0:
        pytest.fail(f"{shlex.join(argv)} exited {proc.returncode}: {proc.stderr}", pytrace=False)
    return proc.stdout


def parse_job_record(line: str) -> dict[str, str]:
    """One line of ``scontrol show job -o`` as a dict of its Key=Value fields."""
    return {m["key"]: m["value"] for m in _KEY_VALUE.finditer(line.strip())}


def job_infos(job_id: str | int) -> list[dict[str, str]]:
    """Every record of the job (one per array task); [] once Slurm forgot it."""
    proc = _run(["scontrol", "show", "job", "-o", str(job_id)])
    if proc.returncode != 0:
        if "Invalid job id" in proc.stderr:
            return []
        raise RuntimeError(f"scontrol show job {job_id} failed: {proc.stderr.strip()}")
    return [parse_job_record(line) for line in proc.stdout.splitlines() if line.strip()]


def job_info(job_id: str | int) -> dict[str, str]:
    """The job's record (for an array job id: the record that keeps that id)."""
    records = job_infos(job_id)
    if not records:
        raise LookupError(f"Slurm does not know job {job_id}")
    for record in records:
        if record.get("JobId") == str(job_id):
            return record
    return records[0]


def _state(record: Mapping[str, str]) -> str:
    return record.get("JobState", "?").split()[0]


def _describe(records: Sequence[Mapping[str, str]]) -> str:
    if not records:
        return "Slurm does not know the job"
    lines = []
    for r in records:
        task = f"_{r['ArrayTaskId']}" if r.get("ArrayTaskId") else ""
        lines.append(
            f"{r.get('ArrayJobId', r.get('JobId'))}{task}: JobState={r.get('JobState')} "
            f"Reason={r.get('Reason')} ExitCode={r.get('ExitCode')} StdOut={r.get('StdOut')}"
        )
    tail = _output_tail(records[0].get("StdOut", ""))
    if tail:
        lines.append(f"end of {records[0]['StdOut']}:\n{tail}")
    return "\n".join(lines)


def _output_tail(path: str, lines: int = 20) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except (OSError, ValueError):
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_for_state(
    job_id: str | int,
    states: Collection[str] | str,
    timeout: float = 30.0,
    *,
    fail_on_end: bool = True,
) -> dict[str, str]:
    """Poll until every record of the job is in one of ``states``; return ``job_info``.

    With ``fail_on_end`` (the default), fail at once when a record ends in a
    state that is not awaited (a job awaited COMPLETED that FAILED).
    """
    wanted = {states} if isinstance(states, str) else set(states)
    deadline = time.monotonic() + timeout
    records: list[dict[str, str]] = []
    while True:
        records = job_infos(job_id)
        current = [_state(r) for r in records]
        if records and all(s in wanted for s in current):
            return job_info(job_id)
        if fail_on_end and any(s in END_STATES and s not in wanted for s in current):
            pytest.fail(
                f"job {job_id} ended in {sorted(set(current))} while awaiting "
                f"{sorted(wanted)}:\n{_describe(records)}",
                pytrace=False,
            )
        if time.monotonic() >= deadline:
            pytest.fail(
                f"job {job_id} not in {sorted(wanted)} after {timeout:g} s:\n{_describe(records)}",
                pytrace=False,
            )
        time.sleep(POLL_INTERVAL)


def _has_option(options: Sequence[str], *names: str) -> bool:
    for opt in options:
        for name in names:
            if opt == name or (name.startswith("--") and opt.startswith(name + "=")):
                return True
            if not name.startswith("--") and opt.startswith(name) and len(opt) > len(name):
                return True
    return False


def parse_sbatch_job_id(stdout: str) -> str:
    """The job id printed by ``sbatch --parsable`` ("ID" or "ID;CLUSTER")."""
    first = stdout.strip().splitlines()[0] if stdout.strip() else ""
    job_id = first.split(";")[0].strip()
    if not job_id.isdigit():
        raise ValueError(f"no job id in sbatch output {stdout!r}")
    return job_id


class SlurmJobs:
    """Submit, inspect and await jobs for one test; its jobs are cancelled at teardown."""

    def __init__(self, test_name: str) -> None:
        self.test_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)[:60]
        self.job_ids: list[str] = []

    wait_for = staticmethod(wait_for)
    wait_for_state = staticmethod(wait_for_state)
    job_info = staticmethod(job_info)
    job_infos = staticmethod(job_infos)

    def track(self, job_id: str | int) -> str:
        job_id = str(job_id)
        if job_id not in self.job_ids:
            self.job_ids.append(job_id)
        return job_id

    def submit(
        self,
        script: str | Path | Sequence[str],
        cwd: str | Path,
        env: Mapping[str, str] | None = None,
        options: Sequence[str] = (),
        args: Sequence[str] = (),
    ) -> str:
        """``sbatch --parsable`` the script (text, file or command line); return the job id.

        ``args`` are the batch script's own arguments (a script file only).
        """
        options = list(options)
        argv = ["sbatch", "--parsable", f"--chdir={cwd}"]
        if not _has_option(options, "--job-name", "-J"):
            argv.append(f"--job-name={self.test_name}")
        if not _has_option(options, "--time", "-t"):
            argv.append("--time=10")
        argv += options
        stdin_text = None
        if args and not isinstance(script, Path):
            raise TypeError("args are given to a batch script file only")
        if isinstance(script, Path):
            argv += [str(script), *args]
        elif isinstance(script, str):
            stdin_text = script if script.startswith("#!") else "#!/bin/bash\n" + script
        else:
            argv.append("--wrap=" + shlex.join(script))
        proc = subprocess.run(
            argv,
            input=stdin_text,
            stdin=None if stdin_text is not None else subprocess.DEVNULL,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if proc.returncode != 0:
            pytest.fail(
                f"{shlex.join(argv)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}",
                pytrace=False,
            )
        return self.track(parse_sbatch_job_id(proc.stdout))

    def start_requeued(self, job_id: str | int, timeout: float = 10.0) -> None:
        """Start a requeued job (PENDING, Reason=BeginTime) now, not ~2 min later.

        slurmd refuses a start in the second of the requeue ("Job credential revoked": the
        job FAILS), so the begin time is first set to the next second. Nothing schedules the
        job when that second comes but the backfill pass (every 30 s): once it has come,
        setting the begin time to now schedules the job at once. That second update fails
        ("no longer pending") when the job started meanwhile, which is fine.
        """
        job_id = str(job_id)
        _checked(["scontrol", "update", f"JobId={job_id}", "StartTime=now+1"])
        eligible = datetime.fromisoformat(job_info(job_id)["EligibleTime"])
        wait_for(lambda: datetime.now() >= eligible, timeout, f"job {job_id}'s begin time")
        _run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"])

    def cancel_all(self, timeout: float = 30.0) -> list[str]:
        """scancel every tracked job and wait (bounded) until none runs; return the stragglers."""
        if not self.job_ids:
            return []
        _run(["scancel", *self.job_ids])
        deadline = time.monotonic() + timeout
        while True:
            busy = []
            for job_id in self.job_ids:
                try:
                    records = job_infos(job_id)
                except (RuntimeError, subprocess.TimeoutExpired):
                    records = []
                if any(_state(r) not in END_STATES for r in records):
                    busy.append(job_id)
            if not busy or time.monotonic() >= deadline:
                return busy
            time.sleep(POLL_INTERVAL)


@pytest.fixture
def slurm(request: pytest.FixtureRequest):
    """The job helpers (see the module docstring); needs a Slurm that answers."""
    require_slurm()
    jobs = SlurmJobs(request.node.name)
    yield jobs
    stragglers = jobs.cancel_all()
    if stragglers:
        request.node.warn(
            pytest.PytestWarning(f"jobs still not ended after scancel: {', '.join(stragglers)}")
        )


# ------------------------------------------------- launcher/local-slurm.sh


class LocalSlurm:
    """Drives ``launcher/local-slurm.sh`` against the cluster it started.

    ``env`` repeats the settings of the running cluster (KillWait, process
    tracking, partition, read back from slurm.conf), so that ``start`` finds
    the same configuration and does not restart the daemons.
    """

    def __init__(self, env: dict[str, str], conf: Mapping[str, str]) -> None:
        self.env = env
        self.conf = dict(conf)

    def run(self, command: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """``local-slurm.sh COMMAND`` through subprocess.run(capture_output=True), stdin closed.

        Fails (instead of hanging) when it does not return within ``timeout``:
        a daemon that kept the caller's stdout/stderr open would do that.
        """
        argv = ["bash", str(LOCAL_SLURM), command]
        try:
            return subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                env=self.env,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(
                f"{shlex.join(argv)} did not return within {timeout:g} s (a daemon holding "
                f"the caller's pipes?); output so far: {exc.stdout!r} {exc.stderr!r}",
                pytrace=False,
            )

    def daemons(self) -> dict[str, str]:
        """``{name: "pid (started by local-slurm.sh)" | "pid (not ...)" | "not running"}``."""
        out = self.run("status", timeout=30).stdout
        found = {}
        for match in re.finditer(r"^(munged|slurmctld|slurmd): (.*)$", out, re.MULTILINE):
            found[match[1]] = match[2].replace("running, pid ", "")
        return found


def read_slurm_conf(path: Path = Path("/etc/slurm/slurm.conf")) -> dict[str, str]:
    """Top-level Key=Value settings of slurm.conf (for NodeName/PartitionName: the name)."""
    conf: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" in line:
            key, _, value = line.partition("=")
            conf[key.strip()] = value.split()[0] if value.strip() else ""
    return conf


@pytest.fixture
def local_slurm() -> LocalSlurm:
    """The cluster of ``launcher/local-slurm.sh``, to start/stop it: needs root and a
    cluster that this script started (skip otherwise; fail under EXPYRUN_REQUIRE_SLURM=1).
    """
    require_slurm()

    def unusable(reason: str) -> None:
        if slurm_required():
            pytest.fail(f"{REQUIRE_ENV}=1 but {reason}", pytrace=False)
        pytest.skip(reason)

    if os.geteuid() != 0:
        unusable("local-slurm.sh start/stop need root")
    try:
        conf = read_slurm_conf()
    except OSError as exc:
        unusable(f"cannot read slurm.conf: {exc}")
    env = dict(os.environ)
    env["KILLWAIT"] = conf.get("KillWait", "5")
    env["LOCAL_SLURM_PARTITION"] = conf.get("PartitionName", "debug")
    env["LOCAL_SLURM_PROCTRACK"] = conf.get("ProctrackType", "auto").removeprefix("proctrack/")
    env["LOCAL_SLURM_DEBUG"] = conf.get("SlurmctldDebug", "info")
    cluster = LocalSlurm(env, conf)
    ctld = cluster.daemons().get("slurmctld", "not running")
    if "(started by local-slurm.sh)" not in ctld:
        unusable(
            f"the running Slurm was not started by launcher/local-slurm.sh (slurmctld: {ctld}): "
            "its start/stop are not tested on a cluster it does not own"
        )
    return cluster
