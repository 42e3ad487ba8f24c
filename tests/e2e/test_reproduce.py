"""`expyrun rerun` and `expyrun reproduce`, offline, with real environments and processes.

Tiny wheels are built by the tests and served from a local folder (`--find-links DIR
--no-index`, passed through to pip-sync). The original run is launched from a "user"
environment holding exactly those wheels; reproducing it builds a fresh environment in a
temporary cache, whose interpreter has no expyrun installed.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import yaml
from support import (
    Project,
    Result,
    child_env,
    kill_group,
    make_user_env,
    make_wheel,
    pip_install,
    read_json,
    run,
    session_processes,
    start,
    wait_for,
)

ENTRY = """
import importlib.util
import tinya, tinyb
print("values", tinya.VALUE, tinyb.VALUE, config["lr"], name)
print("python", sys.executable)
print("expyrun importable", importlib.util.find_spec("expyrun") is not None)
print("which python", __import__("shutil").which("python"))
print("code", "snapshot")
"""
# A build takes a few seconds (venv + ensurepip + pip-sync); allow for a loaded machine.
BUILD_TIMEOUT = 180


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of tiny wheels: tinya 1.0 and 1.1, tinyb 2.0 (needs tinya), tinyc 0.1."""
    folder = tmp_path_factory.mktemp("wheelhouse")
    make_wheel(folder, "tinya", "1.0", {"tinya/__init__.py": "VALUE = 'a-1.0'\n"})
    make_wheel(folder, "tinya", "1.1", {"tinya/__init__.py": "VALUE = 'a-1.1'\n"})
    make_wheel(folder, "tinyb", "2.0", {"tinyb/__init__.py": "VALUE = 'b-2.0'\n"}, ["tinya"])
    make_wheel(folder, "tinyc", "0.1", {"tinyc/__init__.py": "VALUE = 'c-0.1'\n"})
    return folder


@pytest.fixture(autouse=True)
def _offline_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No pip configuration of this machine, a cache of our own, quick network failures."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for name in list(os.environ):
        if name.startswith("PIP_") and name != "PIP_CONFIG_FILE":
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_RETRIES", "1")
    monkeypatch.setenv("PIP_TIMEOUT", "5")
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # pip's logs of failed builds
    return cache


def envs_folder(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "expyrun" / "envs"


@pytest.fixture
def user_python(tmp_path: Path, wheelhouse: Path) -> Path:
    """The interpreter of a user environment holding tinya 1.0 and tinyb 2.0."""
    return make_user_env(tmp_path / "user-env", wheelhouse, ["tinya==1.0", "tinyb==2.0"])


def original_run(project: Project, python: Path) -> Result:
    """Launch the project's run from the user environment; check it ran."""
    entry = project.entry(ENTRY)
    config = project.config(entry, name="exp-{lr}", extra={"lr": 0.5})
    result = run([config], cwd=project.root, command=[str(python), "-m", "expyrun"])
    assert result.code == 0, result.describe()
    assert "values a-1.0 b-2.0 0.5 exp-0.5\n" in result.log.decode()
    return result


def requirement_lines(run_dir: Path) -> list[str]:
    text = (run_dir / "frozen_requirements.txt").read_text()
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def offline(wheelhouse: Path) -> list[str]:
    return ["--find-links", str(wheelhouse), "--no-index"]


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("expyrun: error:")]


def assert_one_error_line(result: Result, pattern: str, code: int = 2) -> None:
    """Exit `code`, one `expyrun: error:` line (the last), matching; no traceback, no pip ERROR.

    2 for bad input; 69 when venv or pip-sync fails (a tool or the package index).
    """
    assert result.code == code, result.describe()
    assert len(error_lines(result)) == 1, result.describe()
    assert result.stderr.splitlines()[-1] == error_lines(result)[0], result.describe()
    assert pattern in error_lines(result)[0], result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    assert "ERROR:" not in result.stderr, result.describe()


