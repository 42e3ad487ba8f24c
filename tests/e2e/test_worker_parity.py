"""The entry point runs as under plain `python`: buffering, encoding, sys.excepthook, sys.argv.

Each test runs the same module twice in the same environment: through expyrun, and with plain
python (`python -c "import pkg.main as m; m.main(name, config)"`, stdout and stderr to one file,
as `> file 2>&1`), and compares what each left. Nothing is a hard-coded guess of what Python
does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from support import Project, child_env, run, start_in_terminal

# The module under test: module-level code can install hooks, as a library would at import.
MODULE = """
import ctypes, os, sys

{module_code}

def main(name, config):
{body}
"""


def _module(project: Project, body: str, module_code: str = "") -> str:
    indented = "".join(f"    {line}\n" for line in body.strip("\n").splitlines())
    project.write("pkg/__init__.py", "")
    project.write("pkg/main.py", MODULE.format(module_code=module_code, body=indented))
    return "pkg.main:main"


def _plain(project: Project, env: dict[str, str], config: dict[str, object]) -> tuple[int, bytes]:
    """Run the entry with plain python, stdout and stderr into one file; (code, bytes)."""
    code = f"import sys; sys.path.insert(0, '.'); import pkg.main as m; m.main('exp', {config!r})"
    out = project.root / "plain.log"
    with out.open("wb") as sink:
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=project.root,
            env=child_env({"EXPYRUN_CWD": str(project.root), **env}),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            timeout=60,
            check=False,
        )
    return done.returncode, out.read_bytes()


CRASH = """
print("epoch 3: loading batch 1234")
if config["crash"] == "segv":
    ctypes.string_at(0)
elif config["crash"] == "abort":
    os.abort()
else:
    os.kill(os.getpid(), signal_number)
"""


@pytest.mark.parametrize("crash", ["segv", "abort", "SIGKILL"])
@pytest.mark.parametrize("how", ["PYTHONUNBUFFERED", "python -u"])
def test_a_line_printed_before_a_hard_crash_is_kept_when_unbuffered(
    project: Project, crash: str, how: str
) -> None:
    module_code = "import signal\nsignal_number = signal.SIGKILL"
    entry = _module(project, CRASH, module_code)
    config = project.config(entry, extra={"crash": crash})
    env = {"PYTHONUNBUFFERED": "1"} if how == "PYTHONUNBUFFERED" else {}
    command = [sys.executable, "-u", "-m", "expyrun"] if how == "python -u" else None
    result = run([config], cwd=project.root, env=env, **({"command": command} if command else {}))
    assert result.code >= 128, result.describe()
    plain_code, plain_log = _plain(project, {"PYTHONUNBUFFERED": "1"}, {"crash": crash})
    assert plain_code < 0  # plain python died of the signal too
    assert b"epoch 3: loading batch 1234" in plain_log
    assert b"epoch 3: loading batch 1234" in result.log


def test_a_line_printed_before_a_crash_is_kept_when_the_terminal_copy_is_a_tty(
    project: Project,
) -> None:
    """Plain python line-buffers stdout on a terminal: so does the worker then."""
    entry = _module(project, CRASH, "signal_number = 9")
    config = project.config(entry, extra={"crash": "segv"})
    process, master = start_in_terminal([config], cwd=project.root)
    try:
        process.wait(timeout=60)
    finally:
        process.kill()
        process.wait()
        os.close(master)
    assert process.returncode == 128 + signal.SIGSEGV
    log = (project.output / "exp" / "exp.0" / "outputs.log").read_bytes()
    assert b"epoch 3: loading batch 1234" in log


def test_without_a_tty_nor_unbuffered_output_is_block_buffered_as_in_plain_python(
    project: Project,
) -> None:
    """The fast path stays: like plain python to a file, a hard crash may lose the buffer."""
    entry = _module(project, CRASH, "signal_number = 9")
    config = project.config(entry, extra={"crash": "segv"})
    result = run([config], cwd=project.root)
    _plain_code, plain_log = _plain(project, {}, {"crash": "segv"})
    assert b"epoch 3: loading batch 1234" not in plain_log
    assert result.code == 128 + signal.SIGSEGV


NON_UTF8_NAME = """
folder = os.fsencode(os.environ["EXPYRUN_CWD"]) + b"/names"
print("stdout:", sys.stdout.encoding, sys.stdout.errors)
print("stderr:", sys.stderr.encoding, sys.stderr.errors, file=sys.stderr)
for name in sorted(os.listdir(os.fsdecode(folder))):
    print("found", name)
