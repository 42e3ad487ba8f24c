"""rm/clean's pure parts: ages, statuses, where a run folder's trash is."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from expyrun.errors import UsageError
from expyrun.runs.clean import parse_age, parse_statuses
from expyrun.runs.fields import ListedRun
from expyrun.runs.trash import folder_bytes, output_dir_of


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("12h", 43200), ("7d", 604800), ("1.5w", 907200)]
)
def test_ages(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["7", "7 days", "d", "-1d", "7y"])
def test_bad_ages(text: str) -> None:
    with pytest.raises(UsageError, match="--older-than: expected a number and a unit"):
        parse_age(text)


def test_statuses_are_comma_lists_and_checked() -> None:
    assert parse_statuses(["failed,killed", "lost", " unreadable "]) == {
        "failed",
        "killed",
        "lost",
        "unreadable",
    }
    with pytest.raises(UsageError, match="unknown status 'faild'"):
        parse_statuses(["faild"])


@pytest.mark.parametrize(
    ("path", "data", "expected"),
    [
        pytest.param("/o/a/b/exp.0", {"name": "a/b"}, "/o", id="nested-name"),
        pytest.param("/o/DEBUG/a/exp.0", {"name": "a", "debug": True}, "/o", id="debug"),
        pytest.param("/o/DEBUG/exp.1", {"name": "DEBUG"}, "/o", id="a-name-called-DEBUG"),
        pytest.param("/moved/x/exp.0", {"name": "a"}, "/moved/x", id="moved"),
        pytest.param("/o/a/exp.0", {}, "/o/a", id="unreadable"),
    ],
)
def test_output_dir_of(path: str, data: dict[str, object], expected: str) -> None:
    assert output_dir_of(ListedRun(path, data, "succeeded")) == Path(expected)


def test_folder_bytes_counts_hard_links_once(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 100_000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").hardlink_to(tmp_path / "a")
    (tmp_path / "link").symlink_to("/usr")
    single = folder_bytes(str(tmp_path))
    (tmp_path / "sub" / "b").unlink()
    assert folder_bytes(str(tmp_path)) == single
    assert single >= 100_000


def test_a_trash_entry_of_a_live_rm_is_left_to_it() -> None:
    from expyrun.runs.trash import _deleting

    assert _deleting(f"1-{os.getppid()}-exp.0")  # a live process: it is deleting the entry
    assert not _deleting(f"1-{os.getpid()}-exp.0")  # this process: its own leftover
    assert not _deleting("1-999999999-exp.0")  # no such process
    assert not _deleting("garbage")


def test_a_folder_that_fails_while_listed_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder whose listing fails midway (/proc/PID/net of a process that just ended:
    EINVAL) is skipped like one that cannot be opened; `expyrun rm /` died with exit 70."""
    from expyrun.runs import reading

    run = tmp_path / "out" / "a" / "exp.0"
    run.mkdir(parents=True)
    (run / "run.json").write_text("{}")
    (tmp_path / "gone").mkdir()
    real_scandir = os.scandir

    class Failing:
        def __init__(self, inner: Iterator[os.DirEntry[str]]) -> None:
            self.inner = inner

        def __enter__(self) -> Failing:
            return self

        def __exit__(self, *exc: object) -> None:
            self.close()

        def close(self) -> None:
            self.inner.close()  # type: ignore[attr-defined]

        def __iter__(self) -> Failing:
            return self

        def __next__(self) -> os.DirEntry[str]:
            raise OSError(22, "Invalid argument")

    def scandir(path: str) -> object:
        inner = real_scandir(path)
        return Failing(inner) if os.path.basename(path) == "gone" else inner

    monkeypatch.setattr(os, "scandir", scandir)
    assert list(reading.find_run_folders(str(tmp_path))) == [str(run)]


def _record(run_dir: Path, recorded: Path | str | None = None) -> Path:
    run_dir.mkdir(parents=True)
    data = {} if recorded is None else {"run_dir": str(recorded), "status": 5}
    (run_dir / "run.json").write_text(json.dumps(data))
    return run_dir


def test_run_folders_behind_links_are_found_only_when_made_through_the_link(
    tmp_path: Path,
) -> None:
    """The walk follows no link below the root, except a name folder whose runs record the
    path through it (made there: a name folder linked to another disk)."""
    from expyrun.runs.reading import find_run_folders

    out, disk, other = tmp_path / "out", tmp_path / "disk", tmp_path / "other"
    real = _record(out / "a" / "exp.0", out / "a" / "exp.0")
    _record(disk / "big" / "exp.0", out / "big" / "exp.0")  # made through out/big
    _record(disk / "big" / "exp.1")  # no run_dir: nothing says it was made here
    _record(other / "a" / "exp.3", other / "a" / "exp.3")  # another project's run
    _record(other / "big" / "exp.4", tmp_path / "elsewhere" / "big" / "exp.4")  # same link name
    (out / "big").symlink_to(disk / "big")
    (out / "theirs").symlink_to(other / "a")
    (out / "their-outputs").symlink_to(other)
    (out / "a" / "exp.7").symlink_to(real)  # a link to a run folder is not a run
    (out / "a" / "up").symlink_to("..")
    (out / "a" / "here").symlink_to(".")
    (out / "root").symlink_to("/")
    (out / "broken").symlink_to(tmp_path / "missing")
    (out / "file").symlink_to(out / "a" / "exp.0" / "run.json")
    (out / "other-big").symlink_to(other / "big")
    found = sorted(find_run_folders(str(out)))
    assert found == [str(out / "a" / "exp.0"), str(out / "big" / "exp.0")]
    # A root that is itself a link is followed.
    assert sorted(find_run_folders(str(out / "their-outputs"))) == [
        str(out / "their-outputs" / "a" / "exp.3"),
        str(out / "their-outputs" / "big" / "exp.4"),
    ]
