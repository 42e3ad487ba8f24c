"""Read outputs.log and outputs.index incrementally, as `expyrun logs` shows them: in bounded
blocks and batches, and again as the run appends to them (`logs -f`).

`run/output_index.py` owns the format; `read_index` there reads a finished index at once. This
reader keeps its place in the file, holds only the records it has not turned into chunks yet,
and says when the stretch after the last record may still be split by a record not written yet.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from expyrun.run.output_index import FLUSH_SECONDS, MAGIC, MERGED, RECORD, Chunk

# A chunk's stream when no record covers it (bytes before the first record, or a damaged index).
UNKNOWN_STREAM = -1
# The log is read in blocks of this size: memory stays bounded whatever the log's size.
BLOCK_BYTES = 1 << 20
# Records read per batch: memory stays bounded whatever the size of the index.
BATCH_RECORDS = 4096
# Bytes after the last record wait this long for a record that would split them (the writer
# writes its records at most FLUSH_SECONDS late), then count as the last record's stream.
HOLD_SECONDS = 2.5 * FLUSH_SECONDS


class IndexFollower:
    """The chunks of a growing outputs.log, from a growing outputs.index beside it."""

    def __init__(self, path: Path) -> None:
        """Read `path` (an index) from its start; a missing or foreign file gives no records."""
        self._path = path
        self._position = len(MAGIC)  # where the next record starts in the index file
        self._valid: bool | None = None  # None: the magic was not read yet
        self._queue: collections.deque[tuple[int, float, int]] = collections.deque()
        self._last_offset = -1  # the offset of the newest record read (they only grow)
        self._started = False  # the first record was seen (the gap before it was given)
        self._held_size = 0  # bytes up to here were seen after the last record at _held_at
        self._held_at = 0.0
        self._released = 0  # bytes after the last record shown without waiting for the end

    def chunks(self, start: int, size: int, final: bool) -> Iterator[Chunk]:
        """Chunks covering the log's bytes from `start` up to `size`, in log order.

        Stops at a stretch whose end is not known yet, unless `final` (the run ended: the last
        record's stretch goes to `size`) or the stretch waited HOLD_SECONDS. A chunk may start
        before `start` (the caller skips what it had); bytes before the first record come as
        one chunk of stream UNKNOWN_STREAM.
        """
        while True:
            loaded = self._load()
            while len(self._queue) >= 2:
                (offset, when, stream), following = self._queue[0], self._queue[1][0]
                end = min(following, size)
                if end > offset and end > start:
                    yield Chunk(offset, end - offset, when, stream)
                if following > size:
                    return  # the log has not caught up with its index yet
                self._queue.popleft()
            if not loaded:
                break
        if not self._queue:
            if final and size > start:
                yield Chunk(start, size - start, 0.0, UNKNOWN_STREAM)
            return
        offset, when, stream = self._queue[0]
        end = size if final else self._settled(size)
        if end > offset and end > start:
            yield Chunk(offset, end - offset, when, stream)

    def _settled(self, size: int) -> int:
        """How far the bytes after the last record can be shown now (see HOLD_SECONDS): up to
        the size seen HOLD_SECONDS ago or more."""
        now = time.monotonic()
        if now - self._held_at >= HOLD_SECONDS:
            self._released = max(self._released, self._held_size)
            self._held_size, self._held_at = size, now
        return self._released

    def _load(self) -> bool:
        """Append up to BATCH_RECORDS new records to the queue; False when none came."""
        try:
            with open(self._path, "rb") as file:
                if self._valid is None:
                    head = file.read(len(MAGIC))
                    if len(head) < len(MAGIC):
                        return False  # not written yet
                    self._valid = head == MAGIC
                if not self._valid:
                    return False
                file.seek(self._position)
                block = file.read(RECORD.size * BATCH_RECORDS)
        except OSError:
            return False
        usable = len(block) - len(block) % RECORD.size
        self._position += usable
        for offset, when, stream in RECORD.iter_unpack(block[:usable]):
            if offset < self._last_offset:
                continue  # a damaged record: its offset goes backwards
            if not self._started:
                self._started = True
                if offset > 0:
                    self._queue.append((0, 0.0, UNKNOWN_STREAM))
            if self._queue and self._queue[-1][0] == offset:
                self._queue.pop()  # an empty stretch: the newer record wins
            self._queue.append((offset, when, stream))
            self._last_offset = offset
        return usable > 0


@dataclass(frozen=True)
class Piece:
    """Bytes of the log, and when they were written (None: unknown)."""

    data: bytes
    time: float | None


class LogSource:
    """outputs.log read in order from where it was left, as pieces of one stream or all.

    With an index, a stretch is shown once the index says where it ends (the writer adds a
    record at each stream change), or when `final` (the run ended): the bytes after the last
    record wait for the next record or the end. Bytes before the first record (an older
    expyrun, the first attempt) count as any stream and have no time.
    """

    def __init__(self, log: Path, stream: int | None, index: Path | None) -> None:
        """`log`: outputs.log (or a task's log); `index`: its index, None to read without."""
        self._log = log
        self._stream = stream
        self._index = IndexFollower(index) if index is not None else None
        self._offset = 0

    def skip(self, count: int) -> None:
        """Start after the first `count` bytes of the log (copied by other means)."""
        self._offset = max(self._offset, count)

    def pieces(self, final: bool) -> Iterator[Piece]:
        """The pieces of the log past what was returned before (all of it when `final`)."""
        try:
            file = open(self._log, "rb")  # noqa: SIM115 - closed below, also by a generator exit
        except FileNotFoundError:
            return
        with file:
            size = os.fstat(file.fileno()).st_size
            chunks: Iterable[Chunk]
            if self._index is None:
                chunks = [Chunk(self._offset, size - self._offset, 0.0, MERGED)]
                times = False
            else:
                chunks = self._index.chunks(self._offset, size, final)
                times = True
            for chunk in chunks:
                yield from self._read(file, chunk, times)

    def _read(self, file: BinaryIO, chunk: Chunk, times: bool) -> Iterator[Piece]:
        start, end = max(chunk.offset, self._offset), chunk.offset + chunk.length
        if self._stream is not None and chunk.stream not in (self._stream, MERGED, UNKNOWN_STREAM):
            self._offset = max(self._offset, end)
            return
        when = chunk.time if times and chunk.stream != UNKNOWN_STREAM else None
        file.seek(start)
        while start < end:
            data = file.read(min(BLOCK_BYTES, end - start))
            if not data:
                return
            self._offset = start = start + len(data)
            yield Piece(data, when)