print("done")
"""


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({"PYTHONIOENCODING": "utf-8:surrogateescape"}, id="utf8-surrogateescape"),
        pytest.param({"PYTHONIOENCODING": "latin-1"}, id="latin1"),
        pytest.param({"PYTHONIOENCODING": "ascii:backslashreplace"}, id="ascii-backslash"),
        pytest.param({"LC_ALL": "C", "PYTHONIOENCODING": ""}, id="C-locale"),
        pytest.param({"PYTHONUTF8": "1"}, id="utf8-mode"),
    ],
)
def test_stdio_encoding_and_errors_are_the_interpreters(
    project: Project, env: dict[str, str]
) -> None:
    names = project.root / "names"
    names.mkdir(parents=True)
    (names / "plain.txt").touch()
    with open(os.fsencode(names) + b"/caf\xe9.png", "wb"):
        pass
    entry = _module(project, NON_UTF8_NAME)
    config = project.config(entry)
    env = {key: value for key, value in env.items() if value}
    result = run([config], cwd=project.root, env=env)
    plain_code, plain_log = _plain(project, env, {})
    assert result.code == (0 if plain_code == 0 else 1), result.describe()
    if plain_code != 0:
        assert b"UnicodeEncodeError" in plain_log
        assert b"UnicodeEncodeError" in result.log
    for line in plain_log.splitlines():
        if line.startswith((b"stdout:", b"stderr:", b"done")) or line.endswith((b".png", b".txt")):
            assert line in result.log.splitlines(), (line, result.log)


HOOK_MODULE = """
def _hook(kind, value, traceback):
    sys.stderr.write(f"HOOK CALLED: {kind.__name__}: {value}\\n")
sys.excepthook = _hook
"""


@pytest.mark.parametrize("where", ["entry module", "library", "hook fails"])
def test_sys_excepthook_is_called_as_by_plain_python(project: Project, where: str) -> None:
    body = 'raise ValueError("loss is nan")'
    if where == "library":
        project.write("reporting.py", "import sys\n" + HOOK_MODULE)
        entry = _module(project, body, "import reporting")
    elif where == "hook fails":
        failing = "def _hook(kind, value, traceback):\n    raise RuntimeError('hook broke')\n"
        entry = _module(project, body, failing + "sys.excepthook = _hook")
    else:
        entry = _module(project, body, HOOK_MODULE)
    result = run([project.config(entry)], cwd=project.root)
    plain_code, plain_log = _plain(project, {}, {})
    assert result.code == plain_code == 1, result.describe()
    if where == "hook fails":
        for text in (b"Error in sys.excepthook:", b"hook broke", b"Original exception was:"):
            assert text in plain_log
            assert text in result.log
        assert b"ValueError: loss is nan" in result.log
    else:
        assert b"HOOK CALLED: ValueError: loss is nan" in plain_log
        assert b"HOOK CALLED: ValueError: loss is nan" in result.log
        assert b"Traceback" not in result.log  # the hook replaced the default report


def test_without_a_hook_the_traceback_is_the_users(project: Project) -> None:
    entry = _module(project, 'raise ValueError("loss is nan")')
    result = run([project.config(entry)], cwd=project.root)
    assert result.code == 1
    assert b"ValueError: loss is nan" in result.log
    assert b"worker.py" not in result.log  # the worker's frames are left out


def test_sys_argv_is_the_command_line_the_user_typed(project: Project) -> None:
    entry = _module(project, 'open("argv.txt", "w").write(repr(sys.argv))')
    config = project.config(entry, extra={"lr": 0.1})
    result = run([config, "--lr", "0.5"], cwd=project.root)
    assert result.code == 0, result.describe()
    argv = eval((result.run_dir / "argv.txt").read_text())  # noqa: S307 - our own repr
    assert argv == ["expyrun", str(config), "--lr", "0.5"]
    assert argv == result.record["command"]


FORK_WHILE_PRINTING = """
import threading
def tick():
    while True:
        print("tick")
