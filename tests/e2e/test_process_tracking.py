"""Every process of a run is found without its cooperation and stopped with the run.

The entries below use the process patterns ML code really has: multiprocessing's fork start
method (Linux's default, PyTorch DataLoader's), a python-daemon style double fork that closes
its fds, a child exec'd with an explicit environment (no run marker), a process that holds the
output pipes. Each test runs with each tracking mechanism this machine offers: the run's own
cgroup v2 (when the supervisor may create one; skipped otherwise) and the subreaper fallback
(EXPYRUN_TRACKING=subreaper). The entries write their processes' pids to files; a test then
checks that none of them is alive (zombies count as ended).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from support import (
    RUN_FOLDER_LINE,
    Project,
    process_alive,
    read_json,
    run,
    start,
    start_in_terminal,
    wait_for,
    worker_pid,
)

# A fork Pool of two, whose tasks sleep; pids in pool.pids, then `ready`.
POOL_ENTRY = """
import multiprocessing
pool = multiprocessing.get_context("fork").Pool(2)
pool.map_async(time.sleep, [120, 120])
open("pool.pids", "w").write(" ".join(str(p.pid) for p in pool._pool))
open("ready", "w").close()
while not os.path.exists("stop"):
    time.sleep(0.01)
"""

# A python-daemon style daemon (fork, setsid, fork, fds to /dev/null), then the entry returns.
DAEMON_ENTRY = """
if os.fork() == 0:
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    open("daemon.pid", "w").write(str(os.getpid()))
    time.sleep(120)
    os._exit(0)
os.wait()
wait = time.monotonic() + 10
while not os.path.exists("daemon.pid") and time.monotonic() < wait:
    time.sleep(0.01)
print("entry returned", flush=True)
"""

# A daemon exec'd with an explicit environment (no marker), double-forked, fds closed: only
# the cgroup or the subreaper can find it.
HIDDEN_DAEMON = r"""
import os, sys, time
if os.fork() > 0:
    os._exit(0)
os.setsid()
if os.fork() > 0:
    os._exit(0)
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
open(sys.argv[1], "w").write(str(os.getpid()))
time.sleep(120)
"""
HIDDEN_DAEMON_ENTRY = """
subprocess.run(
    [sys.executable, "-c", HIDDEN_DAEMON, "daemon.pid"],
    env={"PATH": os.environ.get("PATH", "")},
    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    close_fds=True, check=True,
)
wait = time.monotonic() + 10
while not os.path.exists("daemon.pid") and time.monotonic() < wait:
    time.sleep(0.01)
print("entry returned", flush=True)
"""

# A leftover that keeps the output pipes open (fork, no exec, not a daemon).
PIPE_HOLDER_ENTRY = """
if os.fork() == 0:
    open("holder.pid", "w").write(str(os.getpid()))
    while True:
        time.sleep(0.05)
wait = time.monotonic() + 10
while not os.path.exists("holder.pid") and time.monotonic() < wait:
    time.sleep(0.01)
print("entry returned", flush=True)
"""

# A leftover that ignores SIGTERM and keeps the pipes; the entry returns once it runs.
STUBBORN_LEFTOVER_ENTRY = """
if os.fork() == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    open("holder.pid", "w").write(str(os.getpid()))
    while True:
        time.sleep(0.05)
while not os.path.exists("holder.pid"):
    time.sleep(0.01)
print("entry returned", flush=True)
"""

MODES = ["cgroup", "subreaper"]


def _pids(run_dir: Path, name: str) -> list[int]:
    return [int(pid) for pid in (run_dir / name).read_text().split()]


def _read_until(process: subprocess.Popen[bytes], text: bytes) -> None:
    """Read expyrun's stderr line by line until one holds `text` (fails at end of file)."""
    assert process.stderr is not None
    for line in process.stderr:
        if text in line:
            return
    raise AssertionError(f"expyrun's stderr ended without {text!r}")


def _all_ended(pids: list[int]) -> bool:
    return not any(process_alive(pid) for pid in pids)


