"""Helpers for tests that drive the real `expyrun` command in real processes.

Every process a test starts carries EXPYRUN_TEST_SESSION in its environment, inherited by
the supervisor, the worker and whatever they start; `leftover_processes()` finds them, so the
suite fails if a test leaves anything running.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SESSION_VARIABLE = "EXPYRUN_TEST_SESSION"
SESSION_ID = uuid.uuid4().hex
RUN_FOLDER_LINE = re.compile(r"^expyrun: run folder: (.+)$", re.MULTILINE)
EXPYRUN = [sys.executable, "-m", "expyrun"]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a process started by a test (no PYTHON* flags that change speed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPYRUN_")}
    env.pop("PYTHONUNBUFFERED", None)
    env[SESSION_VARIABLE] = SESSION_ID
    env.update(extra or {})
    return env


@dataclass
class Result:
    """What a finished command did."""

    code: int
    stdout_bytes: bytes
    stderr_bytes: bytes
    argv: list[str]

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_bytes.decode(errors="replace")

    @property
    def run_dir(self) -> Path:
        """The run folder expyrun announced on stderr."""
        match = RUN_FOLDER_LINE.search(self.stderr)
        if match is None:
            raise AssertionError(f"no run folder announced:\n{self.describe()}")
        return Path(match.group(1))

    @property
    def record(self) -> dict[str, Any]:
        return read_json(self.run_dir / "run.json")

    @property
    def log(self) -> bytes:
        return (self.run_dir / "outputs.log").read_bytes()

    def describe(self) -> str:
        return (
            f"$ {' '.join(self.argv)}\nexit code {self.code}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


def run(
    args: Sequence[str | Path],
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    command: Sequence[str] = EXPYRUN,
    stdin: int | None = subprocess.DEVNULL,
) -> Result:
    """Run `expyrun ARGS` to its end; on timeout kill its process group and fail loudly."""
    argv = [*command, *map(str, args)]
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=child_env(env),
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process.pid)
        out, err = process.communicate()
        raise AssertionError("timed out:\n" + Result(-1, out, err, argv).describe()) from None
    return Result(process.returncode, out, err, argv)


def start(
    args: Sequence[str | Path],
    cwd: Path,
    env: dict[str, str] | None = None,
    command: Sequence[str] = EXPYRUN,
    **popen: Any,
) -> subprocess.Popen[bytes]:
    """Start `expyrun ARGS` in its own session and return at once (the caller reaps it)."""
    popen.setdefault("stdin", subprocess.DEVNULL)
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(
        [*command, *map(str, args)],
        cwd=cwd,
        env=child_env(env),
        start_new_session=True,
        **popen,
    )


def signalled_when_ready(
    args: Sequence[str | Path],
    cwd: Path,
    ready: Path,
    send: Callable[[int], None],
    timeout: float = 30,
    env: dict[str, str] | None = None,
) -> tuple[int, str]:
    """Start `expyrun ARGS`, wait until the file `ready` exists, call `send(pid)` (a signal to
    expyrun or its process group), and wait for its end: (exit code, stderr).

    expyrun is killed if it is still running when this returns or raises (`timeout` s).
    """
    process = start(args, cwd=cwd, env=env)
    try:
        wait_for(ready.exists, 20, f"{ready.name} to exist")
        send(process.pid)
        _out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, err.decode()


# `expyrun ARGS` whose `running` record waits (30 s at most) until a file of the given name is in
# the launch directory: the worker runs the entry as soon as it has its payload, before the
# supervisor writes `running`, and the entry makes the file once it has done what comes first.
_RUNNING_HELD = """
import os, sys, time
from expyrun import cli
from expyrun.run import record

write = record.write_record


def held(run_dir, current):
    if current.status == "running":
        deadline = time.monotonic() + 30
        while not os.path.exists({marker!r}) and time.monotonic() < deadline:
            time.sleep(0.01)
    return write(run_dir, current)


record.write_record = held
sys.exit(cli.main(sys.argv[1:]))
"""


def running_held_until(marker: str) -> list[str]:
    """The command that runs expyrun with its `running` record held until `marker` exists."""
    return [sys.executable, "-c", _RUNNING_HELD.format(marker=marker)]


def start_in_terminal(
    args: Sequence[str | Path], cwd: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """Start `expyrun ARGS` as the session leader of a new pseudo-terminal, its stdio on it.

    Returns the process and the terminal's master fd (the caller closes it): writing b"\x03"
    there is a Ctrl-C, closing it a hangup.
    """
    import fcntl
    import termios

    master, slave = os.openpty()

    def become_terminal_owner() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    try:
        process = start(
            args,
            cwd=cwd,
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            preexec_fn=become_terminal_owner,
        )
    finally:
        os.close(slave)
    return process, master


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, period: float = 0.02) -> Any:
    """Poll `predicate` until it returns something truthy; fail naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(period)


