"""A stop signal that arrives while a launch hands over to its supervisor stops it truthfully.

Between the run folder's creation and the moment the supervisor takes the signals over,
expyrun's handler (errors.interrupt) raises wherever the main thread is. Each test makes the
signal arrive at one such moment for real: a driver installs expyrun's handlers, wraps one
function so that its first call sends the signal to the process itself, then runs the command
line. Whatever the moment, expyrun exits 128+N, and the run folder is either removed or
recorded in a terminal state: never left `prepared` (or `running`) with nothing to run it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest
from support import Project, read_json, run, start, wait_for

# argv: MODULE ATTRIBUTE SIGNAL CLI_ARGS... The first call of MODULE.ATTRIBUTE sends SIGNAL
# to this process, then does what it did.
DRIVER = """
import importlib, os, signal, sys
from expyrun import cli

module_name, name, signal_name = sys.argv[1:4]
module = importlib.import_module(module_name)
original = getattr(module, name)
sent = []


def wrapped(*args, **kwargs):
    if not sent:
        sent.append(True)
        os.kill(os.getpid(), getattr(signal, signal_name))
    return original(*args, **kwargs)


setattr(module, name, wrapped)
sys.exit(cli.main(sys.argv[4:]))
"""

# The supervisor sets the signals it waits for to their default action: a SIGTERM arriving
# right after that must not end expyrun by that default action.
AT_DEFAULT_ACTION = """
import os, signal, sys
from expyrun import cli

real = signal.signal


def patched(signum, handler):
    old = real(signum, handler)
    caller = sys._getframe(1).f_code.co_filename
    if signum == signal.SIGTERM and handler == signal.SIG_DFL and caller.endswith("supervisor.py"):
        os.kill(os.getpid(), signal.SIGTERM)
    return old


signal.signal = patched
sys.exit(cli.main(sys.argv[1:]))
"""

ENTRY = """
print("the entry ran", flush=True)
return {"ran": True}
"""


def _at(module: str, name: str, signal_name: str) -> list[str]:
    return [sys.executable, "-c", DRIVER, module, name, signal_name]


def _check_interrupted(code: int, signal_name: str, stderr: str) -> None:
    assert code == 128 + signal.Signals[signal_name], stderr
    assert "Traceback" not in stderr, stderr
    assert f"interrupted{f' ({signal_name})' if signal_name != 'SIGINT' else ''}" in stderr


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_a_signal_while_the_run_is_set_up_records_it_killed(
    project: Project, signal_name: str
) -> None:
    """After the folder is prepared, before the supervisor takes the signals over."""
    config = project.config(project.entry(ENTRY))
    command = _at("expyrun.launch.execute", "run_recorder", signal_name)
    result = run([config], cwd=project.root, command=command)
    _check_interrupted(result.code, signal_name, result.stderr)
    (run_dir,) = project.run_dirs()
    record = read_json(run_dir / "run.json")
    assert record["status"] == "killed", record
    assert record["signal"] == signal_name
    assert record["error"] == f"{signal_name} before the entry point started"
    assert not (run_dir / "outputs.log").exists()  # the supervisor did not start


def test_a_signal_as_the_supervisor_takes_the_signals_over(project: Project) -> None:
    """Between setting a waited signal to its default action and blocking it: expyrun died
    of that SIGTERM, and the record said `prepared` for good."""
    config = project.config(project.entry(ENTRY))
    command = [sys.executable, "-c", AT_DEFAULT_ACTION]
    result = run([config], cwd=project.root, command=command)
    assert result.code == 143, result.describe()
    (run_dir,) = project.run_dirs()
    record = read_json(run_dir / "run.json")
    assert (record["status"], record["signal"]) == ("killed", "SIGTERM"), record


def test_a_signal_as_the_folder_is_prepared_removes_it(project: Project) -> None:
    """The last call of the preparation: the folder is complete, not yet handed over."""
    config = project.config(project.entry(ENTRY))
    command = _at("expyrun.launch.prepare", "PreparedRun", "SIGTERM")
    result = run([config], cwd=project.root, command=command)
    _check_interrupted(result.code, "SIGTERM", result.stderr)
    assert project.run_dirs() == []


def test_a_detach_launcher_stopped_while_it_waits_leaves_the_run_going(
    project: Project,
) -> None:
    """Ctrl-C while `--detach` waits for the background supervisor: the supervisor found the
    notify pipe closed and died of a BrokenPipeError (exit 70), killing the run it had just
    recorded `running` (then `lost`)."""
    config = project.config(project.entry(ENTRY))
    command = _at("expyrun.launch.detach", "read_notice", "SIGINT")
    result = run([config, "--detach"], cwd=project.root, command=command)
    _check_interrupted(result.code, "SIGINT", result.stderr)
    (run_dir,) = project.run_dirs()

    def ended() -> dict[str, object] | None:
        found = read_json(run_dir / "run.json")
        return None if found["status"] in ("prepared", "running") else found

    record = wait_for(ended, 30, "the background run to end")
    assert record["status"] == "succeeded", record
    assert record["result"] == {"ran": True}
    assert "Traceback" not in (run_dir / "supervisor.log").read_text()
    assert "it goes on in the background (supervisor pid " in result.stderr
    assert "`expyrun stop` stops it" in result.stderr


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_a_detach_launcher_stopped_before_the_background_starts_records_it_killed(
    project: Project, signal_name: str
) -> None:
    """Between the folder's preparation and the background supervisor's start: the folder
    said `prepared` for good, with nothing to run it."""
    config = project.config(project.entry(ENTRY))
    command = _at("subprocess", "Popen", signal_name)
    result = run([config, "--detach"], cwd=project.root, command=command)
    _check_interrupted(result.code, signal_name, result.stderr)
    assert "goes on in the background" not in result.stderr
    (run_dir,) = project.run_dirs()
    record = read_json(run_dir / "run.json")
    assert (record["status"], record["signal"]) == ("killed", signal_name), record
    assert record["error"] == f"{signal_name} before the entry point started"
    assert not (run_dir / "outputs.log").exists()


def test_a_dropped_signal_ends_a_command_over_runs(project: Project) -> None:
    """No supervisor takes the signals over in `ls`: the command still ends interrupted."""
    driver = """
