"""The `__run__` section: RunSpec fields, name rules, paths, Slurm options."""

from __future__ import annotations

from pathlib import Path

import pytest
from config_support import resolve_text

from expyrun.config import RunSpec


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
