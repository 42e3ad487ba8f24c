"""Relative paths of the launch directory that the run folder lacks (issue 17)."""

from __future__ import annotations

from pathlib import Path

import pytest
from config_support import resolve_text

from expyrun.config import relative_path_warnings
from expyrun.errors import ConfigError

HINT = "use $EXPYRUN_CWD/{value} or an absolute path; or list {key} in __run__.__no_path_warning__"


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """A launch directory holding data/train.csv and pkg/m.py; a run folder holding pkg/m.py."""
    launch, run_dir = tmp_path, tmp_path / "out" / "exp.0"
    (launch / "data").mkdir()
    (launch / "data" / "train.csv").write_text("x\n")
    for root in (launch, run_dir):
        (root / "pkg").mkdir(parents=True)
        (root / "pkg" / "m.py").write_text("")
    return launch, run_dir


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("data: data/train.csv", [("data", "data/train.csv", 5)], id="file"),
        pytest.param("d: data", [("d", "data", 5)], id="folder"),
        pytest.param("d: ./data/", [("d", "./data/", 5)], id="dot-slash"),
        pytest.param("l: [x, data/train.csv]", [("l.1", "data/train.csv", 5)], id="list-item"),
        pytest.param("m: {a: {b: data}}", [("m.a.b", "data", 5)], id="nested"),
        pytest.param(
            "a: data\nb: data/train.csv", [("a", "data", 5), ("b", "data/train.csv", 6)], id="two"
        ),
        pytest.param(
            'd: "{p}/train.csv"\np: data',
            [("d", "data/train.csv", 5), ("p", "data", 6)],
            id="resolved-value",
        ),
        pytest.param("code: pkg/m.py", [], id="in-the-code-copy-too"),
        pytest.param("d: nothere.csv", [], id="missing-everywhere"),
        pytest.param("d: $EXPYRUN_CWD/data", [], id="absolute-via-the-variable"),
        pytest.param("d: ~/data", [], id="home"),
        pytest.param("d: file://data", [], id="url"),
        pytest.param("d: 5", [], id="not-a-string"),
        pytest.param("d: ''", [], id="empty"),
        pytest.param("d: '" + "n" * 300 + "'", [], id="name-too-long"),
    ],
)
def test_relative_paths_of_the_launch_directory_warn(
    dirs: tuple[Path, Path], text: str, expected: list[tuple[str, str, int]]
) -> None:
    launch, run_dir = dirs
    resolved = resolve_text(launch, text + "\n", environ={"EXPYRUN_CWD": "ignored"})
    warnings = relative_path_warnings(resolved, launch, run_dir)
    assert [str(w) for w in warnings] == [
        f"config.yml:{line}: key '{key}': '{value}' is a path from the launch directory, but "
        "the entry point runs in the run folder, where it does not exist "
        f"({HINT.format(value=value, key=key)})"
        for key, value, line in expected
    ]


def test_run_section_paths_are_not_checked(dirs: tuple[Path, Path]) -> None:
    launch, run_dir = dirs
    text = "__run__:\n  __main__: pkg.m:main\n  __output_dir__: data\n  __name__: exp\n"
    resolved = resolve_text(launch, text + "k: 1\n", run=False)
    assert relative_path_warnings(resolved, launch, run_dir) == []


@pytest.mark.parametrize(
    ("quiet", "remaining"),
    [
        pytest.param("[data]", ["l.0", "m.a\\.b"], id="one-key"),
        pytest.param("[data, l]", ["m.a\\.b"], id="a-list-silences-its-items"),
        pytest.param("[l.0]", ["data", "m.a\\.b"], id="an-item"),
        pytest.param("[m]", ["data", "l.0"], id="a-mapping-silences-its-keys"),
        pytest.param("['m.a\\.b']", ["data", "l.0"], id="a-key-with-a-dot"),
        pytest.param("[]", ["data", "l.0", "m.a\\.b"], id="empty"),
    ],
)
def test_no_path_warning_silences_keys(
    dirs: tuple[Path, Path], quiet: str, remaining: list[str]
) -> None:
    launch, run_dir = dirs
    text = (
        "__run__:\n  __main__: pkg.m:main\n  __output_dir__: out\n  __name__: exp\n"
        f"  __no_path_warning__: {quiet}\n"
        "data: data/train.csv\nl: [data]\nm: {a\\.b: data}\n"
    )
    resolved = resolve_text(launch, text, run=False)
    warnings = relative_path_warnings(resolved, launch, run_dir)
    assert [w.key for w in warnings] == remaining


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(
            "data",
            "config.yml:5: key '__run__.__no_path_warning__': expected a list of keys, got a "
            "string",
            id="not-a-list",
        ),
        pytest.param(
            "[1]",
            "config.yml:5: key '__run__.__no_path_warning__.0': expected a key like data.train, "
            "got 1",
            id="not-a-key",
        ),
        pytest.param(
            "['a..b']",
            "config.yml:5: key '__run__.__no_path_warning__.0': expected a key like data.train, "
            "got 'a..b'",
            id="malformed-key",
        ),
    ],
)
def test_no_path_warning_is_a_list_of_keys(tmp_path: Path, value: str, message: str) -> None:
    text = (
        "__run__:\n  __main__: pkg.m:main\n  __output_dir__: out\n  __name__: exp\n"
        f"  __no_path_warning__: {value}\n"
    )
    with pytest.raises(ConfigError) as caught:
        resolve_text(tmp_path, text, run=False)
    assert str(caught.value) == message