threading.Thread(target=tick, daemon=True).start()
children = []
for i in range(50):
    pid = os.fork()
    if pid == 0:
        print(f"child {i}", flush=True)
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
print("all children ended", flush=True)
"""


def test_children_forked_while_another_thread_prints_do_not_deadlock(project: Project) -> None:
    """Under -u, plain python's children never deadlock here (no buffer lock to inherit).

    Block-buffered, plain python itself may deadlock (CPython's buffer lock is inherited
    locked), so that mode is not compared.
    """
    entry = _module(project, FORK_WHILE_PRINTING)
    env = {"PYTHONUNBUFFERED": "1"}
    plain_code, plain_log = _plain(project, env, {})
    assert plain_code == 0
    assert b"all children ended" in plain_log
    result = run([project.config(entry)], cwd=project.root, env=env, timeout=60)
    assert result.code == 0, result.describe()
    assert b"all children ended" in result.log
    assert result.log.count(b"child ") == 50


@pytest.mark.parametrize("target", ["pipe", "read-write file"])
def test_an_entry_that_points_fd_1_elsewhere_still_writes_to_stderr(
    project: Project, target: str
) -> None:
    """Like capture libraries (wurlitzer): fd 1 into a pipe read later; plain python goes on."""
    body = f"""
if {target!r} == "pipe":
    r, w = os.pipe()
    os.dup2(w, 1)
else:
    fd = os.open("cap.txt", os.O_RDWR | os.O_CREAT)
    os.write(fd, b"x" * 100)
    os.lseek(fd, 0, 0)
    os.dup2(fd, 1)
for i in range(3):
    print("out", i, flush=True)
    print("err", i, file=sys.stderr, flush=True)
print("done", file=sys.stderr)
"""
    entry = _module(project, body)
    plain_code, plain_log = _plain(project, {}, {})
    assert plain_code == 0
    assert b"done" in plain_log
    result = run([project.config(entry)], cwd=project.root, timeout=60)
    assert result.code == 0, result.describe()
    assert b"err 2\ndone" in result.log


def test_the_streams_have_the_mode_plain_python_gives_them(project: Project) -> None:
    entry = _module(project, "print(sys.stdout.mode, sys.stderr.mode, file=sys.stderr)")
    result = run([project.config(entry)], cwd=project.root)
    _plain_code, plain_log = _plain(project, {}, {})
    assert plain_log.strip() in result.log


# What a child forked by the entry (no exec) and the entry after the fork have: the terminating
# signals' dispositions and the forking thread's mask.
DISPOSITIONS_AFTER_FORK = """
import signal
names = ("SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2")


def state(who):
    kinds = {signal.SIG_DFL: "default", signal.SIG_IGN: "ignored"}
    handlers = {n: kinds.get(signal.getsignal(getattr(signal, n)), "handler") for n in names}
    blocked = sorted(signal.Signals(s).name for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))
    print(f"{who}: {handlers} blocked {blocked}", flush=True)


pid = os.fork()
if pid == 0:
    state("child")
    os._exit(0)
os.waitpid(pid, 0)
print("parent blocked", sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])), flush=True)
"""


def test_a_forked_child_has_the_signal_dispositions_of_plain_python(project: Project) -> None:
    """The worker's flush-then-die handlers were inherited by forked children: a signal taken
    by another thread, or before the child's interpreter was ready, never killed it (a fork
    Pool's worker outlived `Pool.terminate`, and the run hung, 1 run in ~40)."""
    entry = _module(project, DISPOSITIONS_AFTER_FORK)
    plain_code, plain_log = _plain(project, {}, {})
    assert plain_code == 0, plain_log
    result = run([project.config(entry)], cwd=project.root, timeout=60)
    assert result.code == 0, result.describe()
    lines = [line for line in result.log.splitlines() if line.startswith((b"child", b"parent"))]
    assert lines == plain_log.splitlines(), (lines, plain_log)


