"""Where `expyrun logs` puts rendered lines or raw bytes: --head, --tail, a live area."""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import BinaryIO


class LogSink:
    """Where the rendered lines (or raw bytes) go: --head, --tail, and a live area on a terminal.

    `--tail N` keeps the last N lines (memory: N lines); `--head N` stops after N (`done`).
    `live`: the lines not yet final are drawn below the final ones and redrawn in place.
    """

    def __init__(self, out: BinaryIO, head: int | None, tail: int | None, live: bool) -> None:
        self._out = out
        self._head = head
        self._tail: collections.deque[str] | None = (
            collections.deque(maxlen=tail) if tail is not None else None
        )
        self._live = live
        self._drawn = 0  # lines of the live area on the screen
        self._shown: list[str] | None = None  # what the live area shows
        self._ends_line = True  # the last byte written was a newline (or nothing was)
        self.done = head == 0

    def lines(self, lines: list[str]) -> None:
        """Show these final lines (or keep them, for --tail)."""
        if not lines or self.done:
            return
        if self._head is not None:
            lines = lines[: self._head]
            self._head -= len(lines)
            self.done = self._head == 0
        if self._tail is not None:
            self._tail.extend(lines)
            return
        self._erase_live()
        self._write(("\n".join(lines) + "\n").encode())

    def raw(self, data: bytes) -> None:
        """Pass bytes through unchanged."""
        if data:
            self._write(data)

    def copy_file(self, path: Path) -> int:
        """Copy the file at `path` with sendfile(2) where the kernel takes it (a pipe, a file:
        no copy through Python); the bytes copied (the caller copies the rest, if any)."""
        self._out.flush()
        offset = 0
        try:
            with open(path, "rb") as file:
                size = os.fstat(file.fileno()).st_size
                while offset < size:
                    sent = os.sendfile(self._out.fileno(), file.fileno(), offset, size - offset)
                    if sent == 0:
                        break
                    offset += sent
                    self._ends_line = os.pread(file.fileno(), 1, offset - 1) == b"\n"
        except BrokenPipeError:
            raise
        except OSError:
            pass  # no sendfile to this output (or no file): the rest is copied in blocks
        return offset

    @property
    def live(self) -> bool:
        """Whether the lines not final yet are drawn (a terminal, following)."""
        return self._live and not self.done and self._tail is None

    def draw(self, lines: list[str]) -> None:
        """Redraw the live area (the lines not final yet) on a terminal, if they changed."""
        while lines and not lines[-1]:
            lines = lines[:-1]
        if not self.live or lines == self._shown:
            return
        self._erase_live()
        if lines:
            width = max(10, os.get_terminal_size(self._out.fileno()).columns - 1)
            # Cut to the width, so each takes one row: the redraw counts rows.
            cut = [line[:width] + ("\x1b[0m" if "\x1b" in line else "") for line in lines]
            self._write("\n".join(cut).encode())
            self._drawn = len(lines)
            self._ends_line = False
        self._shown = lines

    @property
    def keeps_tail(self) -> bool:
        """Whether lines are still kept for --tail (until the first `flush_tail`)."""
        return self._tail is not None

    def flush_tail(self) -> None:
        """Print what --tail kept; from now on lines go out as they come (`-f --tail N`)."""
        if self._tail:
            self._write(("\n".join(self._tail) + "\n").encode())
        self._tail = None

    def close(self, newline: bool = True) -> None:
        """Print what --tail kept; end with a newline unless told not to (`--raw`)."""
        self._erase_live()
        self.flush_tail()
        if newline and not self._ends_line:
            self._write(b"\n")

    def end_line(self) -> None:
        """End the last line shown (the live area stays), when following stops early."""
        if not self._ends_line:
            try:
                self._write(b"\n")
            except OSError:
                pass

    def _erase_live(self) -> None:
        self._shown = None
        if self._drawn:
            up = f"\x1b[{self._drawn - 1}A" if self._drawn > 1 else ""
            self._write(f"\r{up}\x1b[J".encode())
            self._drawn = 0
            self._ends_line = True

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self._out.flush()
        self._ends_line = data.endswith(b"\n")
