"""The run pipeline end to end: the real CLI, real worker processes, the files they write."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from support import Project, read_json, run, start, wait_for


def test_a_run_folder_holds_configs_code_requirements_log_and_record(project: Project) -> None:
    entry = project.entry(
        """
        print("hello", name, config["lr"])
        print("cwd", os.getcwd())
        print("file", __file__)
        print("EXPYRUN_CWD", os.environ["EXPYRUN_CWD"])
        """
    )
    project.write("pkg/data/table.csv", "a,b\n1,2\n")
    project.write("pkg/__pycache__/junk.pyc", "x")
    config = project.config(entry, name="exp-{lr}", extra={"lr": 0.5})

    result = run([config], cwd=project.root)

    assert result.code == 0, result.describe()
    run_dir = result.run_dir
    assert run_dir == project.output / "exp-0.5" / "exp.0"
    names = {p.name for p in run_dir.iterdir()}
    expected = {"config.yml", "raw_config.yml", "frozen_requirements.txt", "outputs.log"}
    assert expected | {"run.json", "pkg"} <= names
    assert (run_dir / "pkg" / "main.py").is_file()
    assert (run_dir / "pkg" / "data" / "table.csv").read_text() == "a,b\n1,2\n"
    assert not (run_dir / "pkg" / "__pycache__" / "junk.pyc").exists()
    log = result.log.decode()
    assert "hello exp-0.5 0.5\n" in log
    assert f"cwd {run_dir}\n" in log
    assert f"file {run_dir / 'pkg' / 'main.py'}\n" in log  # the copy runs, not the original
    assert f"EXPYRUN_CWD {project.root}\n" in log
    stored = yaml.safe_load((run_dir / "config.yml").read_text())
    assert stored["__run__"]["__name__"] == "exp-0.5"
    assert stored["__run__"]["__code__"] == str(run_dir)
    raw = yaml.safe_load((run_dir / "raw_config.yml").read_text())
    assert raw["__run__"]["__name__"] == "exp-{lr}"


def test_record_fields_have_their_types(project: Project) -> None:
    entry = project.entry('print("ok")')
    result = run([project.config(entry)], cwd=project.root)
    assert result.code == 0, result.describe()
    record = result.record
    assert record["status"] == "succeeded"
    assert record["exit_code"] == 0
    assert record["signal"] is None
    for key in ("started_at", "ended_at"):
        assert record[key][-6] in "+-", record[key]  # ISO 8601 with a UTC offset
    assert isinstance(record["duration_s"], float)
    assert isinstance(record["pid"], int)
    assert isinstance(record["child_pid"], int)
    assert record["pid"] != record["child_pid"]
    assert record["host"] == os.uname().nodename
    assert isinstance(record["user"], str)
    assert record["command"][:2] == ["expyrun", str(project.root / "config.yml")]
    assert record["cwd"] == str(project.root)
    assert record["python"]["executable"] == sys.executable
    assert isinstance(record["expyrun_version"], str)
    assert record["peak_rss_bytes"] > 1_000_000
    assert record["cpu_user_s"] >= 0
    assert record["cpu_system_s"] >= 0
    assert record["slurm"] is None
    assert record["git"] is None  # tmp_path is not in a git repository


def test_peak_memory_covers_a_200_mb_allocation(project: Project) -> None:
    entry = project.entry(
        """
        block = bytearray(200 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        print(len(block))
        """
    )
    result = run([project.config(entry)], cwd=project.root)
    assert result.code == 0, result.describe()
    assert result.record["peak_rss_bytes"] >= 150 * 1024 * 1024


def test_stdout_and_stderr_keep_their_order(project: Project) -> None:
    entry = project.entry(
        """
        for i in range(300):
            print(f"out {i}")
            print(f"err {i}", file=sys.stderr)
            if i % 7 == 0:
                sys.stderr.write(f"err-partial {i}")
                sys.stderr.write("\\n")
        """
    )
    result = run([project.config(entry)], cwd=project.root)
    assert result.code == 0, result.describe()
    expected = []
    for i in range(300):
        expected += [f"out {i}", f"err {i}"]
        if i % 7 == 0:
            expected.append(f"err-partial {i}")
    assert result.log.decode().splitlines() == expected
    assert result.stdout.splitlines() == [f"out {i}" for i in range(300)]


def test_ten_megabytes_arrive_byte_exact(project: Project) -> None:
    entry = project.entry(
        """
        import random
        rng = random.Random(7)
        digest = __import__("hashlib").sha256()
        total = 0
        while total < 10 * 1024 * 1024:
            size = rng.choice([1, 100, 4095, 65536, 200000])
            chunk = bytes(rng.getrandbits(8) for _ in range(min(size, 2000))) * (size // 2000 + 1)
            chunk = chunk[:size]
            if rng.random() < 0.5:
                sys.stdout.buffer.write(chunk)
            else:
                sys.stdout.flush()
                os.write(1, chunk)
            digest.update(chunk)
            total += len(chunk)
        sys.stdout.flush()
        open("expected.sha256", "w").write(digest.hexdigest())
        """
    )
    result = run([project.config(entry)], cwd=project.root, timeout=120)
    assert result.code == 0, result.describe()
    expected = (result.run_dir / "expected.sha256").read_text()
    assert hashlib.sha256(result.log).hexdigest() == expected
    assert hashlib.sha256(result.stdout_bytes).hexdigest() == expected  # the terminal copy too
    assert result.record["output_bytes"] == len(result.log) >= 10 * 1024 * 1024


def test_output_of_os_system_subprocesses_and_raw_writes_is_captured(project: Project) -> None:
    entry = project.entry(
        """
        print("python print")
        sys.stdout.flush()
        os.system("echo from os.system; echo to stderr >&2")
        subprocess.run(["sh", "-c", "echo from subprocess"], check=True)
        os.write(1, b"raw write to fd 1\\n")
        sys.stdout.buffer.write(b"through sys.stdout.buffer\\n")
        sys.__stdout__.write("through sys.__stdout__\\n")
        """
    )
    result = run([project.config(entry)], cwd=project.root)
    assert result.code == 0, result.describe()
    log = result.log.decode()
    for line in (
        "python print",
        "from os.system",
        "to stderr",
        "from subprocess",
        "raw write to fd 1",
        "through sys.stdout.buffer",
        "through sys.__stdout__",
    ):
        assert line + "\n" in log, log


def test_output_is_live_while_the_entry_runs(project: Project) -> None:
    """A printed line reaches outputs.log while the entry still runs, without any flush."""
    entry = project.entry(
        """
        print("waiting for the go file")
        deadline = time.monotonic() + 30
        while not os.path.exists(config["go"]) and time.monotonic() < deadline:
            time.sleep(0.01)
        print("done")
        """
    )
    go = project.root / "go"
    process = start([project.config(entry, extra={"go": str(go)})], cwd=project.root)
    try:
        log = project.output / "exp" / "exp.0" / "outputs.log"
        wait_for(
            lambda: log.exists() and b"waiting for the go file\n" in log.read_bytes(),
            10,
            "the line printed before waiting",
        )
        go.touch()
        assert process.wait(30) == 0
    finally:
        process.kill()
        process.communicate()
    assert log.read_bytes() == b"waiting for the go file\ndone\n"


@pytest.mark.parametrize(
    ("body", "code", "status", "signal_name"),
    [
        pytest.param("pass", 0, "succeeded", None, id="returns"),
        pytest.param("raise ValueError('boom')", 1, "failed", None, id="raises"),
        pytest.param("sys.exit(3)", 3, "failed", None, id="sys-exit-3"),
        pytest.param("print('bye'); os._exit(4)", 4, "failed", None, id="os-exit-4"),
        pytest.param(
            "os.kill(os.getpid(), signal.SIGKILL)", 128 + 9, "killed", "SIGKILL", id="sigkill"
        ),
        pytest.param(
            "os.kill(os.getpid(), signal.SIGSEGV)", 128 + 11, "killed", "SIGSEGV", id="sigsegv"
        ),
    ],
)
def test_exit_status_is_the_entrys(
    project: Project, body: str, code: int, status: str, signal_name: str | None
) -> None:
    entry = project.entry("print('started', flush=True)\n" + body)
    result = run([project.config(entry)], cwd=project.root)
    assert result.code == code, result.describe()
    record = result.record
    assert (record["status"], record["exit_code"], record["signal"]) == (status, code, signal_name)
    assert result.log.startswith(b"started\n")
    if signal_name == "SIGSEGV":
        assert b"Fatal Python error: Segmentation fault" in result.log


def test_a_traceback_from_the_entry_lands_in_outputs_log(project: Project) -> None:
    entry = project.entry(
        """
        print("before the crash")
        def inner():
            raise ValueError("the user's bug")
        inner()
        """
    )
    result = run([project.config(entry)], cwd=project.root)
    assert result.code == 1
    log = result.log.decode()
    assert "before the crash\n" in log
    assert "Traceback (most recent call last):" in log
    assert 'in inner\n    raise ValueError("the user\'s bug")' in log
    assert log.rstrip().endswith("ValueError: the user's bug")
    assert "worker.py" not in log  # expyrun's own frames are not shown
    assert "Traceback" in result.stderr


def test_os_exit_keeps_buffered_output(project: Project) -> None:
    entry = project.entry('print("x" * 10); print("y", file=sys.stderr); print("z"); os._exit(0)')
    result = run([project.config(entry)], cwd=project.root)
    assert result.code == 0
    assert result.log == b"xxxxxxxxxx\ny\nz\n"


def test_debug_runs_the_original_code_in_the_debug_folder(project: Project) -> None:
    entry = project.entry('print("file", __file__); print(sys.path[0])')
    result = run([project.config(entry), "--debug"], cwd=project.root)
    assert result.code == 0, result.describe()
    assert result.run_dir == project.output / "DEBUG" / "exp" / "exp.0"
    names = {p.name for p in result.run_dir.iterdir()}
    assert names == {
        "config.yml",
        "config.json",
        "raw_config.yml",
        "outputs.log",
        "outputs.index",
        "run.json",
    }
    log = result.log.decode()
    assert f"file {project.root / 'pkg' / 'main.py'}\n" in log
    assert f"{project.root}\n" in log
    assert result.record["debug"] is True


def test_debug_flag_is_accepted_anywhere(project: Project) -> None:
    entry = project.entry('print(config["a"])')
    config = project.config(entry, extra={"a": 1})
    for args in ([config, "--debug", "--a", "2"], [config, "--a", "2", "--debug"]):
        result = run(args, cwd=project.root)
        assert result.code == 0, result.describe()
        assert "DEBUG" in result.run_dir.parts
        assert result.log == b"2\n"
    result = run(["--debug", config, "--a=3"], cwd=project.root)
    assert result.code == 0, result.describe()
    assert result.log == b"3\n"


def test_sibling_packages_and_modules_are_copied_and_importable(project: Project) -> None:
    entry = project.entry("import helpers, shared.tools\nprint(helpers.X, shared.tools.Y)")
    project.write("helpers.py", "X = 1\n")
    project.write("shared/__init__.py", "")
    project.write("shared/tools.py", "Y = 2\n")
    project.write("notes/readme.txt", "not a package")
    result = run([project.config(entry)], cwd=project.root)
    assert result.code == 0, result.describe()
    assert result.log == b"1 2\n"
    assert (result.run_dir / "helpers.py").is_file()
    assert (result.run_dir / "shared" / "tools.py").is_file()
    assert not (result.run_dir / "notes").exists()


def test_single_file_entry_module_is_copied(project: Project) -> None:
    project.write("single.py", "def main(name, config):\n    print('single', __file__)\n")
    result = run([project.config("single:main")], cwd=project.root)
    assert result.code == 0, result.describe()
    assert (result.run_dir / "single.py").is_file()
    assert result.log.decode() == f"single {result.run_dir / 'single.py'}\n"


def test_git_state_and_diff_are_recorded(project: Project) -> None:
    entry = project.entry('print("ok")')
    config = project.config(entry)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@e", "-C", str(project.root)]
    subprocess.run([*git, "init", "-q", "-b", "trunk"], check=True)
    (project.root / ".gitignore").write_text("outputs/\n")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()

    clean = run([config], cwd=project.root)
    assert clean.code == 0, clean.describe()
    assert clean.record["git"] == {
        "commit": commit,
        "branch": "trunk",
        "dirty": False,
        "untracked_files": 0,
    }
    assert not (clean.run_dir / "git.diff").exists()

    (project.root / "pkg" / "main.py").write_text(
        (project.root / "pkg" / "main.py").read_text() + "# edited\n"
    )
    dirty = run([config], cwd=project.root)
    assert dirty.record["git"]["dirty"] is True
    assert dirty.record["git"]["diff"] == "git.diff"
    assert "+# edited" in (dirty.run_dir / "git.diff").read_text()


def test_frozen_requirements_list_this_interpreters_distributions(project: Project) -> None:
    entry = project.entry('print("ok")')
    result = run([project.config(entry)], cwd=project.root)
    lines = (result.run_dir / "frozen_requirements.txt").read_text().splitlines()
    names = {line.split("==")[0].lower() for line in lines if "==" in line}
    assert {"pyyaml", "psutil"} <= names
    assert "pip" not in names
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "list", "--format=freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    pip_pins = {line.lower() for line in listed} - {
        line.lower()
        for line in listed
        if line.lower().startswith(("pip==", "setuptools==", "wheel=="))
    }
    ours = {line.lower() for line in lines if "==" in line and not line.startswith("#")}
    assert pip_pins <= ours


def test_twenty_concurrent_launches_get_twenty_folders(project: Project) -> None:
    entry = project.entry('print("instance", config["i"])')
    config = project.config(entry, extra={"i": -1})
    processes = [start([config, "--i", str(i)], cwd=project.root) for i in range(20)]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0] * 20, outputs
    folders = project.run_dirs()
    assert [f.name for f in folders] == [f"exp.{i}" for i in range(20)]
    seen = sorted(int(f.joinpath("outputs.log").read_text().split()[1]) for f in folders)
    assert seen == list(range(20))
    for f in folders:
        assert read_json(f / "run.json")["status"] == "succeeded"


def test_print_config_prints_and_creates_nothing(project: Project) -> None:
    entry = project.entry('print("never")')
    config = project.config(entry, name="n-{a}", extra={"a": 4})
    result = run([config, "--print-config", "--a", "5"], cwd=project.root)
    assert result.code == 0, result.describe()
    printed = yaml.safe_load(result.stdout)
    assert printed["a"] == 5
    assert printed["__run__"]["__name__"] == "n-5"
    assert result.stdout.rstrip().endswith(f"# run folder: {project.output / 'n-5' / 'exp.0'}")
    assert not project.output.exists()


def test_version_and_help(project: Project) -> None:
    version = run(["--version"], cwd=project.root)
    assert version.code == 0
    assert version.stdout.startswith("expyrun ")
    assert run(["-h"], cwd=project.root).stdout.startswith("usage: expyrun")
    script = Path(sys.executable).with_name("expyrun")
    if script.exists():
        assert run(["--version"], cwd=project.root, command=[str(script)]).stdout == version.stdout


def test_run_again_from_the_stored_config_uses_the_copied_code(project: Project) -> None:
    entry = project.entry('print("version 1", __file__)')
    first = run([project.config(entry)], cwd=project.root)
    (project.root / "pkg" / "main.py").write_text(
        "def main(name, config):\n    print('version 2')\n"
    )
    again = run([first.run_dir / "config.yml"], cwd=project.root.parent)
    assert again.code == 0, again.describe()
    assert again.run_dir == project.output / "exp" / "exp.1"
    assert again.log.decode().startswith("version 1 ")
    rederived = run(
        [first.run_dir / "raw_config.yml", "--__run__.__name__", "other"], cwd=project.root
    )
    assert rederived.run_dir == project.output / "other" / "exp.0"
    assert rederived.log.decode().startswith("version 1 ")


def test_started_at_and_duration_are_consistent(project: Project) -> None:
    entry = project.entry("time.sleep(0.3)")
    before = time.time()
    result = run([project.config(entry)], cwd=project.root)
    record = result.record
    assert 0.3 <= record["duration_s"] < time.time() - before + 1


def test_the_git_diff_is_a_patch_whatever_the_users_diff_settings(project: Project) -> None:
    """git.diff is `git diff HEAD`: an external diff tool (GIT_EXTERNAL_DIFF, diff.external), a
    textconv filter (.gitattributes) or color.diff=always in the user's settings made it their
    output, not a patch that applies (and git ran the tool with the supervisor's signals
    blocked)."""
    entry = project.entry('print("ok")')
    config = project.config(entry)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@e", "-C", str(project.root)]
    subprocess.run([*git, "init", "-q"], check=True)
    (project.root / ".gitignore").write_text("outputs/\n")
    (project.root / ".gitattributes").write_text("*.py diff=shout\n")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    main = project.root / "pkg" / "main.py"
    main.write_text(main.read_text() + "# edited\n")
    tool = project.write("tool.sh", "#!/bin/sh\necho not a patch\n")
    tool.chmod(0o755)
    settings = {"color.diff": "always", "diff.shout.textconv": "tr a-z A-Z <"}
    env = {"GIT_EXTERNAL_DIFF": str(tool), "GIT_CONFIG_COUNT": str(len(settings))}
    for i, (key, value) in enumerate(settings.items()):
        env.update({f"GIT_CONFIG_KEY_{i}": key, f"GIT_CONFIG_VALUE_{i}": value})
    result = run([config], cwd=project.root, env=env)
    assert result.code == 0, result.describe()
    patch = result.run_dir / "git.diff"
    assert "+# edited\n" in patch.read_text(), patch.read_text()
    check = subprocess.run(
        [*git, "apply", "--check", "-R", str(patch)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr + patch.read_text()