import signal, sys, weakref
from expyrun import cli
cli._interrupt_on_stop_signals()


class Box:
    pass


box = Box()
ref = weakref.ref(box, lambda ref: signal.raise_signal(signal.SIGTERM))
del box  # the handler's exception is raised inside the callback, and dropped
print("went on", file=sys.stderr, flush=True)
sys.exit(cli.main(sys.argv[1:]))
"""
    project.output.mkdir(parents=True)
    result = run(["ls", project.output], cwd=project.root, command=[sys.executable, "-c", driver])
    assert "went on" in result.stderr, result.describe()
    assert result.code == 143, result.describe()
    assert "Exception ignored" not in result.stderr
    assert "interrupted (SIGTERM)" in result.stderr


def test_a_supervisor_stopped_as_it_starts_records_the_run_killed(project: Project) -> None:
    """`expyrun _supervise` (a sweep member, a --detach run, a Slurm job) stopped while it
    reads the folder: the record said `prepared` for good (a sweep called the member lost)."""
    config = project.config(project.entry(ENTRY))
    first = run([config], cwd=project.root)
    assert first.code == 0, first.describe()
    run_dir = first.run_dir
    prepared = read_json(run_dir / "run.json")
    prepared.update(status="prepared", ended_at=None, exit_code=None, result=None)
    (run_dir / "run.json").write_text(json.dumps(prepared))
    (run_dir / "outputs.log").unlink()
    command = _at("expyrun.config", "resolve", "SIGTERM")
    result = run(["_supervise", run_dir, "--copy-output"], cwd=project.root, command=command)
    _check_interrupted(result.code, "SIGTERM", result.stderr)
    record = read_json(run_dir / "run.json")
    assert (record["status"], record["signal"]) == ("killed", "SIGTERM"), record
    assert record["error"] == "SIGTERM before the entry point started"
    assert not (run_dir / "outputs.log").exists()


# `expyrun ARGS`, with a SIGINT sent to itself as soon as mkdir made the run folder.
AS_THE_FOLDER_IS_MADE = """
import os, signal, sys
from expyrun import cli

