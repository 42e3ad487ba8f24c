"""Record edits (tags, notes, stop requests) and the supervisor's writes never lose each other's
fields; tag names; which exits answer a stop request (issue 14)."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import pytest

from expyrun.errors import UsageError
from expyrun.run import record, record_file
from expyrun.run.record import RunRecord
from expyrun.run.record_check import check_tag, check_tags
from expyrun.run.stopping import stop_answered

RUNNING = RunRecord(
    status="running",
    run_dir="/runs/a/exp.0",
    name="a",
    entry="pkg.main:main",
    debug=False,
    command=["expyrun", "c.yml"],
    cwd="/home/ada/project",
    host="node01",
    user="ada",
    python={"executable": "/usr/bin/python3", "version": "3.11.2"},
    expyrun_version="0.0.0",
    started_at="2026-01-01T10:00:00.000+00:00",
    tags=("launched",),
)


def _add(tag: str):
    return lambda current: current.replace(tags=(*current.tags, tag))


def test_a_supervisor_write_keeps_the_tags_and_note_edited_meanwhile(tmp_path: Path) -> None:
    record.write_record(tmp_path, RUNNING)
    record.update_record(tmp_path, _add("edited"))
    record.update_record(tmp_path, lambda r: r.replace(note="a note"))
    final = RUNNING.replace(status="succeeded", exit_code=0)  # built from what it held
    record.write_record(tmp_path, final)
    on_disk = record.read_record(tmp_path)
    assert (on_disk.status, on_disk.exit_code) == ("succeeded", 0)
    assert (on_disk.tags, on_disk.note) == (("launched", "edited"), "a note")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]  # no lock file left


def test_a_stop_request_is_kept_within_its_attempt_only(tmp_path: Path) -> None:
    asked = {"signal": "SIGTERM", "by": "expyrun stop", "at": "2026-01-01T10:01:00+00:00"}
    record.write_record(tmp_path, RUNNING)
    record.update_record(tmp_path, lambda r: r.replace(stop_request=asked))
    record.write_record(tmp_path, RUNNING.replace(status="succeeded"))
    assert record.read_record(tmp_path).stop_request == asked
    # A new attempt (a requeued job) starts with no stop request.
    record.write_record(tmp_path, RUNNING.replace(started_at="2026-01-01T11:00:00.000+00:00"))
    assert record.read_record(tmp_path).stop_request is None


def test_concurrent_edits_and_supervisor_writes_lose_nothing(tmp_path: Path) -> None:
    """A supervisor rewriting its record (from a stale copy) while tags are added, on threads:
    every tag and the supervisor's last value are in the final record."""
    record.write_record(tmp_path, RUNNING)
    tags = [f"t{i}" for i in range(60)]
    errors: list[BaseException] = []

    def supervisor() -> None:
        try:
            for i in range(150):
                record.write_record(tmp_path, RUNNING.replace(output_bytes=i))
        except BaseException as exc:
            errors.append(exc)

    def editor() -> None:
        try:
            for tag in tags:
                record.update_record(tmp_path, _add(tag))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=supervisor), threading.Thread(target=editor)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    final = record.read_record(tmp_path)
    assert final.tags == ("launched", *tags)
    assert final.output_bytes == 149


def _edit_in_a_process(run_dir: Path, prefix: str, count: int) -> None:
    for i in range(count):
        record.update_record(run_dir, _add(f"{prefix}{i}"))


def _supervise_in_a_process(run_dir: Path, count: int) -> None:
    for i in range(count):
        record.write_record(run_dir, RUNNING.replace(output_bytes=i))
    record.write_record(run_dir, RUNNING.replace(status="succeeded", output_bytes=count))