def read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def worker_pid(run_dir: Path, timeout: float = 30) -> int:
    """The run's worker pid, once run.json records it (`running`).

    The entry runs as soon as the worker has its payload, before `running` is written: a
    file the entry made does not mean run.json has `child_pid` yet (a loaded machine shows it).
    """
    found: list[int] = []

    def recorded() -> bool:
        try:
            pid = read_json(run_dir / "run.json").get("child_pid")
        except (OSError, ValueError):
            return False
        found[:] = [pid] if isinstance(pid, int) else []
        return bool(found)

    wait_for(recorded, timeout, "run.json to record the worker's pid")
    return found[0]


def process_alive(pid: int) -> bool:
    """True if `pid` runs and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in (b"Z", b"X")


def session_processes(marker: str = SESSION_ID) -> list[int]:
    """Live processes (not zombies) started by this test session."""
    needle = f"{SESSION_VARIABLE}={marker}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
        except OSError:
            continue
        if process_alive(int(name)):
            found.append(int(name))
    return found


class Project:
    """A throwaway project: a code folder with packages, configs, and an output dir."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.output = root / "outputs"
        root.mkdir(parents=True, exist_ok=True)

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def entry(self, body: str, module: str = "pkg/main.py", function: str = "main") -> str:
        """Write an entry function `function(name, config)` with `body`; return 'pkg.main:main'."""
        parts = Path(module).with_suffix("").parts
        for i in range(1, len(parts)):
            init = self.root.joinpath(*parts[:i], "__init__.py")
            if not init.exists():
                init.parent.mkdir(parents=True, exist_ok=True)
                init.write_text("")
        code = "import os, sys, time, signal, subprocess\n\n\n"
        code += f"def {function}(name, config):\n" + textwrap.indent(textwrap.dedent(body), "    ")
        code = code.rstrip("\n") + "\n"
        self.write(module, code)
        return ".".join(parts) + f":{function}"

    def config(
        self,
        entry: str,
        name: str = "exp",
        extra: dict[str, Any] | None = None,
        path: str = "config.yml",
        **run_keys: Any,
    ) -> Path:
        """Write a config for `entry` with an output dir inside the project."""
        run_section = {
            "__main__": entry,
            "__name__": name,
            "__output_dir__": str(self.output),
            **run_keys,
        }
        data = {"__run__": run_section, **(extra or {})}
        return self.write(path, yaml.safe_dump(data, sort_keys=False))

    def run_dirs(self, name: str = "exp", debug: bool = False) -> list[Path]:
        base = self.output / "DEBUG" / name if debug else self.output / name
        if not base.is_dir():
            return []
        return sorted(base.glob("exp.*"), key=lambda p: int(p.name.split(".")[1]))

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def make_wheel(
    folder: Path,
    name: str,
    version: str,
    modules: dict[str, str],
    requires: Sequence[str] = (),
) -> Path:
    """Write a pure-Python wheel `name-version-py3-none-any.whl` into `folder`.

    `modules` maps file paths inside the wheel (`tinya/__init__.py`) to their text. Built by
    hand (a zip with a dist-info folder), so tests need no build backend and no network.
    """
    import base64
    import hashlib
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    project = re.sub(r"[-_.]+", "_", name)
    dist_info = f"{project}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {requirement}\n" for requirement in requires)
    files = {
        **modules,
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: expyrun-tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
    }
    record = []
    for path, text in files.items():
        digest = hashlib.sha256(text.encode()).digest()
        encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        record.append(f"{path},sha256={encoded},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    wheel = folder / f"{project}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return wheel


# What the expyrun supervisor imports besides the standard library (see pyproject.toml).
SUPERVISOR_MODULES = ("expyrun", "yaml", "_yaml", "psutil")


def make_user_env(path: Path, wheelhouse: Path, requirements: Sequence[str]) -> Path:
    """A virtual environment holding exactly `requirements` (from `wheelhouse`), that runs expyrun.

    The packages are installed offline by this interpreter's pip (`--python`). expyrun and
    the modules it imports are made importable through a .pth file pointing at a folder of
    symbolic links, with no distribution metadata: the environment's frozen requirements
    list only `requirements`, as a real project's would list only its own. Returns its python.
    """
    import importlib.util

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    if requirements:
        pip_install(python, wheelhouse, requirements)
    links = path / "expyrun-links"
    links.mkdir()
    for name in SUPERVISOR_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        (links / name).symlink_to(next(iter(spec.submodule_search_locations)))
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "expyrun-links.pth").write_text(f"{links}\n")
    return python


def pip_install(python: Path, wheelhouse: Path, requirements: Sequence[str]) -> None:
    """Install `requirements` from `wheelhouse` into `python`'s environment, offline."""
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(python), "install", "-q"),
            *("--no-index", "--find-links", str(wheelhouse), *requirements),
        ],
        check=True,
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
    )