def _entry(project: Project, body: str) -> str:
    prelude = f"HIDDEN_DAEMON = {HIDDEN_DAEMON!r}\n"
    return project.entry(prelude + "import subprocess, sys\n" + body)


def _check_mode(run_dir: Path, mode: str) -> None:
    tracking = read_json(run_dir / "run.json").get("tracking")
    if mode == "cgroup" and tracking != "cgroup":
        pytest.skip("cgroup v2 is not writable by this user here: the subreaper is used")
    assert tracking == mode


def _env(mode: str) -> dict[str, str]:
    return {"EXPYRUN_TRACKING": mode}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("how", ["SIGTERM", "SIGTERM-twice", "SIGKILL"])
def test_fork_pool_children_end_with_a_stopped_run(project: Project, mode: str, how: str) -> None:
    config = project.config(_entry(project, POOL_ENTRY))
    process = start([config, "--grace", "30"], cwd=project.root, env=_env(mode))
    run_dir = project.output / "exp" / "exp.0"
    try:
        wait_for(lambda: (run_dir / "ready").exists(), 30, "the pool to start")
        pool = _pids(run_dir, "pool.pids")
        assert all(process_alive(pid) for pid in pool)
        if how == "SIGKILL":
            process.send_signal(signal.SIGKILL)
        else:
            process.send_signal(signal.SIGTERM)
            if how == "SIGTERM-twice":
                _read_until(process, b"received SIGTERM")
                process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=20)  # far less than the 30 s grace
        wait_for(lambda: _all_ended(pool), 10, "the fork pool's children to end")
    finally:
        process.kill()
        process.communicate()
    if how == "SIGKILL":
        return  # the record is left `running` (stale): `ls` shows it as lost
    record = read_json(run_dir / "run.json")
    _check_mode(run_dir, mode)
    assert process.returncode == 128 + signal.SIGTERM, err.decode()
    assert record["status"] == "killed"
    assert record["signal"] == "SIGTERM"


@pytest.mark.parametrize("mode", MODES)
def test_expyrun_stop_ends_a_detached_run_with_a_fork_pool(project: Project, mode: str) -> None:
    config = project.config(_entry(project, POOL_ENTRY))
    detached = run([config, "--detach", "--grace", "30"], cwd=project.root, env=_env(mode))
    assert detached.code == 0, detached.describe()
    run_dir = project.output / "exp" / "exp.0"
    wait_for(lambda: (run_dir / "ready").exists(), 30, "the pool to start")
    pool = _pids(run_dir, "pool.pids")
    stopped = run(["stop", str(run_dir)], cwd=project.root, timeout=60)
    assert stopped.code == 0, stopped.describe()
    wait_for(lambda: _all_ended(pool), 10, "the fork pool's children to end")
    record = read_json(run_dir / "run.json")
    assert record["status"] == "killed"
    _check_mode(run_dir, mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("body", "pid_file"),
    [
        pytest.param(DAEMON_ENTRY, "daemon.pid", id="double-fork-daemon"),
        pytest.param(HIDDEN_DAEMON_ENTRY, "daemon.pid", id="explicit-env-daemon"),
        pytest.param(PIPE_HOLDER_ENTRY, "holder.pid", id="pipe-holder"),
    ],
)
def test_a_leftover_ends_soon_after_the_entry_returns(
    project: Project, mode: str, body: str, pid_file: str
) -> None:
    config = project.config(_entry(project, body))
    started = time.monotonic()
    result = run([config], cwd=project.root, env=_env(mode), timeout=60)
    elapsed = time.monotonic() - started
    assert result.code == 0, result.describe()
    run_dir = result.run_dir
    leftover = _pids(run_dir, pid_file)
    assert _all_ended(leftover), "the leftover outlived expyrun"
    record = read_json(run_dir / "run.json")
    assert record["status"] == "succeeded"
    assert record["leftover_processes"] >= 1
    assert record["duration_s"] < elapsed  # the entry's time, not the drain's
    assert "process(es) behind: terminating them" in result.stderr
    assert "entry returned" in (run_dir / "outputs.log").read_text()
    _check_mode(run_dir, mode)