def test_reproduce_rebuilds_the_environment_then_reuses_it(
    project: Project, user_python: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    first = original_run(project, user_python)
    source = first.run_dir
    assert requirement_lines(source) == ["tinya==1.0", "tinyb==2.0"]
    # The working tree changes after the run: reproduce must run the snapshot.
    main = project.root / "pkg" / "main.py"
    main.write_text(main.read_text().replace('"snapshot"', '"working tree"'))

    cold = run(["reproduce", source, *offline(wheelhouse)], cwd=project.root, timeout=BUILD_TIMEOUT)

    assert cold.code == 0, cold.describe()
    assert "building the environment" in cold.stderr
    assert "  Successfully installed tinya-1.0 tinyb-2.0" in cold.stderr  # pip's progress
    envs = envs_folder(tmp_path)
    [environment] = list(envs.iterdir())  # no temporary folder left beside it
    log = cold.log.decode()
    assert "values a-1.0 b-2.0 0.5 exp-0.5\n" in log
    assert f"python {environment / 'bin' / 'python'}\n" in log
    assert "expyrun importable False\n" in log  # the worker runs without expyrun installed
    assert f"which python {environment / 'bin' / 'python'}\n" in log  # as if activated
    assert "code snapshot\n" in log
    assert cold.run_dir == source.parent / "exp.1"
    assert requirement_lines(cold.run_dir) == requirement_lines(source)
    record = cold.record
    assert record["reproduces"] == str(source)
    assert record["environment"] == str(environment)
    assert record["python"]["executable"] == str(environment / "bin" / "python")
    assert record["rerun_of"] is None
    assert (cold.run_dir / "pkg" / "main.py").read_text() == (
        source / "pkg" / "main.py"
    ).read_text()
    # The venv was built in a temporary folder: nothing in it still names that folder.
    for file in [environment / "pyvenv.cfg", *(environment / "bin").iterdir()]:
        if file.is_file() and not file.is_symlink():
            assert b".tmp-" not in file.read_bytes(), file

    cached = run(["reproduce", source, "--lr", "0.7"], cwd=project.root)  # no index needed now

    assert cached.code == 0, cached.describe()
    assert f"reusing the environment {environment}" in cached.stderr
    assert "building" not in cached.stderr
    assert "values a-1.0 b-2.0 0.7 exp-0.5\n" in cached.log.decode()  # config.yml: same name
    assert cached.run_dir == source.parent / "exp.2"


def test_reproduce_into_a_chosen_environment_and_check_it(
    project: Project, user_python: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    source = original_run(project, user_python).run_dir
    not_a_venv = tmp_path / "not-a-venv"
    not_a_venv.mkdir()
    (not_a_venv / "notes.txt").write_text("mine\n")
    refused = run(["reproduce", source, "--env", not_a_venv], cwd=project.root)
    assert_one_error_line(refused, "not-a-venv: exists and is not a virtual environment")
    assert [p.name for p in not_a_venv.iterdir()] == ["notes.txt"]
    chosen = tmp_path / "chosen-env"
    chosen.mkdir()  # an empty folder is built into

    made = run(
        ["reproduce", source, "--env", chosen, *offline(wheelhouse)],
        cwd=project.root,
        timeout=BUILD_TIMEOUT,
    )

    assert made.code == 0, made.describe()
    assert made.record["environment"] == str(chosen)
    assert not envs_folder(tmp_path).exists()  # the cache is not used
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".chosen")) == []
    checked = run(["reproduce", source, "--check", "--env", chosen], cwd=project.root)
    assert checked.code == 0, checked.describe()
    assert "matches the run's 2 requirements" in checked.stderr
    assert checked.stdout == ""


def test_check_lists_changed_removed_and_added_packages(
    project: Project, user_python: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    source = original_run(project, user_python).run_dir
    same = run(
        ["reproduce", source, "--check"],
        cwd=project.root,
        command=[str(user_python), "-m", "expyrun"],
    )
    assert same.code == 0, same.describe()
    assert "this environment" in same.stderr
    assert "matches" in same.stderr
    # The user's environment moves on: tinya upgraded, tinyb gone, tinyc new.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(user_python),
            "uninstall",
            "-q",
            "-y",
            "tinyb",
        ],
        check=True,
    )
    pip_install(user_python, wheelhouse, ["tinya==1.1", "tinyc==0.1"])

    changed = run(
        ["reproduce", source, "--check"],
        cwd=project.root,
        command=[str(user_python), "-m", "expyrun"],
    )

    assert changed.code == 1, changed.describe()
    assert changed.stdout.splitlines() == [
        "changed  tinya 1.0 -> 1.1",
        "removed  tinyb 2.0",
        "added    tinyc 0.1",
    ]
    assert "differs from" in changed.stderr
    assert "in 3 places" in changed.stderr
    assert not envs_folder(tmp_path).exists()  # --check builds nothing