def test_edits_and_supervisor_writes_in_processes_lose_nothing(tmp_path: Path) -> None:
    """The same in separate processes (a supervisor, `expyrun tag` twice), the run ending as
    they edit: flock(2) on run.json, which each write replaces, serialises them all."""
    import multiprocessing

    record.write_record(tmp_path, RUNNING.replace(status="prepared"))
    context = multiprocessing.get_context("fork")
    processes = [
        context.Process(target=_supervise_in_a_process, args=(tmp_path, 200)),
        context.Process(target=_edit_in_a_process, args=(tmp_path, "a", 50)),
        context.Process(target=_edit_in_a_process, args=(tmp_path, "b", 50)),
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [process.exitcode for process in processes] == [0, 0, 0]
    final = record.read_record(tmp_path)
    assert (final.status, final.output_bytes) == ("succeeded", 200)
    assert set(final.tags) == {"launched", *(f"{p}{i}" for p in "ab" for i in range(50))}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_a_writer_whose_record_was_replaced_before_it_locked_it_locks_the_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock is run.json's own: another writer may replace run.json between this writer's
    open and its flock (and let go). The lock then held is a stale file's: the writer must
    take the new run.json's, or its write would drop the other writer's edit."""
    record.write_record(tmp_path, RUNNING)
    real_flock = record_file.fcntl.flock
    calls = []

    def flock_after_another_write(fd: int, operation: int) -> None:
        if not calls:  # the other writer's whole edit, right before this writer's first flock
            calls.append(fd)
            monkeypatch.setattr(record_file.fcntl, "flock", real_flock)
            record.update_record(tmp_path, _add("other"))
            monkeypatch.setattr(record_file.fcntl, "flock", flock_after_another_write)
        real_flock(fd, operation)

    monkeypatch.setattr(record_file.fcntl, "flock", flock_after_another_write)
    record.update_record(tmp_path, _add("mine"))
    assert record.read_record(tmp_path).tags == ("launched", "other", "mine")
    record.write_record(tmp_path, RUNNING.replace(status="succeeded"))  # the supervisor's
    assert record.read_record(tmp_path).tags == ("launched", "other", "mine")


def test_a_write_without_the_lock_keeps_the_edits_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A supervisor that cannot have the lock (an edit stopped mid-way holds it) writes after
    LOCK_TIMEOUT_SECONDS all the same: the tags, note and stop request already on disk are
    kept, as they were when the lock was a file of its own (they were dropped: no lock, no
    read of the record)."""
    asked = {"signal": "SIGTERM", "by": "expyrun stop", "at": "2026-01-01T10:01:00+00:00"}
    record.write_record(tmp_path, RUNNING)
    record.update_record(tmp_path, lambda r: r.replace(tags=(*r.tags, "edited"), note="a note"))
    record.update_record(tmp_path, lambda r: r.replace(stop_request=asked))
    monkeypatch.setattr(record_file, "LOCK_TIMEOUT_SECONDS", 0.05)
    held = os.open(tmp_path / "run.json", os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)  # another open file: it conflicts, in one process too
        record.write_record(tmp_path, RUNNING.replace(status="stopped", exit_code=0))
    finally:
        os.close(held)
    on_disk = record.read_record(tmp_path)
    assert (on_disk.status, on_disk.tags, on_disk.note) == (
        "stopped",
        ("launched", "edited"),
        "a note",
    )
    assert on_disk.stop_request == asked


def test_a_read_only_record_can_still_be_edited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """flock on a local file needs no write access: a record made read-only (chmod a-w) is
    locked through a read-only fd, and replaced by a rename as ever. (Opening it for writing
    is refused as it is to a user; root may open it all the same.)"""
    record.write_record(tmp_path, RUNNING)
    real_open = record_file.os.open

    def refused_for_writing(path: object, flags: int, *args: int) -> int:
        if str(path).endswith("run.json") and flags & os.O_RDWR:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(record_file.os, "open", refused_for_writing)
    record.update_record(tmp_path, _add("edited"))
    assert record.read_record(tmp_path).tags == ("launched", "edited")


@pytest.mark.parametrize(
    ("statuses", "reserved"),
    [
        pytest.param(("prepared",), True, id="prepared"),
        pytest.param(("prepared", "running"), True, id="running"),
        pytest.param(("prepared", "pending"), True, id="pending-job"),
        pytest.param(("prepared", "running", "succeeded"), False, id="ended"),
        pytest.param(("prepared", "running", "failed", "running"), True, id="requeued"),
    ],
)
def test_the_reserve_is_there_from_the_run_start_to_its_end(
    tmp_path: Path, statuses: tuple[str, ...], reserved: bool
) -> None:
    """The reserve a full disk needs for the run's records is made by the first record, as
    `prepared` (the entry may fill the disk before `running` is written: test_faults.py), and
    goes with the one that ends it."""
    for status in statuses:
        record.write_record(tmp_path, RUNNING.replace(status=status))
    assert (tmp_path / record_file.RESERVE_FILE).exists() is reserved


def test_the_record_that_ends_a_run_is_written_into_its_reserve(tmp_path: Path) -> None:
    """The reserve becomes run.json: no file is made for the last record, and none deleted
    (each deleted inode slows the next ones made near it, on ext4 without a journal)."""
    record.write_record(tmp_path, RUNNING)
    reserve = (tmp_path / record_file.RESERVE_FILE).stat().st_ino
    record.write_record(tmp_path, RUNNING.replace(status="succeeded", exit_code=0))
    assert (tmp_path / "run.json").stat().st_ino == reserve
    assert record.read_record(tmp_path).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_an_edit_of_a_missing_record_is_a_record_error(tmp_path: Path) -> None:
    with pytest.raises(record.RecordError, match="cannot edit the record"):
        record.update_record(tmp_path, _add("x"))


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        pytest.param("baseline", True, id="word"),
        pytest.param("lr.0-1_b", True, id="dots-dashes"),
        pytest.param("_x", True, id="underscore-first"),
        pytest.param("9", True, id="digit"),
        pytest.param("a" * 64, True, id="64-chars"),
        pytest.param("a" * 65, False, id="65-chars"),
        pytest.param("", False, id="empty"),
        pytest.param("-a", False, id="dash-first"),
        pytest.param(".a", False, id="dot-first"),
        pytest.param("a b", False, id="space"),
        pytest.param("a,b", False, id="comma"),
        pytest.param("a=b", False, id="equals"),
        pytest.param("é", False, id="non-ascii"),
    ],
)
def test_tag_names(name: str, valid: bool) -> None:
    if valid:
        assert check_tag(name) == name
    else:
        with pytest.raises(UsageError, match="invalid tag name"):
            check_tag(name)


def test_tags_are_kept_once_in_their_first_order() -> None:
    assert check_tags(["b", "a", "b"]) == ("b", "a")


@pytest.mark.parametrize(
    ("request_", "exited_at", "answered"),
    [
        pytest.param(None, 5.0, False, id="no-request"),
        pytest.param((15, 0.0, 1.0), 100.0, True, id="sigterm-any-time"),
        pytest.param((2, 0.0, 1.0), 3.0, True, id="sigint"),
        pytest.param((1, 0.0, 1.0), 10.9, True, id="sighup-within-grace"),
        pytest.param((1, 0.0, 1.0), 11.1, False, id="sighup-outlived"),
    ],
)
def test_which_exits_answer_a_stop_request(request_, exited_at: float, answered: bool) -> None:
    assert stop_answered(request_, exited_at, grace_seconds=10.0) is answered