# A forked child whose main thread blocks in C while a terminating signal is taken by another
# of its threads (here: the main thread blocks the signal): only the default action ends it.
SIGNAL_TAKEN_BY_ANOTHER_THREAD = """
import signal, threading, time

ready_r, ready_w = os.pipe()
never_r, never_w = os.pipe()
pid = os.fork()
if pid == 0:
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
    os.write(ready_w, b"x")
    os.read(never_r, 1)  # blocks for good: only a signal's default action ends the child
    os._exit(0)
os.read(ready_r, 1)
os.kill(pid, signal.SIGTERM)
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print("child ended by", signal.Signals(os.WTERMSIG(status)).name, flush=True)
        break
    time.sleep(0.01)
else:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    print("child still running 20 s after SIGTERM", flush=True)
"""


def test_a_forked_child_dies_of_a_sigterm_another_thread_takes(project: Project) -> None:
    entry = _module(project, SIGNAL_TAKEN_BY_ANOTHER_THREAD)
    plain_code, plain_log = _plain(project, {}, {})
    assert (plain_code, plain_log) == (0, b"child ended by SIGTERM\n")
    result = run([project.config(entry)], cwd=project.root, timeout=60)
    assert result.code == 0, result.describe()
    assert b"child ended by SIGTERM\n" in result.log, result.describe()


# The entry's own flush-then-die still holds after it forked (its mask is restored).
FLUSHED_AFTER_A_FORK = """
import signal
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
sys.stdout.write("buffered after the fork, no newline")
os.kill(os.getpid(), signal.SIGTERM)
"""


def test_the_entry_still_flushes_before_a_sigterm_after_a_fork(project: Project) -> None:
    entry = _module(project, FLUSHED_AFTER_A_FORK)
    result = run([project.config(entry)], cwd=project.root, timeout=60)
    assert result.code == 128 + signal.SIGTERM, result.describe()
    assert result.log.count(b"buffered after the fork, no newline") == 1, result.describe()


# sitecustomize.py: a fork hook registered before the worker's own, so it runs after the
# worker's before-fork hooks (they run in reverse order), just before fork() itself. It holds a
# thread that carries `go_on` there: in the middle of its fork, until the test lets it go on.
HOLD_A_THREAD_IN_ITS_FORK = """
import os, threading


def _hold():
    thread = threading.current_thread()
    if hasattr(thread, "go_on"):
        thread.in_fork.set()
        thread.go_on.wait(20)


os.register_at_fork(before=_hold)
"""

# A thread forks while the main thread is inside its own fork (two threads of a Pool's
# owner, or a thread pool that each starts a process): what each forking thread, its
# child and a program it starts afterwards have blocked.
TWO_THREADS_FORK_AT_ONCE = """
import signal, subprocess, threading


def blocked():
    return sorted(signal.Signals(s).name for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))


def fork(who):
    pid = os.fork()
    if pid == 0:
        print(f"child of {who}: blocked {blocked()}", flush=True)
        os._exit(0)
    os.waitpid(pid, 0)


def second():
    fork("the thread")
    print("the thread: blocked", blocked(), flush=True)
    grep = subprocess.run(["grep", "^SigBlk", "/proc/self/status"], capture_output=True)
    print("a program it starts:", grep.stdout.decode().split(), flush=True)


thread = threading.Thread(target=second)
thread.in_fork, thread.go_on = threading.Event(), threading.Event()
thread.start()
assert thread.in_fork.wait(20)
fork("the main thread")  # the thread is inside its own fork meanwhile
thread.go_on.set()
thread.join()
print("main thread: blocked", blocked(), flush=True)
"""


def test_two_threads_forking_at_once_keep_their_own_signal_masks(project: Project) -> None:
    """The worker kept one forking thread's mask at a time: a thread that forked while another
    was inside fork() was left with SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 blocked, and so were
    its child (immune to Pool.terminate's SIGTERM) and every program it then started; the
    hook's IndexError went to the run's output."""
    site = project.root / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HOLD_A_THREAD_IN_ITS_FORK)
    env = {"PYTHONPATH": str(site)}
    entry = _module(project, TWO_THREADS_FORK_AT_ONCE)
    plain_code, plain_log = _plain(project, env, {})
    assert plain_code == 0, plain_log
    assert plain_log.count(b"blocked []") == 4, plain_log
    result = run([project.config(entry)], cwd=project.root, env=env, timeout=60)
    assert result.code == 0, result.describe()
    assert result.log == plain_log, result.describe()