mkdir = os.mkdir


def made(path, *args, **kwargs):
    mkdir(path, *args, **kwargs)
    if os.path.basename(path).startswith("exp."):
        os.kill(os.getpid(), signal.SIGINT)


os.mkdir = made
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_signal_as_the_run_folder_is_made_removes_it(project: Project) -> None:
    """The handler ran as mkdir returned, before the folder was handed to the code that
    removes it on failure: an empty run folder was left, without a record."""
    config = project.config(project.entry(ENTRY))
    command = [sys.executable, "-c", AS_THE_FOLDER_IS_MADE]
    result = run([config], cwd=project.root, command=command)
    _check_interrupted(result.code, "SIGINT", result.stderr)
    assert not project.output.exists()  # nor the folders made on the way


# `expyrun ARGS`: a Ctrl-C at the terminal (SIGINT to the process group) reaches the worker
# while it waits for its payload, which is sent once the worker has ended.
CTRL_C_BEFORE_THE_PAYLOAD = """
import os, signal, sys, time
from expyrun import cli
from expyrun.run import supervisor

send_payload = supervisor.send_payload


def ended(pid):
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:  # reaped meanwhile
        return True


def sent_late(worker, payload):
    os.killpg(os.getpgid(0), signal.SIGINT)
    deadline = time.monotonic() + 10
    while not ended(worker.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    send_payload(worker, payload)


supervisor.send_payload = sent_late
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_ctrl_c_as_the_worker_waits_for_its_payload_records_it_killed(
    project: Project,
) -> None:
    """The worker left with exit 1 ("the launch was abandoned"): recorded `failed`, exit 1."""
    config = project.config(project.entry(ENTRY))
    command = [sys.executable, "-c", CTRL_C_BEFORE_THE_PAYLOAD]
    result = run([config], cwd=project.root, command=command)
    assert result.code == 130, result.describe()
    (run_dir,) = project.run_dirs()
    record = read_json(run_dir / "run.json")
    assert (record["status"], record["signal"], record["exit_code"]) == ("killed", "SIGINT", 130)
    assert "the entry ran" not in (run_dir / "outputs.log").read_text()


# `expyrun ARGS` after the global import lock was left held by the main thread, as a stop
# signal's exception raised inside the import system's own code leaves it (seen in the stress
# loop: the tracking set-up thread waited in `import ctypes`, now `_ctypes`, for good); then a
# SIGTERM as the run is prepared.
IMPORT_LOCK_LEFT_HELD = """
import _imp, os, signal, sys
from expyrun import cli
from expyrun.launch import prepare as preparing

assert "_ctypes" not in sys.modules  # the set-up thread imports it
_imp.acquire_lock()  # never released: the main thread may import, no other thread can
allocate = preparing.allocate_and_snapshot