def test_rerun_uses_the_snapshot_and_rederives_the_name(project: Project) -> None:
    entry = project.entry('print("lr", config["lr"], "code", "snapshot")')
    config = project.config(entry, name="exp-{lr}", extra={"lr": 0.5})
    source = run([config], cwd=project.root).run_dir
    main = project.root / "pkg" / "main.py"
    main.write_text(main.read_text().replace('"snapshot"', '"working tree"'))

    rerun = run(["rerun", source, "--lr", "0.1"], cwd=project.root)

    assert rerun.code == 0, rerun.describe()
    assert rerun.run_dir == project.output / "exp-0.1" / "exp.0"
    assert rerun.log == b"lr 0.1 code snapshot\n"
    assert rerun.record["rerun_of"] == str(source)
    assert rerun.record["reproduces"] is None
    assert rerun.record["environment"] is None
    raw = yaml.safe_load((rerun.run_dir / "raw_config.yml").read_text())
    assert raw["__run__"]["__name__"] == "exp-{lr}"
    assert raw["__run__"]["__code__"] == str(rerun.run_dir)
    # --exact: config.yml, whose name is already resolved; a rerun of a rerun works too.
    exact = run(["rerun", rerun.run_dir, "--exact", "--lr", "0.2"], cwd=project.root)
    assert exact.code == 0, exact.describe()
    assert exact.run_dir == project.output / "exp-0.1" / "exp.1"
    assert exact.log == b"lr 0.2 code snapshot\n"


def test_rerun_copies_only_the_code_copy_and_keeps_the_git_state(project: Project) -> None:
    entry = project.entry('open("written.py", "w").write("x = 1\\n"); print("ok")')
    project.write("helpers.py", "HELP = 1\n")
    source = run([project.config(entry)], cwd=project.root).run_dir
    assert (source / "written.py").is_file()  # the run wrote a module into its folder
    git = '{"commit": "abc", "dirty": true, "diff": "git.diff"}'
    (source / "run.json").write_text(
        (source / "run.json").read_text().replace('"git": null', f'"git": {git}')
    )
    (source / "git.diff").write_text("+# edited\n")

    rerun = run(["rerun", source], cwd=project.root)

    assert rerun.code == 0, rerun.describe()
    assert sorted(rerun.record["code_copy"]["copied"]) == ["helpers.py", "pkg"]
    assert rerun.record["git"] == {"commit": "abc", "dirty": True, "diff": "git.diff"}
    assert (rerun.run_dir / "git.diff").read_text() == "+# edited\n"


def test_expyrun_installed_from_its_source_tree_is_not_synced(project: Project) -> None:
    import expyrun

    dist = next(Path(sys.prefix).glob("lib/python3*/site-packages/expyrun-*.dist-info"), None)
    if dist is None or '"editable": true' not in _read(dist / "direct_url.json"):
        pytest.skip("expyrun is not installed editable here")
    result = run([project.config(project.entry('print("ok")'))], cwd=project.root)
    frozen = (result.run_dir / "frozen_requirements.txt").read_text().splitlines()
    [line] = [line for line in frozen if "expyrun" in line]
    source = Path(expyrun.__file__).parent.parent
    assert line == f"# expyrun=={expyrun.__version__}  (own code from {source}, not synced)"


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_reproduce_in_another_python_version(
    project: Project, user_python: Path, wheelhouse: Path
) -> None:
    other = _other_python()
    if other is None:
        pytest.skip("no other Python 3.8+ minor version on this machine")
    source = original_run(project, user_python).run_dir

    result = run(
        ["reproduce", source, "--python", other, *offline(wheelhouse)],
        cwd=project.root,
        timeout=BUILD_TIMEOUT,
    )

    assert result.code == 0, result.describe()
    assert "warning: the run used Python" in result.stderr, result.describe()
    version = result.record["python"]["version"]
    assert version.split(".")[:2] != sys.version.split()[0].split(".")[:2]
    assert "values a-1.0 b-2.0 0.5 exp-0.5\n" in result.log.decode()
    frozen = (result.run_dir / "frozen_requirements.txt").read_text()
    assert frozen.startswith(f"# python {version}\n")


