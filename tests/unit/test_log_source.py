"""outputs.log read as pieces, with outputs.index giving each piece's stream and time."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from expyrun.run.output_index import MAGIC, RECORD, STDERR, STDOUT
from expyrun.runs import log_source
from expyrun.runs.log_source import UNKNOWN_STREAM, IndexFollower, LogSource


def _write(run_dir: Path, log: bytes, records: list[tuple[int, float, int]]) -> None:
    (run_dir / "outputs.log").write_bytes(log)
    (run_dir / "outputs.index").write_bytes(MAGIC + b"".join(RECORD.pack(*r) for r in records))


def _source(run_dir: Path, stream: int | None) -> LogSource:
    return LogSource(run_dir / "outputs.log", stream, run_dir / "outputs.index")


def _read(source: LogSource, final: bool = True) -> list[tuple[bytes, float | None]]:
    return [(piece.data, piece.time) for piece in source.pieces(final=final)]


def test_pieces_follow_the_index_and_filter_one_stream(tmp_path: Path) -> None:
    _write(tmp_path, b"out1\nerr1\nout2\n", [(0, 1.0, STDOUT), (5, 2.0, STDERR), (10, 3.0, STDOUT)])
    assert _read(LogSource(tmp_path / "outputs.log", None, tmp_path / "outputs.index")) == [
        (b"out1\n", 1.0),
        (b"err1\n", 2.0),
        (b"out2\n", 3.0),
    ]
    assert _read(LogSource(tmp_path / "outputs.log", STDOUT, tmp_path / "outputs.index")) == [
        (b"out1\n", 1.0),
        (b"out2\n", 3.0),
    ]
    assert _read(LogSource(tmp_path / "outputs.log", STDERR, tmp_path / "outputs.index")) == [
        (b"err1\n", 2.0)
    ]


def test_bytes_before_the_first_record_have_no_time_and_any_stream(tmp_path: Path) -> None:
    _write(tmp_path, b"old\nnew\n", [(4, 5.0, STDERR)])
    assert _read(LogSource(tmp_path / "outputs.log", STDOUT, tmp_path / "outputs.index")) == [
        (b"old\n", None)
    ]
    assert _read(LogSource(tmp_path / "outputs.log", STDERR, tmp_path / "outputs.index")) == [
        (b"old\n", None),
        (b"new\n", 5.0),
    ]


def test_a_damaged_index_never_loses_bytes(tmp_path: Path) -> None:
    records = [(0, 1.0, STDOUT), (6, 2.0, STDERR), (3, 9.0, STDOUT)]  # the last goes backwards
    _write(tmp_path, b"aaaaaabbbbbb", records)
    with open(tmp_path / "outputs.index", "ab") as index:
        index.write(b"\x01\x02")  # a truncated record
    assert (
        b"".join(
            data
            for data, _ in _read(
                LogSource(tmp_path / "outputs.log", None, tmp_path / "outputs.index")
            )
        )
        == b"aaaaaabbbbbb"
    )
    (tmp_path / "outputs.index").write_bytes(b"NOTANINDEX" + struct.pack("<Q", 1))
    assert _read(LogSource(tmp_path / "outputs.log", None, tmp_path / "outputs.index")) == [
        (b"aaaaaabbbbbb", None)
    ]


def test_a_growing_log_waits_for_the_record_that_ends_a_stretch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [100.0]
    monkeypatch.setattr(log_source.time, "monotonic", lambda: clock[0])
    (tmp_path / "outputs.index").write_bytes(MAGIC)
    (tmp_path / "outputs.log").write_bytes(b"")
    source = LogSource(tmp_path / "outputs.log", None, tmp_path / "outputs.index")
    assert _read(source, final=False) == []
    _write(tmp_path, b"out\nerr", [(0, 1.0, STDOUT)])
    assert _read(source, final=False) == []  # the stretch may still be split
    _write(tmp_path, b"out\nerr", [(0, 1.0, STDOUT), (4, 2.0, STDERR)])
    assert _read(source, final=False) == [(b"out\n", 1.0)]
    clock[0] += log_source.HOLD_SECONDS
    assert _read(source, final=False) == [(b"err", 2.0)]  # no record came: shown after a while
    _write(tmp_path, b"out\nerr more\n", [(0, 1.0, STDOUT), (4, 2.0, STDERR)])
    assert _read(source, final=True) == [(b" more\n", 2.0)]


def test_the_follower_reads_a_big_index_in_batches(tmp_path: Path) -> None:
    count = 3 * log_source.BATCH_RECORDS + 5
    records = [(i, float(i), STDOUT if i % 2 else STDERR) for i in range(count)]
    _write(tmp_path, b"x" * count, records)
    chunks = list(IndexFollower(tmp_path / "outputs.index").chunks(0, count, final=True))
    assert [chunk.offset for chunk in chunks] == list(range(count))
    assert all(chunk.length == 1 for chunk in chunks)
    assert UNKNOWN_STREAM not in {chunk.stream for chunk in chunks}