@pytest.mark.parametrize("mode", MODES)
def test_a_stop_signal_during_the_drain_is_acted_on(project: Project, mode: str) -> None:
    """A leftover that ignores SIGTERM holds the pipes: a SIGTERM to expyrun ends it now."""
    body = STUBBORN_LEFTOVER_ENTRY
    config = project.config(_entry(project, body))
    process = start([config], cwd=project.root, env=_env(mode))
    run_dir = project.output / "exp" / "exp.0"
    try:
        _read_until(process, b"process(es) behind")
        holder = _pids(run_dir, "holder.pid")
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=20)
    finally:
        process.kill()
        process.communicate()
    assert _all_ended(holder)
    assert process.returncode == 0, err.decode()
    assert "received SIGTERM after the worker exited: killing what is left now" in err.decode()
    assert read_json(run_dir / "run.json")["status"] == "succeeded"


def test_the_worker_that_left_the_process_group_gets_the_terminals_ctrl_c(
    project: Project,
) -> None:
    """Under plain python the entry is its job's leader, so os.setpgrp() changes nothing."""

    body = """
os.setpgrp()
try:
    open("ready", "w").close()
    while True:
        time.sleep(0.05)
except KeyboardInterrupt:
    print("entry saw KeyboardInterrupt", flush=True)
"""
    config = project.config(_entry(project, body))
    process, master = start_in_terminal([config, "--grace", "30"], cwd=project.root)
    run_dir = project.output / "exp" / "exp.0"
    try:
        wait_for(lambda: (run_dir / "ready").exists(), 30, "the entry to leave the group")
        os.write(master, b"\x03")
        process.wait(timeout=20)
    finally:
        process.kill()
        process.wait()
        os.close(master)
    assert process.returncode == 0
    assert "entry saw KeyboardInterrupt" in (run_dir / "outputs.log").read_text()


def test_the_cgroup_is_removed_at_the_end(project: Project) -> None:
    config = project.config(_entry(project, PIPE_HOLDER_ENTRY))
    result = run([config], cwd=project.root, env=_env("cgroup"), timeout=60)
    assert result.code == 0, result.describe()
    _check_mode(result.run_dir, "cgroup")
    mounts = subprocess.run(
        ["findmnt", "-n", "-t", "cgroup2", "-o", "TARGET"], capture_output=True, text=True
    ).stdout.split()
    supervisor = f"expyrun-{result.record['pid']}-"
    left = [p for m in mounts for p in Path(m).rglob("expyrun-*") if p.name.startswith(supervisor)]
    assert left == []


@pytest.mark.parametrize("mode", MODES)
def test_an_orphan_of_the_run_is_adopted_by_the_supervisor(project: Project, mode: str) -> None:
    """The supervisor is a child subreaper in both modes: an orphan of the run is reparented to
    it, not to init."""
    config = project.config(_entry(project, LATER_ORPHAN_ENTRY))
    result = run([config], cwd=project.root, env=_env(mode), timeout=60)
    assert result.code == 0, result.describe()
    _check_mode(result.run_dir, mode)
    assert (result.run_dir / "adopted_by").read_text() == str(result.record["pid"])


def test_a_child_started_with_os_system_inherits_only_what_plain_python_gives(
    project: Project,
) -> None:
    """The worker's own fds (launch pipe, read ends of its pipes) are close-on-exec."""
    body = 'os.system("ls /proc/$$/fd > fds.txt")\n'
    result = run([project.config(_entry(project, body))], cwd=project.root, timeout=60)
    assert result.code == 0, result.describe()
    under_expyrun = sorted((result.run_dir / "fds.txt").read_text().split())
    plain = subprocess.run(
        [sys.executable, "-c", "import os; os.system('ls /proc/$$/fd > fds.txt')"],
        cwd=project.root,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=True,
    )
    assert plain.returncode == 0
    assert under_expyrun == sorted((project.root / "fds.txt").read_text().split())