def _other_python() -> str | None:
    """An interpreter of another minor version than this one (for the pickled payload path)."""
    this = sys.version_info[:2]
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3")))
    candidates += [shutil.which(f"python3.{minor}") or "" for minor in range(8, 15)]
    for candidate in filter(None, candidates):
        done = subprocess.run(
            [candidate, "-c", "import sys, venv, ensurepip; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            continue
        version = tuple(map(int, done.stdout.split()))
        if version != this and version >= (3, 8):
            return candidate
    return None


@pytest.mark.parametrize(
    ("edit", "extra", "pattern"),
    [
        pytest.param(
            ("tinya==1.0", "tinya==9.9"),
            [],
            "pip-sync failed: Could not find a version that satisfies the requirement tinya==9.9",
            id="version-that-does-not-exist",
        ),
        pytest.param(
            None,
            ["--index-url", "http://127.0.0.1:9/simple"],
            "pip-sync failed: cannot reach the package index",
            id="no-network",
        ),
        pytest.param(
            ("tinyb==2.0", "tinyb @ file:///nonexistent/tinyb"),
            [],
            "frozen_requirements.txt:3: tinyb was installed from /nonexistent/tinyb, which no",
            id="local-path-gone",
        ),
    ],
)
def test_a_failed_build_is_one_line_and_leaves_nothing(
    project: Project,
    user_python: Path,
    wheelhouse: Path,
    tmp_path: Path,
    edit: tuple[str, str] | None,
    extra: list[str],
    pattern: str,
) -> None:
    source = original_run(project, user_python).run_dir
    frozen = source / "frozen_requirements.txt"
    if edit is not None:
        frozen.write_text(frozen.read_text().replace(*edit))
    options = extra or offline(wheelhouse)

    result = run(["reproduce", source, *options], cwd=project.root, timeout=BUILD_TIMEOUT)

    assert_one_error_line(result, pattern, 69 if "pip-sync failed" in pattern else 2)
    if "pip-sync failed" in pattern:  # the hint names pip's full output
        [log] = list((tmp_path / "tmp").glob("expyrun-pip-sync-*.log"))
        assert f"full output in {log}" in result.stderr
        assert "ERROR:" in log.read_text()
    envs = envs_folder(tmp_path)
    assert (list(envs.iterdir()) if envs.exists() else []) == []  # no half-built environment
    assert sorted(p.name for p in source.parent.iterdir()) == ["exp.0"]  # no run folder


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        pytest.param(["rerun"], "missing the run folder", id="rerun-no-folder"),
        pytest.param(["reproduce", "nowhere"], "nowhere: no such run folder", id="no-folder"),
        pytest.param(["rerun", "."], "not a run folder: no run.json", id="not-a-run-folder"),
        pytest.param(["reproduce", "RUN", "--env"], "--env needs a value", id="env-no-value"),
        pytest.param(["rerun", "--lr", "1"], "expected the run folder first", id="override-first"),
    ],
)
def test_bad_command_lines_are_one_line(project: Project, args: list[str], pattern: str) -> None:
    project.root.mkdir(exist_ok=True)
    result = run(args, cwd=project.root)
    assert result.code == 2, result.describe()
    assert result.stderr.count("\n") == 1, result.describe()
    assert pattern in result.stderr, result.describe()


def test_a_debug_run_cannot_be_run_again(project: Project) -> None:
    entry = project.entry('print("ok")')
    debug = run([project.config(entry), "--debug"], cwd=project.root)
    assert debug.code == 0, debug.describe()
    for command in ("rerun", "reproduce"):
        result = run([command, debug.run_dir], cwd=project.root)
        assert result.code == 2, result.describe()
        assert result.stderr.count("\n") == 1, result.describe()
        assert "a --debug run keeps no code copy to run again" in result.stderr