def stopped(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    return allocate(*args, **kwargs)


preparing.allocate_and_snapshot = stopped
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_launch_stopped_while_the_import_lock_is_held_ends(project: Project) -> None:
    """expyrun waited for its tracking set-up thread for good: it hung after the signal."""
    config = project.config(project.entry(ENTRY))
    command = [sys.executable, "-c", IMPORT_LOCK_LEFT_HELD]
    result = run([config], cwd=project.root, command=command, timeout=30)
    _check_interrupted(result.code, "SIGTERM", result.stderr)
    assert project.run_dirs() == []


def test_a_subreaper_that_cannot_import_ctypes_is_no_error(project: Project) -> None:
    """The set-up thread's `import ctypes` failed when the main thread's import of a module it
    needed was interrupted (half-imported `struct`): the thread died printing "Exception
    ignored in thread started by ...". Here its `import _ctypes` fails as that one did."""
    driver = "import sys\nsys.modules['_ctypes'] = None\nfrom expyrun import cli\n"
    driver += "sys.exit(cli.main(sys.argv[1:]))\n"
    config = project.config(project.entry(ENTRY))
    result = run([config], cwd=project.root, command=[sys.executable, "-c", driver])
    assert result.code == 0, result.describe()
    assert "Exception ignored" not in result.stderr, result.describe()
    assert "Traceback" not in result.stderr, result.describe()


# The stress loop's other outcome of that leak: the signal's exception dropped in the import
# system's weakref callback, the lock left held, expyrun going on to its supervisor.
DROPPED_WITH_THE_IMPORT_LOCK_HELD = """
import _imp, signal, sys, weakref
from expyrun import cli

cli._interrupt_on_stop_signals()
_imp.acquire_lock()  # never released: as the interrupted callback left it


class Box:
    pass


box = Box()
ref = weakref.ref(box, lambda ref: signal.raise_signal(signal.SIGTERM))
del box
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_dropped_signal_with_the_import_lock_held_stops_the_run_at_once(
    project: Project,
) -> None:
    """The supervisor acted on it only once the tracking set-up was done: 10 s later (its
    timeout), when the set-up waits for the import lock."""
    config = project.config(project.entry(ENTRY))
    command = [sys.executable, "-c", DROPPED_WITH_THE_IMPORT_LOCK_HELD]
    started = time.monotonic()
    result = run([config], cwd=project.root, command=command, timeout=30)
    assert result.code == 143, result.describe()
    assert time.monotonic() - started < 8, result.describe()
    (run_dir,) = project.run_dirs()
    assert read_json(run_dir / "run.json")["status"] == "killed"


def test_an_nproc_launch_stopped_before_its_tasks_start_records_them_killed(
    project: Project,
) -> None:
    """Between the folder's preparation and the launcher taking the signals over: the folder
    said `prepared` for good."""
    config = project.config(project.entry(ENTRY))
    command = _at("expyrun.launch.nproc", "free_port", "SIGTERM")
    result = run([config, "--nproc", "2"], cwd=project.root, command=command)
    _check_interrupted(result.code, "SIGTERM", result.stderr)
    (run_dir,) = project.run_dirs()
    record = read_json(run_dir / "run.json")
    assert record["status"] == "killed", record
    assert [(task["status"], task["signal"]) for task in record["tasks"]] == [
        ("killed", "SIGTERM"),
        ("killed", "SIGTERM"),
    ]


# `expyrun ARGS`, with a SIGINT sent to itself as soon as the launcher started its last task:
# the tasks' supervisors are still starting (before expyrun's handlers) when it is forwarded.
AS_THE_TASKS_START = """
import os, signal, sys
from expyrun import cli
from expyrun.launch import nproc

start = nproc._Coordinator._start


def started(self, rank):
    process = start(self, rank)
    if rank == self.nproc - 1:
        os.kill(os.getpid(), signal.SIGINT)
    return process


nproc._Coordinator._start = started
sys.exit(cli.main(sys.argv[1:]))
"""


# sitecustomize.py that holds a task supervisor (`python -m expyrun _supervise ...`) in its
# interpreter's start-up, before expyrun's code, for 20 s at most.
TASK_START_HELD = """
import sys, time

if sys.argv[1:2] == ["_supervise"]:
    time.sleep(20)
"""


def test_a_ctrl_c_as_the_tasks_start_stops_them_quietly(project: Project) -> None:
    """A SIGINT forwarded to a task supervisor still starting hit Python's own handler in its
    imports: KeyboardInterrupt tracebacks, and the launcher exited 1 with a record saying 130.

    The tasks are held in their start-up: on a loaded machine, the first task could otherwise
    run to its end before the launcher forwarded the signal (succeeded, truthfully).
    """
    site = project.root / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(TASK_START_HELD)
    config = project.config(project.entry(ENTRY))
    command = [sys.executable, "-c", AS_THE_TASKS_START]
    env = {"PYTHONPATH": str(site)}
    for _ in range(2):
        result = run([config, "--nproc", "3"], cwd=project.root, command=command, env=env)
        assert result.code == 130, result.describe()
        assert "Traceback" not in result.stderr, result.stderr
        assert "Fatal Python error" not in result.stderr, result.stderr
        record = read_json(result.run_dir / "run.json")
        assert record["status"] == "killed", record
        for task in record["tasks"]:
            assert task["status"] == "killed", task


# `expyrun ARGS`, with a SIGINT sent to itself as soon as mkdir made the run's cgroup; the
# folder made is printed on stderr.
AS_THE_CGROUP_IS_MADE = """
import os, signal, sys
from expyrun import cli

mkdir = os.mkdir


def made(path, *args, **kwargs):
    mkdir(path, *args, **kwargs)
    if os.path.basename(path).startswith("expyrun-"):
        print(f"made {path}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGINT)


os.mkdir = made
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_signal_as_the_runs_cgroup_is_made_removes_it(project: Project) -> None:
    """The handler ran as mkdir returned, before the folder was known to the code that
    removes it on failure (it is made in the launch's thread since the set-up thread only
    moves the worker): the empty cgroup was left behind."""
    config = project.config(project.entry(ENTRY))
    command = [sys.executable, "-c", AS_THE_CGROUP_IS_MADE]
    result = run([config], cwd=project.root, command=command)
    made = [line[len("made ") :] for line in result.stderr.splitlines() if line.startswith("made ")]
    if not made:
        pytest.skip("cgroup v2 is not writable by this user here")
    _check_interrupted(result.code, "SIGINT", result.stderr)
    assert not os.path.exists(made[0])
    assert project.run_dirs() == []


# `expyrun ARGS`, where the launcher's check of a task's handlers always comes too early (it
# sees a task still starting, so a SIGINT is sent to it as SIGTERM), and a SIGINT is sent to
# the launcher once every task has taken its signals over: each task takes that SIGTERM in
# expyrun's handler and exits 143, as when a task's start ends between the check and the send.
CHECKED_TOO_EARLY = """
import os, signal, sys, time
from expyrun import cli
from expyrun.launch import nproc
from expyrun.run import process_identity

start = nproc._Coordinator._start


def started(self, rank):
    process = start(self, rank)
    if rank == self.nproc - 1:
        pids = [task.pid for task in self.processes.values()] + [process.pid]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
            process_identity.takes_signal(pid, signal.SIGTERM) for pid in pids
        ):
            time.sleep(0.01)  # polls /proc: no file or pipe tells when a task took them
        os.kill(os.getpid(), signal.SIGINT)
    return process


nproc._Coordinator._start = started
nproc.takes_signal = lambda pid, signum: False
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_ctrl_c_sent_on_as_sigterm_to_a_task_that_took_its_signals_exits_130(
    project: Project,
) -> None:
    """A task that took the signals over between the check and the send exits 143 by expyrun's
    handler: the launcher exited 143, not 130, for a Ctrl-C (CI, stress round 15)."""
    config = project.config(project.entry(ENTRY))
    command = [sys.executable, "-c", CHECKED_TOO_EARLY]
    result = run([config, "--nproc", "2"], cwd=project.root, command=command)
    assert result.code == 130, result.describe()
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("interrupted (SIGTERM)") == 2, result.stderr
    record = read_json(result.run_dir / "run.json")
    assert record["status"] in ("killed", "stopped"), record
    assert [task["status"] for task in record["tasks"]] == [record["status"]] * 2, record


# sitecustomize.py for the worker alone (its argv is `-c WORKER_SCRIPT FD`): makes `starting`
# in the launch directory, then holds the interpreter's start-up (site) until a SIGINT waits
# for it (pending in /proc/self/status) or 20 s have passed.
WORKER_START_HELD = """
import os, sys, time

if sys.argv[1:2] and sys.argv[1].endswith("worker.py"):
    open(os.path.join(os.environ["EXPYRUN_TEST_DIR"], "starting"), "w").close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with open("/proc/self/status") as status:
            masks = [line.split()[1] for line in status if line.startswith(("SigPnd", "ShdPnd"))]
        if any(int(mask, 16) & (1 << 1) for mask in masks):  # bit 1: SIGINT (2)
            break
        time.sleep(0.01)
"""


def _status(project: Project) -> str | None:
    """The first run folder's status, or None before its run.json is there."""
    run_dirs = project.run_dirs()
    try:
        return str(read_json(run_dirs[0] / "run.json")["status"]) if run_dirs else None
    except (OSError, ValueError):
        return None


def test_a_ctrl_c_forwarded_in_the_workers_start_up_records_it_killed(project: Project) -> None:
    """Python's own SIGINT handler raised in the worker's start-up (site): "Fatal Python error:
    init_import_site", exit 1, the run recorded failed (the stop-signal stress test, round 59)."""
    site = project.root / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(WORKER_START_HELD)
    config = project.config(project.entry(ENTRY))
    env = {"PYTHONPATH": str(site), "EXPYRUN_TEST_DIR": str(project.root)}
    process = start([config], cwd=project.root, env=env)
    try:
        wait_for(lambda: (project.root / "starting").exists(), 30, "the worker's start-up")
        wait_for(lambda: _status(project) == "running", 30, "the supervisor to take over")
        process.send_signal(signal.SIGINT)  # forwarded to the worker, in its start-up
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    stderr = err.decode()
    assert process.returncode == 130, stderr
    assert "Fatal Python error" not in stderr, stderr
    assert "Traceback" not in stderr, stderr
    record = read_json(project.run_dirs()[0] / "run.json")
    assert (record["status"], record["signal"]) == ("killed", "SIGINT"), record


# `expyrun ARGS` where the thread that moves the worker into its cgroup, before its own work,
# waits until the supervisor has set SIGINT to its default action, then sends SIGINT to the
# process: a thread that does not block it would take it, and die of it with expyrun.
SIGINT_AS_THE_MOVE_STARTS = """
import os, signal, sys, time
from expyrun import cli
from expyrun.run import tracking

move = tracking.TrackingSetup._move


def late_move(self, cgroup, pid):
    deadline = time.monotonic() + 10
    while signal.getsignal(signal.SIGINT) != signal.SIG_DFL and time.monotonic() < deadline:
        time.sleep(0.001)
    os.kill(os.getpid(), signal.SIGINT)
    return move(self, cgroup, pid)


tracking.TrackingSetup._move = late_move
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_sigint_as_the_cgroup_move_starts_is_the_supervisors(project: Project) -> None:
    """The thread blocked the supervisor's signals as its first line: one delivered before
    that, once they were at their default action, killed expyrun (exit -2, run left prepared:
    the stop-signal stress test, round 1)."""
    config = project.config(project.entry("time.sleep(30)"))
    command = [sys.executable, "-c", SIGINT_AS_THE_MOVE_STARTS]
    result = run([config], cwd=project.root, command=command)
    if result.code == 0 and result.record["tracking"] != "cgroup":
        pytest.skip("cgroup v2 is not writable by this user here: no thread moves the worker")
    assert result.code == 130, result.describe()  # forwarded: the entry's own Ctrl-C
    assert "received SIGINT (forwarded it" in result.stderr, result.stderr
    assert (result.record["status"], result.record["signal"]) == ("killed", "SIGINT")


# `python -m expyrun ARGS` (runpy, as -m does), with SIGNAL sent to itself as `expyrun.cli` is
# about to be imported: after __main__ started, before any handler of expyrun's exists.
# argv: SIGNAL CLI_ARGS...
AS_EXPYRUN_IMPORTS = """
import os, runpy, signal, sys

signal_name = sys.argv.pop(1)


class SignalAtImport:
    def find_spec(self, name, path=None, target=None):
        if name == "expyrun.cli":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), getattr(signal, signal_name))
        return None


sys.meta_path.insert(0, SignalAtImport())
runpy.run_module("expyrun", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_signal_as_expyrun_imports_its_modules_ends_it_interrupted(
    project: Project, signal_name: str
) -> None:
    """A SIGINT raised in whatever module was being imported (a traceback, or Python's
    RuntimeError from a class body's __set_name__: the nproc stress test, round 12); a SIGTERM
    killed expyrun before it could say anything."""
    config = project.config(project.entry(ENTRY))
    command = [sys.executable, "-c", AS_EXPYRUN_IMPORTS, signal_name]
    result = run([config], cwd=project.root, command=command)
    _check_interrupted(result.code, signal_name, result.stderr)
    assert not project.output.exists()
