"""outputs.index: records written by IndexWriter read back as chunks covering the log."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from expyrun.run import output_index
from expyrun.run.output_index import (
    INDEX_FILE,
    MAGIC,
    STDERR,
    STDOUT,
    Chunk,
    IndexWriter,
    read_index,
)


def _log(run_dir: Path, size: int) -> None:
    (run_dir / "outputs.log").write_bytes(b"x" * size)


def test_no_index_yields_nothing(tmp_path: Path) -> None:
    _log(tmp_path, 10)
    assert list(read_index(tmp_path)) == []


def test_foreign_file_yields_nothing(tmp_path: Path) -> None:
    _log(tmp_path, 10)
    (tmp_path / INDEX_FILE).write_bytes(b"not an index at all")
    assert list(read_index(tmp_path)) == []


def test_stream_switches_make_chunks_that_cover_the_log(tmp_path: Path) -> None:
    writer = IndexWriter(tmp_path / INDEX_FILE)
    writer.moved(0, STDOUT)
    writer.moved(5, STDERR)
    writer.moved(9, STDOUT)
    writer.close()
    _log(tmp_path, 12)
    chunks = list(read_index(tmp_path))
    assert [(c.offset, c.length, c.stream) for c in chunks] == [
        (0, 5, STDOUT),
        (5, 4, STDERR),
        (9, 3, STDOUT),
    ]
    assert chunks[0].time <= chunks[1].time <= chunks[2].time


def test_one_stream_within_the_coalescing_time_is_one_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [100.0]
    monkeypatch.setattr(output_index.time, "monotonic", lambda: clock[0])
    writer = IndexWriter(tmp_path / INDEX_FILE)
    for offset in range(0, 100, 10):
        writer.moved(offset, STDOUT)
    clock[0] += output_index.COALESCE_SECONDS
    writer.moved(100, STDOUT)
    writer.close()
    _log(tmp_path, 110)
    assert [(c.offset, c.length) for c in read_index(tmp_path)] == [(0, 100), (100, 10)]


def test_a_second_writer_appends_after_the_first(tmp_path: Path) -> None:
    for start in (0, 7):
        writer = IndexWriter(tmp_path / INDEX_FILE)
        writer.moved(start, STDOUT)
        writer.close()
    data = (tmp_path / INDEX_FILE).read_bytes()
    assert data.startswith(MAGIC)
    assert data.count(MAGIC) == 1
    _log(tmp_path, 9)
    assert [(c.offset, c.length) for c in read_index(tmp_path)] == [(0, 7), (7, 2)]


def test_truncated_and_backward_records_are_ignored(tmp_path: Path) -> None:
    record = output_index.RECORD
    data = MAGIC + record.pack(0, 1.0, 1) + record.pack(8, 2.0, 2) + record.pack(4, 3.0, 1)
    (tmp_path / INDEX_FILE).write_bytes(data + struct.pack("<Q", 20)[:5])
    _log(tmp_path, 10)
    assert list(read_index(tmp_path)) == [Chunk(0, 8, 1.0, 1), Chunk(8, 2, 2.0, 2)]


def test_a_failed_write_abandons_the_index_without_raising(tmp_path: Path) -> None:
    writer = IndexWriter(tmp_path / INDEX_FILE)
    writer.moved(0, STDOUT)
    writer.close()
    writer.failed = False
    writer._fd = 987654  # a closed descriptor: the write fails
    writer.moved(3, STDERR)
    writer.flush()
    assert writer.failed


def test_pending_records_are_flushed_once_due(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The poll loop calls flush_due_in: records wait at most FLUSH_SECONDS, then are written."""
    clock = [100.0]
    monkeypatch.setattr(output_index.time, "monotonic", lambda: clock[0])
    path = tmp_path / INDEX_FILE
    writer = IndexWriter(path)
    assert writer.flush_due_in() == pytest.approx(output_index.FLUSH_SECONDS)  # the magic
    writer.moved(0, STDOUT)
    clock[0] += output_index.FLUSH_SECONDS / 2
    assert writer.flush_due_in() == pytest.approx(output_index.FLUSH_SECONDS / 2)
    assert path.stat().st_size == 0
    clock[0] += output_index.FLUSH_SECONDS
    assert writer.flush_due_in() is None
    assert path.stat().st_size == len(MAGIC) + output_index.RECORD.size
    assert writer.flush_due_in() is None  # nothing waits
    writer.close()