BIG_OUTPUT = """
signal.signal(signal.SIGTERM, lambda *_: open("got-sigterm", "w").close())
chunk = "y" * 1023 + "\\n"
for _ in range(8 * 1024):
    sys.stdout.write(chunk)
sys.stdout.flush()
open("printed", "w").close()
while config["wait"] and not os.path.exists("got-sigterm"):
    time.sleep(0.01)
"""


def _log_size(run_dir: Path) -> int:
    try:
        return (run_dir / "outputs.log").stat().st_size
    except OSError:
        return 0


def test_a_terminal_that_reads_late_gets_every_byte(project: Project) -> None:
    """The terminal copy lags behind the log; expyrun finishes it before it exits."""
    config = project.config(_entry(project, BIG_OUTPUT), extra={"wait": False})
    process = start([config], cwd=project.root)
    run_dir = project.output / "exp" / "exp.0"
    try:
        # Nobody reads expyrun's stdout yet: the log is complete all the same.
        wait_for(lambda: _log_size(run_dir) == 8 << 20, 60, "the whole output in outputs.log")
        worker = worker_pid(run_dir)
        wait_for(lambda: not process_alive(worker), 30, "the worker to exit")
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 0, err.decode()
    assert out == (run_dir / "outputs.log").read_bytes()


def test_a_blocked_terminal_does_not_delay_a_stop(project: Project) -> None:
    """stdout not read (`| less` paused): SIGTERM is forwarded at once, the log is complete."""
    config = project.config(_entry(project, BIG_OUTPUT), extra={"wait": True})
    process = start([config, "--grace", "60"], cwd=project.root)
    run_dir = project.output / "exp" / "exp.0"
    try:
        wait_for(lambda: (run_dir / "printed").exists(), 60, "the entry to print 8 MB")
        process.send_signal(signal.SIGTERM)
        # Still nobody reads stdout: the entry gets the SIGTERM all the same.
        wait_for(lambda: (run_dir / "got-sigterm").exists(), 10, "the forwarded SIGTERM")
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 0, err.decode()
    assert _log_size(run_dir) == 8 << 20
    assert len(out) == 8 << 20


def test_a_blocked_terminal_on_stderr_does_not_delay_the_kill(project: Project) -> None:
    """`expyrun cfg.yml 2>&1 | less` paused: expyrun's own messages must not block the loop."""
    body = """
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open("ready", "w").close()
while True:
    print("x" * 200)
"""
    config = project.config(_entry(project, body))
    process = start([config, "--grace", "1"], cwd=project.root, stderr=subprocess.STDOUT)
    run_dir = project.output / "exp" / "exp.0"
    try:
        wait_for(lambda: (run_dir / "ready").exists(), 30, "the entry to start")
        worker = worker_pid(run_dir)
        wait_for(lambda: _log_size(run_dir) > 4 << 20, 30, "the pipe to expyrun to be full")
        process.send_signal(signal.SIGTERM)
        # Still nobody reads expyrun's stdout and stderr: the grace ends, the kill comes.
        wait_for(lambda: not process_alive(worker), 20, "the worker to be killed after 1 s")
        out, _ = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 128 + signal.SIGTERM
    assert b"grace period over: killing the run's processes" in out