def test_a_key_named_like_a_flag_goes_after_a_double_dash(project: Project) -> None:
    entry = project.entry('print("env", config["env"])')
    source = run([project.config(entry, extra={"env": "a"})], cwd=project.root).run_dir
    result = run(["rerun", source, "--", "--env", "b"], cwd=project.root)
    assert result.code == 0, result.describe()
    assert result.log == b"env b\n"


def test_detached_reproduce_records_the_environment(
    project: Project, user_python: Path, wheelhouse: Path
) -> None:
    source = original_run(project, user_python).run_dir
    result = run(
        ["reproduce", source, "--detach", *offline(wheelhouse)],
        cwd=project.root,
        timeout=BUILD_TIMEOUT,
    )
    assert result.code == 0, result.describe()
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    wait_for(
        lambda: read_json(run_dir / "run.json")["status"] == "succeeded", 30, "the detached run"
    )
    record = read_json(run_dir / "run.json")
    assert record["reproduces"] == str(source)
    assert record["python"]["executable"] == str(Path(record["environment"]) / "bin" / "python")
    assert requirement_lines(run_dir) == ["tinya==1.0", "tinyb==2.0"]
    assert "expyrun importable False\n" in (run_dir / "outputs.log").read_text()


def test_ctrl_c_during_a_build_leaves_nothing(
    project: Project, user_python: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    source = original_run(project, user_python).run_dir
    stderr = tmp_path / "stderr"
    with stderr.open("wb") as sink:
        process = start(["reproduce", source, *offline(wheelhouse)], cwd=project.root, stderr=sink)
    try:
        wait_for(lambda: "-m venv" in stderr.read_text(), 60, "the build to start")
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
        assert process.wait(timeout=60) == 130, stderr.read_text()
    finally:
        kill_group(process.pid)
        process.wait()
    assert "expyrun: error: interrupted" in stderr.read_text()
    assert list(envs_folder(tmp_path).iterdir()) == []
    assert sorted(p.name for p in source.parent.iterdir()) == ["exp.0"]


def test_a_changed_cached_environment_is_built_again(
    project: Project, user_python: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    source = original_run(project, user_python).run_dir
    first = run(
        ["reproduce", source, *offline(wheelhouse)], cwd=project.root, timeout=BUILD_TIMEOUT
    )
    assert first.code == 0, first.describe()
    [environment] = list(envs_folder(tmp_path).iterdir())
    pip_install(environment / "bin" / "python", wheelhouse, ["tinyc==0.1"])

    again = run(
        ["reproduce", source, *offline(wheelhouse)], cwd=project.root, timeout=BUILD_TIMEOUT
    )

    assert again.code == 0, again.describe()
    assert "has changed: building it again" in again.stderr
    assert [p.name for p in envs_folder(tmp_path).iterdir()] == [environment.name]
    assert requirement_lines(again.run_dir) == ["tinya==1.0", "tinyb==2.0"]


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        pytest.param(["--chek"], "did you mean expyrun's flag --check?", id="mistyped-flag"),
        pytest.param(["--no_such_key", "1"], "no_such_key", id="unknown-key"),
        pytest.param(["--nproc", "100000"], "--nproc takes from 1 to", id="nproc-past-limit"),
    ],
)
def test_bad_overrides_are_found_before_the_environment_is_built(
    project: Project,
    user_python: Path,
    wheelhouse: Path,
    tmp_path: Path,
    args: list[str],
    pattern: str,
) -> None:
    """A typo costs one line, not the minutes of an environment build first."""
    source = original_run(project, user_python).run_dir

    result = run(["reproduce", source, *args, *offline(wheelhouse)], cwd=project.root)

    assert_one_error_line(result, pattern)
    envs = envs_folder(tmp_path)
    assert (list(envs.iterdir()) if envs.exists() else []) == []  # nothing was built
    assert sorted(p.name for p in source.parent.iterdir()) == ["exp.0"]  # no run folder


