"""The `__run__` section: RunSpec fields, name rules, paths, Slurm options."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from config_support import resolve_text

from expyrun.config import RunSpec
from expyrun.config.file_system import file_system_limits
from expyrun.config.run_section import RUN_FOLDER_PART
from expyrun.errors import ConfigError
from expyrun.run.folder import RUN_FOLDER_PATTERN


def _run(
    tmp_path: Path, section: str, overrides: tuple[str, ...] = (), environ: dict | None = None
) -> RunSpec:
    return resolve_text(tmp_path, f"__run__:\n{section}", overrides, environ=environ, run=False).run


MINIMAL = "  __main__: my_code.experiments.first:main\n  __output_dir__: out\n  __name__: exp\n"


def test_minimal_run_section(tmp_path: Path) -> None:
    assert _run(tmp_path, MINIMAL) == RunSpec(
        entry="my_code.experiments.first:main",
        module="my_code.experiments.first",
        function="main",
        name="exp",
        output_dir=tmp_path / "out",
        code_dir=tmp_path,
        slurm={},
    )


@pytest.mark.parametrize(
    ("main", "module", "function"),
    [
        pytest.param("a:b", "a", "b", id="short"),
        pytest.param("pkg.sub.mod:entry_point", "pkg.sub.mod", "entry_point", id="dotted"),
        pytest.param("_p.m2:_f", "_p.m2", "_f", id="underscores-digits"),
    ],
)
def test_entry_point(tmp_path: Path, main: str, module: str, function: str) -> None:
    run = _run(tmp_path, f"  __main__: {main}\n  __output_dir__: o\n  __name__: n\n")
    assert (run.entry, run.module, run.function) == (main, module, function)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("exp", "exp", id="plain"),
        pytest.param("first_method/MyModel-0.001", "first_method/MyModel-0.001", id="nested"),
        pytest.param("a/./b/", "a/b", id="normalized"),
        pytest.param("./x", "x", id="dot-slash"),
        pytest.param("5", "5", id="int-as-text"),  # defect 18: a TypeError
        pytest.param("0.5", "0.5", id="float-as-text"),
        pytest.param("'[10, 10]'", "[10, 10]", id="brackets"),
        pytest.param("a..b", "a..b", id="dots-inside-a-part"),
    ],
)
def test_run_name(tmp_path: Path, name: str, expected: str) -> None:
    assert (
        _run(tmp_path, f"  __main__: a:b\n  __output_dir__: o\n  __name__: {name}\n").name
        == expected
    )


def test_name_from_references(tmp_path: Path) -> None:
    resolved = resolve_text(
        tmp_path,
        "__run__: {__main__: a:b, __output_dir__: o, __name__: 'n{i}-{lst}'}\ni: 1\nlst: [10, "
        "10]\n",
        run=False,
    )
    assert resolved.run.name == "n1-[10, 10]"


@pytest.mark.parametrize(
    ("output_dir", "expected"),
    [
        pytest.param("out", "{cwd}/out", id="relative-from-the-cwd"),
        pytest.param("../out", "{parent}/out", id="normalized"),
        pytest.param("/abs/out", "/abs/out", id="absolute"),
        # Defect 16: `~` was not expanded (a folder named "~" appeared in the cwd).
        pytest.param("~/runs", "{home}/runs", id="tilde"),
        pytest.param("$OUT/x", "/env/x", id="variable"),
    ],
)
def test_output_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output_dir: str, expected: str
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    run = _run(
        tmp_path,
        f"  __main__: a:b\n  __output_dir__: {output_dir}\n  __name__: n\n",
        environ={"OUT": "/env"},
    )
    assert str(run.output_dir) == expected.format(
        cwd=tmp_path, parent=tmp_path.parent, home=tmp_path / "home"
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        # Defect 14: a relative `__code__` broke --debug (taken from the run folder).
        pytest.param("codedir", "{cwd}/codedir", id="relative-from-the-cwd"),
        pytest.param("/abs/code", "/abs/code", id="absolute"),
        pytest.param("~/code", "{home}/code", id="tilde"),
        pytest.param("null", "{cwd}", id="null-is-the-cwd"),
        pytest.param("$EXPYRUN_CWD/src", "{cwd}/src", id="launch-dir-variable"),
    ],
)
def test_code_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str, expected: str
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    run = _run(
        tmp_path, f"  __main__: a:b\n  __output_dir__: o\n  __name__: n\n  __code__: {code}\n"
    )
    assert str(run.code_dir) == expected.format(cwd=tmp_path, home=tmp_path / "home")


def test_code_dir_is_taken_from_the_given_cwd_not_the_process_cwd(tmp_path: Path) -> None:
    launch = tmp_path / "launch"
    launch.mkdir()
    config = tmp_path / "c.yml"
    config.write_text("__run__: {__main__: a:b, __output_dir__: o, __name__: n, __code__: src}\n")
    from expyrun.config import resolve

    run = resolve(config, cwd=launch, environ={}).run
    assert (run.code_dir, run.output_dir) == (launch / "src", launch / "o")


def test_slurm_options(tmp_path: Path) -> None:
    run = _run(
        tmp_path,
        MINIMAL + "  __slurm__:\n    partition: gpu\n    cpus-per-task: 4\n    exclusive: true\n"
        "    time: null\n",
    )
    assert run.slurm == {"partition": "gpu", "cpus-per-task": 4, "exclusive": True, "time": None}


def test_extra_run_keys_are_kept_and_entry_config_drops_run_only(tmp_path: Path) -> None:
    resolved = resolve_text(
        tmp_path,
        "__run__:\n" + MINIMAL + "  __note__: hello\n__other__: 1\na: 2\n",
        run=False,
    )
    assert resolved.config["__run__"]["__note__"] == "hello"
    assert resolved.entry_config == {"__other__": 1, "a": 2}
    assert "__run__" in resolved.config


def test_resolved_and_run_spec_are_frozen(tmp_path: Path) -> None:
    resolved = resolve_text(tmp_path, "a: 1\n")
    with pytest.raises(AttributeError):
        resolved.run.name = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        resolved.config = {}  # type: ignore[misc]


# --- names and paths the run folder cannot have (issue 11) -----------------------------------


def _refused(tmp_path: Path, name: str, output_dir: str = "o") -> str:
    section = f"  __main__: a:b\n  __output_dir__: {output_dir}\n  __name__: {name}\n"
    with pytest.raises(ConfigError) as caught:
        _run(tmp_path, section)
    assert "\n" not in str(caught.value)
    return str(caught.value)


@pytest.mark.parametrize(
    ("name", "what"),
    [
        pytest.param(r'"evil\nfake/exp.9"', "the control or invisible character U+000A", id="nl"),
        pytest.param(r'"nul\0byte"', "a NUL byte", id="nul"),  # said "must not be empty"
        pytest.param(r'"tab\there"', "the control or invisible character U+0009", id="tab"),
        pytest.param(r'"cr\rx"', "the control or invisible character U+000D", id="cr"),
        pytest.param(r'"del\x7f"', "the control or invisible character U+007F", id="del"),
        pytest.param(r'"line\u2028sep"', "the control or invisible character U+2028", id="ls"),
        pytest.param(r'"bidi\u202eevil"', "the control or invisible character U+202E", id="bidi"),
    ],
)
def test_a_name_with_a_control_character_is_refused(tmp_path: Path, name: str, what: str) -> None:
    message = _refused(tmp_path, name)
    assert message.startswith(f"config.yml:4: key '__run__.__name__': must not contain {what}, got")


def test_an_output_dir_with_a_newline_is_refused(tmp_path: Path) -> None:
    message = _refused(tmp_path, "exp", output_dir=r'"out\nx"')
    assert message == (
        "config.yml:3: key '__run__.__output_dir__': must not contain the control or invisible "
        "character U+000A, got 'out\\nx'"
    )


@pytest.mark.parametrize("name", ["exp.0", "r/exp.0", "a/exp.12/b", "exp.007"])
def test_a_name_part_like_a_run_folder_is_refused(tmp_path: Path, name: str) -> None:
    assert _refused(tmp_path, name) == (
        "config.yml:4: key '__run__.__name__': must not have a part named like a run folder "
        f"(exp.N): runs would nest in runs, got '{name}'"
    )


@pytest.mark.parametrize("name", ["exp", "exp.", "exp.a", "exp.1x", "exp1", "my.exp.3", "Exp.3"])
def test_names_close_to_a_run_folder_are_accepted(tmp_path: Path, name: str) -> None:
    run = _run(tmp_path, f"  __main__: a:b\n  __output_dir__: o\n  __name__: '{name}'\n")
    assert run.name == name


def test_the_run_folder_pattern_agrees_with_the_run_folder_allocator() -> None:
    for part in ["exp.0", "exp.12", "exp.", "exp.a", "exp", "xexp.1", "exp.1x"]:
        made = bool(RUN_FOLDER_PATTERN.match(part))
        assert bool(RUN_FOLDER_PART.fullmatch(part)) == made, part


def test_name_parts_up_to_name_max_bytes(tmp_path: Path) -> None:
    (tmp_path / "o").mkdir()
    longest = "n" * 255
    assert _run(tmp_path, f"  __main__: a:b\n  __output_dir__: o\n  __name__: {longest}\n").name
    assert _refused(tmp_path, f"x/{'n' * 256}").startswith(
        "config.yml:4: key '__run__.__name__': a part of the path is 256 bytes, longer than the "
        "255 the file system allows, got 'nnnn"
    )
    # Bytes, not characters: 128 two-byte characters are 256 bytes.
    assert "is 256 bytes" in _refused(tmp_path, "é" * 128)


def test_the_limit_is_real_where_bash_meets_it(tmp_path: Path) -> None:
    """The peer: `mkdir` of a 256-byte name fails (ENAMETOOLONG), of 255 succeeds."""
    failed = subprocess.run(["mkdir", str(tmp_path / ("n" * 256))], capture_output=True, text=True)
    assert failed.returncode != 0
    assert "File name too long" in failed.stderr
    subprocess.run(["mkdir", str(tmp_path / ("n" * 255))], check=True)


def test_an_output_dir_part_over_name_max_is_refused(tmp_path: Path) -> None:
    message = _refused(tmp_path, "exp", output_dir="o/" + "d" * 300)
    assert message.startswith(
        "config.yml:3: key '__run__.__output_dir__': a part of the path is 300 bytes"
    )


def test_a_run_folder_path_without_room_under_path_max_is_refused(tmp_path: Path) -> None:
    deep_name = "/".join(["n" * 200] * 20)  # 4,019 bytes in parts that each fit
    message = _refused(tmp_path, deep_name)
    assert re.fullmatch(
        r"config\.yml:4: key '__run__\.__name__': OUTPUT_DIR/NAME is \d+ bytes, longer than the "
        r"3818 that leave room under PATH_MAX \(4096\) for exp\.N and the files of a run",
        message,
    ), message
    long_output = "/".join(["d" * 200] * 20)
    assert "key '__run__.__output_dir__': OUTPUT_DIR/NAME is" in _refused(
        tmp_path, "exp", output_dir=long_output
    )


def test_limits_come_from_the_nearest_existing_folder(tmp_path: Path) -> None:
    assert file_system_limits(tmp_path / "not" / "yet") == (
        os.pathconf(tmp_path, "PC_NAME_MAX"),
        os.pathconf(tmp_path, "PC_PATH_MAX"),
    )