def _zombie_children(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == b"Z" and int(fields[1]) == pid:
            found.append(int(name))
    return found


@pytest.mark.parametrize("mode", MODES)
def test_adopted_orphans_are_reaped_while_the_run_goes_on(project: Project, mode: str) -> None:
    """`os.system("job &")` leaves an orphan each time; as plain python, no zombie piles up."""
    body = """
for _ in range(100):
    os.system("true &")
open("spawned", "w").close()
while not os.path.exists("stop"):
    time.sleep(0.01)
"""
    config = project.config(_entry(project, body))
    process = start([config], cwd=project.root, env=_env(mode))
    run_dir = project.output / "exp" / "exp.0"
    try:
        wait_for(lambda: (run_dir / "spawned").exists(), 60, "the orphans to be made")
        wait_for(lambda: not _zombie_children(process.pid), 10, "the zombies to be reaped")
        (run_dir / "stop").touch()
        _out, err = process.communicate(timeout=30)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 0, err.decode()


def test_the_next_run_ends_what_a_supervisor_killed_after_its_worker_left(
    project: Project,
) -> None:
    """SIGKILL of expyrun in the leftover phase: no rescue runs (the worker has exited).

    The dead run's cgroup keeps its leftover; the next run started beside it ends it and
    removes the cgroup.
    """
    body = STUBBORN_LEFTOVER_ENTRY
    config = project.config(_entry(project, body))
    process = start([config], cwd=project.root, env=_env("cgroup"))
    run_dir = project.output / "exp" / "exp.0"
    try:
        _read_until(process, b"process(es) behind")  # the worker has exited
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    finally:
        process.kill()
        process.communicate()
    leftover = _pids(run_dir, "holder.pid")
    if read_json(run_dir / "run.json").get("tracking") not in (None, "cgroup"):
        pytest.skip("no cgroup here")
    cgroups = [p for p in _cgroup_mounts() for p in Path(p).rglob(f"expyrun-{process.pid}-*")]
    if not cgroups:
        pytest.skip("cgroup v2 is not writable by this user here")
    assert _all_ended(leftover) is False  # nothing could stop it yet
    result = run([project.config(_entry(project, "pass"), path="next.yml")], cwd=project.root)
    assert result.code == 0, result.describe()
    wait_for(lambda: _all_ended(leftover), 10, "the dead run's leftover to end")
    assert not any(p.exists() for p in cgroups)


def _cgroup_mounts() -> list[str]:
    found = subprocess.run(
        ["findmnt", "-n", "-t", "cgroup2", "-o", "TARGET"], capture_output=True, text=True
    )
    return found.stdout.split()


def test_the_record_is_final_while_the_terminal_is_not_read(project: Project) -> None:
    """The run has ended: run.json says so even though expyrun's stdout is not read yet."""
    config = project.config(_entry(project, BIG_OUTPUT), extra={"wait": False})
    process = start([config], cwd=project.root)
    run_dir = project.output / "exp" / "exp.0"
    try:
        wait_for(
            lambda: (
                (run_dir / "run.json").exists()
                and read_json(run_dir / "run.json")["status"] == "succeeded"
            ),
            30,
            "the final record, with 8 MB still to copy to an unread stdout",
        )
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 0, err.decode()
    assert len(out) == 8 << 20


def test_a_supervisor_started_under_another_name_keeps_its_cgroup(project: Project) -> None:
    """A supervisor is known by its pid and start time, not by "expyrun" in its command line.

    Started through a wrapper script (`python wrap.py`, as a job runner or a notebook helper
    would), a run's own cgroup sweep, and that of a second run started beside it, once took
    the live supervisor for a dead one and SIGKILLed its worker.
    """
    wrapper = project.root / "wrap.py"
    wrapper.write_text("import runpy\nrunpy.run_module('expyrun', run_name='__main__')\n")
    body = "import os, time\nopen('started', 'w').close()\nwhile not os.path.exists('go'):\n"
    body += "    time.sleep(0.02)\n"
    config = project.config(_entry(project, body))
    command = [sys.executable, str(wrapper)]
    process = start([config], cwd=project.root, env=_env("cgroup"), command=command)
    run_dir = project.output / "exp" / "exp.0"
    try:
        wait_for(lambda: (run_dir / "started").exists(), 30, "the wrapped run to start")
        second = run([project.config(_entry(project, "pass"), path="next.yml")], cwd=project.root)
        assert second.code == 0, second.describe()
        (run_dir / "go").touch()
        _out, err = process.communicate(timeout=30)
    finally:
        process.kill()
        process.communicate()
    _check_mode(run_dir, "cgroup")
    assert process.returncode == 0, err.decode()
    assert read_json(run_dir / "run.json")["status"] == "succeeded"


# A grandchild whose parent exits at once: it writes the pid of who adopted it.
ORPHAN = """
child = os.fork()
if child == 0:
    middle = os.getpid()
    if os.fork() == 0:
        deadline = time.monotonic() + 5
        while os.getppid() == middle and time.monotonic() < deadline:
            time.sleep(0.001)
        with open("adopted_by", "w") as f:
            f.write(str(os.getppid()))
        os._exit(0)
    os._exit(0)
os.waitpid(child, 0)
"""
WAIT_ADOPTED = """
while not os.path.exists("adopted_by"):
    time.sleep(0.01)
"""
# The orphan is made as the entry's module is imported, in the run's first milliseconds.
EARLY_ORPHAN_MODULE = (
    "import os, time\n"
    + ORPHAN
    + "\n\ndef main(name, config):\n"
    + textwrap.indent(WAIT_ADOPTED, "    ")
)
# The orphan is made 0.5 s into the run.
LATER_ORPHAN_ENTRY = "time.sleep(0.5)\n" + ORPHAN + WAIT_ADOPTED


PARALLEL_RUNS = 4  # on a loaded machine (2 cores here) the window shows; alone, rarely


@pytest.mark.parametrize("mode", MODES)
def test_an_orphan_made_as_the_entry_is_imported_is_adopted_by_the_supervisor(
    project: Project, mode: str
) -> None:
    """The supervisor is a subreaper before the worker gets its payload, with a cgroup too: an
    orphan made while the entry's module is imported (the run's first milliseconds) is
    reparented to the supervisor, as later ones are, not to init (which may not reap it).
    Several runs at once, as a sweep or a busy machine has them."""
    project.write("early/__init__.py", "")
    project.write("early/main.py", EARLY_ORPHAN_MODULE)
    config = project.config("early.main:main")
    processes = [start([config], cwd=project.root, env=_env(mode)) for _ in range(PARALLEL_RUNS)]
    adopters = []
    try:
        for process in processes:
            _out, err = process.communicate(timeout=60)
            assert process.returncode == 0, err.decode()
            run_dir = Path(RUN_FOLDER_LINE.search(err.decode()).group(1))  # type: ignore[union-attr]
            _check_mode(run_dir, mode)
            parent = (run_dir / "adopted_by").read_text()
            adopters.append((parent, str(read_json(run_dir / "run.json")["pid"])))
    finally:
        for process in processes:
            process.kill()
            process.communicate()
    assert all(parent == supervisor for parent, supervisor in adopters), adopters


def test_a_launch_slower_than_the_setup_timeout_still_gets_the_subreaper(
    project: Project,
) -> None:
    """The preparation between the worker's spawn and its payload (resolution, the code copy
    of a large project on a slow file system, a Ctrl-Z) may last longer than the tracking
    set-up's timeout (SETUP_TIMEOUT_SECONDS): the supervisor must still become a subreaper.
    Here the config is a FIFO, written only once that timeout has passed."""
    from expyrun.run.tracking import SETUP_TIMEOUT_SECONDS

    text = project.config(_entry(project, LATER_ORPHAN_ENTRY)).read_text()
    config = project.root / "slow.yml"
    os.mkfifo(config)
    process = start([config], cwd=project.root, env=_env("cgroup"))
    try:
        wait_for(lambda: psutil.Process(process.pid).children(), 30, "the worker's spawn")
        time.sleep(SETUP_TIMEOUT_SECONDS + 1)  # the slow preparation, on purpose
        config.write_text(text)
        _out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 0, err.decode()
    run_dir = Path(RUN_FOLDER_LINE.search(err.decode()).group(1))  # type: ignore[union-attr]
    _check_mode(run_dir, "cgroup")
    assert (run_dir / "adopted_by").read_text() == str(process.pid)
