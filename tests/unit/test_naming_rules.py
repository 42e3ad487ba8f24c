"""Naming a run on the command line: a run folder, a name folder (its latest exp.N), `last`."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from expyrun.errors import RunFolderError
from expyrun.runs.naming import LAST, resolve_run


def _run(folder: Path, started_at: str | None = None, **fields: object) -> Path:
    folder.mkdir(parents=True)
    record = {"status": "succeeded", "started_at": started_at, **fields}
    (folder / "run.json").write_text(json.dumps(record))
    return folder


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    """outputs/sgd/{exp.0, exp.2, exp.10, exp.11 (no run.json yet)}, outputs/adam/exp.0."""
    out = tmp_path / "outputs"
    _run(out / "sgd" / "exp.0", "2026-01-01T10:00:00+00:00")
    _run(out / "sgd" / "exp.2", "2026-01-01T11:00:00+00:00")
    _run(out / "sgd" / "exp.10", "2026-01-01T09:00:00+00:00")  # the largest N, not the newest
    (out / "sgd" / "exp.11").mkdir()  # being made: no record yet
    _run(out / "adam" / "exp.0", "2026-01-02T08:00:00+00:00")
    return out


def test_a_run_folder_is_itself(outputs: Path) -> None:
    assert resolve_run("sgd/exp.2", cwd=outputs) == Path("sgd/exp.2")
    assert resolve_run(str(outputs / "sgd" / "exp.0")) == outputs / "sgd" / "exp.0"


def test_a_name_folder_is_its_latest_run_by_number(outputs: Path) -> None:
    assert resolve_run("sgd", cwd=outputs) == Path("sgd/exp.10")
    assert resolve_run("outputs/adam/", cwd=outputs.parent) == Path("outputs/adam/exp.0")


def test_last_is_the_newest_run_by_start_time(outputs: Path) -> None:
    assert resolve_run(LAST, cwd=outputs.parent) == outputs / "adam" / "exp.0"
    assert resolve_run(LAST, cwd=outputs / "sgd") == outputs / "sgd" / "exp.2"


def test_last_skips_dot_folders_and_falls_back_on_the_record_time(tmp_path: Path) -> None:
    _run(tmp_path / ".trash" / "x" / "exp.0", "2030-01-01T00:00:00+00:00")
    old = _run(tmp_path / "a" / "exp.0", "2026-01-01T00:00:00+00:00")
    prepared = _run(tmp_path / "b" / "exp.0", None, status="prepared")
    os.utime(prepared / "run.json", (2e9, 2e9))  # 2033: written after `old` started
    assert resolve_run(LAST, cwd=tmp_path) == prepared
    os.utime(prepared / "run.json", (1e9, 1e9))  # 2001
    assert resolve_run(LAST, cwd=tmp_path) == old


def test_a_path_named_last_is_a_path(outputs: Path) -> None:
    _run(outputs / "last" / "exp.0", "2020-01-01T00:00:00+00:00")
    assert resolve_run(LAST, cwd=outputs) == Path("last/exp.0")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("sgdd", r"^sgdd: no such run .* \(did you mean sgd\?\)$", id="missing"),
        pytest.param(".", r"^\.: ambiguous: it holds the runs of 2 names \(adam, sgd\)", id="two"),
    ],
)
def test_bad_names(outputs: Path, text: str, message: str) -> None:
    with pytest.raises(RunFolderError, match=message):
        resolve_run(text, cwd=outputs)


def test_a_run_folder_without_record_is_left_to_open_run(outputs: Path) -> None:
    assert resolve_run("sgd/exp.11", cwd=outputs) == Path("sgd/exp.11")


def test_a_folder_with_one_name_below_hints_at_it(tmp_path: Path) -> None:
    _run(tmp_path / "out" / "group" / "a" / "exp.0")
    with pytest.raises(RunFolderError, match=r"not a name folder: .*did you mean out/group/a\?"):
        resolve_run("out", cwd=tmp_path)


def test_last_without_runs_says_where_it_looked(tmp_path: Path) -> None:
    expected = f"last: no run folder under the current folder ({tmp_path})"
    with pytest.raises(RunFolderError, match=re.escape(expected)):
        resolve_run(LAST, cwd=tmp_path)