def test_reproduce_of_an_nproc_run_starts_as_many_workers(
    project: Project, user_python: Path, wheelhouse: Path
) -> None:
    """It ran 2 workers (--nproc 2): its reproduction too, each in the rebuilt environment."""
    body = ENTRY + 'print("rank", os.environ.get("RANK"), "of", os.environ.get("WORLD_SIZE"))\n'
    config = project.config(project.entry(body), name="exp-{lr}", extra={"lr": 0.5})
    command = [str(user_python), "-m", "expyrun"]
    first = run([config, "--nproc", "2"], cwd=project.root, command=command)
    assert first.code == 0, first.describe()

    again = run(
        ["reproduce", first.run_dir, *offline(wheelhouse)], cwd=project.root, timeout=BUILD_TIMEOUT
    )

    assert again.code == 0, again.describe()
    assert "it ran 2 workers (--nproc 2): so does this run" in again.stderr
    tasks = again.record["tasks"]
    assert [(task["rank"], task["status"]) for task in tasks] == [
        (0, "succeeded"),
        (1, "succeeded"),
    ]
    for rank, log in enumerate(["outputs.log", "outputs.task1.log"]):
        text = (again.run_dir / log).read_text()
        assert f"rank {rank} of 2\n" in text
        assert "values a-1.0 b-2.0 0.5 exp-0.5\n" in text
        assert "expyrun importable False\n" in text  # each worker in the rebuilt environment


def _pip_installs(pid: int) -> bool:
    """Whether a `pip install` runs below expyrun `pid` (venv's ensurepip starts one)."""
    for child in psutil.Process(pid).children(recursive=True):
        try:
            argv = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "pip" in argv and "install" in argv:
            return True
    return False


def test_sigterm_during_a_build_leaves_no_process(
    project: Project, user_python: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    """`kill PID` (not the group, as a CI timeout does) while ensurepip's `pip install` runs:
    expyrun kills the venv command and what it started (tests/unit/test_command_door.py has
    a program that stays silent, which an orphaned pip here is not for long)."""
    source = original_run(project, user_python).run_dir
    process = start(["reproduce", source, *offline(wheelhouse)], cwd=project.root)
    try:
        wait_for(lambda: _pip_installs(process.pid), 120, "pip install", period=0.005)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
        # Checked before expyrun's group is killed below: they are in it.
        wait_for(lambda: not session_processes(), 1, "the build's processes to end")
    finally:
        kill_group(process.pid)
        process.wait()
    assert process.returncode == 143, err.decode()
    assert "expyrun: error: interrupted (SIGTERM)" in err.decode()
    assert list(envs_folder(tmp_path).iterdir()) == []


# Samples, every 5 ms, whether the garbage collector is on while a child of this process
# builds the environment (`python -m venv`, `-m piptools sync`); then runs `main(ARGV)`.
BUILD_GC_SAMPLER = """
import gc, glob, sys, time, _thread, expyrun.__main__
from expyrun.cli import main
samples = []
def building():
    for path in glob.glob("/proc/self/task/*/children"):
        for pid in open(path).read().split():
            try:
                argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
            except OSError:
                continue
            module = argv[argv.index(b"-m") + 1] if b"-m" in argv[:-1] else b""
            if module in (b"venv", b"piptools", b"pip"):
                return True
    return False
def sample():
    while True:
        if building():
            samples.append(gc.isenabled())
        time.sleep(0.005)
_thread.start_new_thread(sample, ())
code = main(sys.argv[1:])
print(code, len(samples), samples.count(False))
"""


def test_the_collector_is_on_while_the_environment_is_built(
    project: Project, user_python: Path, wheelhouse: Path
) -> None:
    """expyrun starts with the collector off (expyrun/__main__.py) and turns it on once its
    start-up is over; building an environment takes minutes: the start-up is over."""
    source = original_run(project, user_python).run_dir
    argv = [sys.executable, "-c", BUILD_GC_SAMPLER, "reproduce", str(source), *offline(wheelhouse)]
    result = subprocess.run(
        argv,
        cwd=project.root,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    code, samples, off = result.stdout.split()[-3:]
    assert (code, off) == ("0", "0"), f"{samples} samples\n{result.stderr}"
    assert int(samples) > 0
