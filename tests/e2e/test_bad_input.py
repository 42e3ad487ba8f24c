"""The bad-input catalogue: each row is a mistake a user makes, through the real CLI.

Every row must give exit code 2, exactly one line on stderr that names the file, the key or
the entry point (matching `pattern`), no traceback, and no run folder. Rows after the table
check failures inside the user's code: they get the child's exit code and the traceback lands
in outputs.log instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from support import EXPYRUN, Project, child_env, run

ENTRY = "def main(name, config):\n    print('ran')\n"


def _base(project: Project) -> dict:
    project.write("pkg/__init__.py", "")
    project.write("pkg/main.py", ENTRY)
    return {
        "__run__": {
            "__main__": "pkg.main:main",
            "__name__": "exp",
            "__output_dir__": str(project.output),
        },
        "lr": 0.1,
        "layers": [{"size": 3}],
    }


def _config(project: Project, data: object, name: str = "config.yml") -> Path:
    return project.write(name, yaml.safe_dump(data, sort_keys=False))


def _with(change: Callable[[dict], None]) -> Callable[[Project], list[str]]:
    def setup(project: Project) -> list[str]:
        data = _base(project)
        change(data)
        return [str(_config(project, data))]

    return setup


def _text(text: str, *extra: str) -> Callable[[Project], list[str]]:
    def setup(project: Project) -> list[str]:
        _base(project)
        return [str(project.write("config.yml", text)), *extra]

    return setup


def _args(*extra: str) -> Callable[[Project], list[str]]:
    def setup(project: Project) -> list[str]:
        return [str(_config(project, _base(project))), *extra]

    return setup


def _run_key(key: str, value: object) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        if value is None:
            del data["__run__"][key]
        else:
            data["__run__"][key] = value

    return change


def _slurm_options(options: dict) -> Callable[[Project], list[str]]:
    """`CONFIG --slurm` with these `__run__.__slurm__` options: refused before sbatch runs."""

    def setup(project: Project) -> list[str]:
        data = _base(project)
        data["__run__"]["__slurm__"] = options
        return [str(_config(project, data)), "--slurm"]

    return setup


def _entry_module(text: str) -> Callable[[Project], list[str]]:
    def setup(project: Project) -> list[str]:
        data = _base(project)
        project.write("pkg/main.py", text)
        return [str(_config(project, data))]

    return setup


def _missing_file(project: Project) -> list[str]:
    return [str(project.root / "nope.yml")]


def _directory(project: Project) -> list[str]:
    (project.root / "cfgdir").mkdir(parents=True)
    return [str(project.root / "cfgdir")]


def _default_cycle(project: Project) -> list[str]:
    data = _base(project)
    project.write("b.yml", "__default__: ./a.yml\nx: 1\n")
    data["__default__"] = "./b.yml"
    return [str(_config(project, data, "a.yml"))]


def _missing_default(project: Project) -> list[str]:
    data = _base(project)
    data["__default__"] = "./not-there.yml"
    return [str(_config(project, data))]


def _output_dir_is_a_file(project: Project) -> list[str]:
    data = _base(project)
    project.write("taken", "a file, not a folder")
    data["__run__"]["__output_dir__"] = str(project.root / "taken")
    return [str(_config(project, data))]


def _code_dir_missing(project: Project) -> list[str]:
    data = _base(project)
    data["__run__"]["__code__"] = str(project.root / "no-code-here")
    return [str(_config(project, data))]


CASES = [
    # --- the command line ---
    pytest.param(lambda p: [], r"missing the config file", id="no-arguments"),
    pytest.param(
        lambda p: ["--lr", "1", "c.yml"], r"config file first.*'--lr'", id="override-first"
    ),
    pytest.param(_args("--grace"), r"--grace needs a value", id="grace-without-value"),
    pytest.param(_args("--grace", "soon"), r"--grace.*'soon'", id="grace-not-a-number"),
    pytest.param(_args("--grace", "-1"), r"--grace.*'-1'", id="grace-negative"),
    pytest.param(_args("--lr"), r"lr", id="override-without-value"),
    pytest.param(_args("lr", "2"), r"lr", id="override-without-dashes"),
    pytest.param(_args("--lrr", "2"), r"lrr.*did you mean.*lr", id="override-unknown-key"),
    pytest.param(_args("--lr", "fast"), r"lr.*fast", id="override-untypable"),
    pytest.param(_args("--layers.5.size", "2"), r"layers", id="override-index-out-of-range"),
    pytest.param(_args("--slurm", "--detach"), r"--slurm and --detach", id="slurm-and-detach"),
    # --- the config file ---
    pytest.param(_missing_file, r"nope\.yml", id="missing-file"),
    pytest.param(_directory, r"cfgdir", id="directory-not-file"),
    pytest.param(_text(""), r"config\.yml.*empty", id="empty-file"),
    pytest.param(_text("a: [1, 2\n"), r"config\.yml:\d+", id="yaml-syntax-error"),
    pytest.param(_text("- 1\n- 2\n"), r"config\.yml.*mapping", id="top-level-list"),
    pytest.param(_text("a: !!python/object:os.system {}\n"), r"config\.yml:1", id="python-tag"),
    pytest.param(_text("1: one\n__run__: {}\n"), r"config\.yml:1", id="non-string-key"),
    pytest.param(_text("a: 1\na: 2\n"), r"config\.yml:2.*a", id="duplicate-key"),
    pytest.param(_with(lambda d: d.pop("__run__")), r"__run__", id="missing-run-section"),
    pytest.param(_with(_run_key("__main__", None)), r"__main__", id="missing-main"),
    pytest.param(_with(_run_key("__name__", None)), r"__name__", id="missing-name"),
    pytest.param(_with(_run_key("__output_dir__", None)), r"__output_dir__", id="missing-output"),
    pytest.param(
        _with(_run_key("__main__", "pkg.main")), r"__main__.*pkg\.main", id="main-no-colon"
    ),
    pytest.param(_with(_run_key("__main__", "pkg main:f")), r"__main__", id="main-bad-name"),
    pytest.param(_with(_run_key("__name__", "../escape")), r"__name__|escape", id="name-dotdot"),
    pytest.param(_with(_run_key("__name__", "/abs/name")), r"__name__|/abs", id="name-absolute"),
    pytest.param(
        _args("--__run__.__name__", "a/../../up"), r"__name__|up", id="name-escape-by-override"
    ),
    pytest.param(_default_cycle, r"a\.yml.*b\.yml.*a\.yml", id="default-cycle"),
    pytest.param(_missing_default, r"not-there\.yml", id="missing-default"),
    pytest.param(_with(lambda d: d.update(x="{y}", y="{x}")), r"x.*y|y.*x", id="reference-cycle"),
    pytest.param(
        _with(lambda d: d.update(__new_key_policy__="maybe")), r"maybe", id="bad-key-policy"
    ),
    pytest.param(_args("--strict", "--lr", "{nothing}"), r"nothing", id="strict-warning"),
    # --- sbatch options of --slurm, refused before sbatch runs ---
    pytest.param(_slurm_options({"wait": True}), r"__slurm__\.wait.*--wait", id="slurm-wait"),
    pytest.param(
        _slurm_options({"a b": 1}), r"__slurm__\.a b.*not an sbatch option", id="slurm-bad-name"
    ),
    pytest.param(_slurm_options({"array": "3-1"}), r"array.*empty", id="slurm-empty-array"),
    pytest.param(_slurm_options({"array": "x"}), r"array.*'x'", id="slurm-bad-array"),
    pytest.param(_slurm_options({"mem": '4"G'}), r"mem.*quotes", id="slurm-quote-in-value"),
    # --- the entry point, found before anything is created ---
    pytest.param(_with(_run_key("__main__", "nopkg.main:main")), r"nopkg", id="missing-package"),
    pytest.param(_with(_run_key("__main__", "pkg.nomod:main")), r"nomod", id="missing-module"),
    pytest.param(_with(_run_key("__main__", "pkg.main:nofunc")), r"nofunc", id="missing-function"),
    pytest.param(
        _entry_module("def main():\n    pass\n"), r"pkg\.main:main.*\(name, config\)", id="no-args"
    ),
    pytest.param(
        _entry_module("def main(a, b, c):\n    pass\n"), r"\(name, config\)", id="three-args"
    ),
    pytest.param(
        _entry_module("async def main(name, config):\n    pass\n"), r"async", id="async-entry"
    ),
    pytest.param(_entry_module("def main(name, config)\n"), r"main\.py:1.*syntax", id="syntax"),
    pytest.param(_code_dir_missing, r"no-code-here|pkg", id="code-dir-missing"),
    # --- the output dir ---
    pytest.param(_output_dir_is_a_file, r"taken", id="output-dir-is-a-file"),
]


@pytest.mark.parametrize(("setup", "pattern"), CASES)
def test_bad_input_gets_one_clear_line_and_exit_2(
    project: Project, setup: Callable[[Project], list[str]], pattern: str
) -> None:
    args = setup(project)
    result = run(args, cwd=project.root)
    assert result.code == 2, result.describe()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.describe()
    assert lines[0].startswith("expyrun: error: "), result.describe()
    assert re.search(pattern, lines[0]), f"{pattern!r} not in {lines[0]!r}"
    assert "Traceback" not in result.stderr
    assert not (project.output / "exp").exists(), "a run folder was created"


def test_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 30


def test_slurm_without_sbatch_is_one_line_and_leaves_no_run_folder(
    project: Project, tmp_path: Path
) -> None:
    """`--slurm` where Slurm is not installed: found when sbatch runs, after the run folder was
    prepared, which is then removed."""
    bin_dir = tmp_path / "bin"  # git only: the snapshot takes the git state before sbatch
    bin_dir.mkdir()
    git = shutil.which("git")
    if git is not None:
        (bin_dir / "git").symlink_to(git)
    result = run(_args("--slurm")(project), cwd=project.root, env={"PATH": str(bin_dir)})
    assert result.code == 2, result.describe()
    assert result.stderr.splitlines() == [
        "expyrun: error: sbatch: command not found (is Slurm installed on this machine?)"
    ]
    assert not project.output.exists(), "a run folder was left"


def test_unreadable_config_and_unwritable_output_dir(project: Project) -> None:
    """Permission errors. Root reads and writes everything, so the command runs as root
    without the capabilities that bypass file permissions (CAP_DAC_*)."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to drop the permission-bypassing capabilities")
    data = _base(project)
    locked = project.root / "locked"
    locked.mkdir()
    data["__run__"]["__output_dir__"] = str(locked / "out")
    config = _config(project, data)
    secret = project.write("secret.yml", "a: 1\n")
    secret.chmod(0o000)
    locked.chmod(0o555)
    drop = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--", *EXPYRUN]
    try:
        for args, pattern in [([secret], r"secret\.yml.*ermission"), ([config], r"ermission")]:
            done = subprocess.run(
                [*drop, *map(str, args)],
                cwd=project.root,
                env=child_env(),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 2, done.stderr
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1, done.stderr
            assert re.search(pattern, lines[0]), lines[0]
    finally:
        locked.chmod(0o755)
    assert not (locked / "out").exists()


def test_an_entry_module_that_raises_at_import_is_the_users_failure(project: Project) -> None:
    data = _base(project)
    project.write(
        "pkg/main.py",
        "raise RuntimeError('broken at import')\n\ndef main(name, config):\n    pass\n",
    )
    result = run([_config(project, data)], cwd=project.root)
    assert result.code == 1
    log = result.log.decode()
    assert "RuntimeError: broken at import" in log
    assert "worker.py" not in log
    assert result.record["status"] == "failed"


def test_an_entry_signature_only_visible_at_run_time_is_refused_by_the_worker(
    project: Project,
) -> None:
    data = _base(project)
    project.write(
        "pkg/main.py",
        "import functools\n\ndef _impl():\n    pass\n\nmain = functools.partial(_impl)\n",
    )
    result = run([_config(project, data)], cwd=project.root)
    assert result.code != 0
    assert "Traceback" not in result.stderr or "TypeError" in result.log.decode()
