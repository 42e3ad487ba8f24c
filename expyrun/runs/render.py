"""Render a terminal's output stream into the lines the terminal would show at the end.

`expyrun logs` shows outputs.log as a terminal would have shown it: a tqdm/rich progress bar
redrawn with `\\r`, backspaces, "erase line" and "cursor up" ends as its final line instead of
thousands of overwritten copies. The renderer streams: bytes in, final lines out, in constant
memory whatever the log size.

What is applied, and what is dropped: docs/run-management.md ("Reading a run's output"),
after ECMA-48 and xterm (https://invisible-island.net/xterm/ctlseqs/ctlseqs.html); `\\n` is
CR + LF, as the terminal's `onlcr` shows a program's `\\n`. Invalid UTF-8 becomes U+FFFD.

Memory: a window of the last `window` lines (the ones a cursor-up can still reach), each at
most `MAX_COLUMNS` characters (longer lines wrap, as at a terminal's width). A line is emitted
once it scrolls out of the window, or, with `release`, once the deepest cursor-up seen so far
(`deepest_up`) cannot reach it (`logs -f`). A cursor-up past the window stops at its top line:
that redraw shows as an extra line; nothing is lost.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable

from expyrun.runs.escapes import (
    CONTROL,
    CONTROL_CHARS,
    OVERDRAWN,
    SPECIAL,
    TAB,
    TAB_FILLER,
    EscapeSplitter,
    first_number,
    settled_tabs,
    styled,
    updated_sgr,
)

# How many recent lines a cursor-up can reach (see the module docstring).
WINDOW_LINES = 64
# The longest line kept; past it the line wraps (64 lines x 256 Ki characters bounds memory).
MAX_COLUMNS = 256 * 1024


class Renderer:
    """A terminal screen as wide as needed, fed bytes, giving back the lines that are final.

    Args:
        keep_colour: keep SGR sequences (colour, bold) in the lines; else drop them.
        window: how many recent lines stay reachable by a cursor-up (see the module docstring).
        stamp: called with the time of a line (as given to `feed`) when the line is emitted;
            its result prefixes the line (`logs --timestamps`).
    """

    def __init__(
        self,
        keep_colour: bool = False,
        window: int = WINDOW_LINES,
        stamp: Callable[[float | None], str] | None = None,
    ) -> None:
        self._colour = keep_colour
        self._window = max(1, window)
        self._stamp = stamp
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._lines: list[str] = [""]
        self._styles: list[list[str] | None] = [None]  # per cell SGR text, colour mode only
        self._times: list[float | None] = [None]
        self._row = 0  # the cursor, in self._lines
        self._col = 0
        self._sgr = ""  # the SGR sequences in effect since the last reset
        self._escapes = EscapeSplitter()
        self._when: float | None = None
        self._tabs = False  # a tab was kept (lines then go through with_tabs)
        self.emitted = 0  # lines emitted so far
        self.deepest_up = 0  # the deepest the cursor went above the lowest line

    # -- input -------------------------------------------------------------------------------

    def feed(self, data: bytes, when: float | None = None) -> list[str]:
        """Apply `data` (any split of the stream, UTF-8 or not); return the lines now final.

        `when`: the time the bytes were written (seconds since the epoch), kept per line for
        `stamp`; a line's time is that of the last write to it.
        """
        self._when = when
        text = self._escapes.split(self._decoder.decode(data))
        if "\r\x1b[" in text:
            text = OVERDRAWN.sub("", text)
        self._apply(text)
        return self._scroll()

    def finish(self) -> list[str]:
        """Flush the decoder and return every line still held (the stream has ended).

        The last line is left out when it is empty (the line after a final newline).
        """
        self._apply(self._escapes.split(self._decoder.decode(b"", final=True)))
        self._apply(self._escapes.flush())
        count = len(self._lines) - (not self._lines[-1])
        out = self._emit(count)
        self._reset_screen()
        return out

    @property
    def releasable(self) -> int:
        """The number (counting every line emitted before) of the first line a cursor-up as
        deep as the deepest seen so far could still reach from the cursor or the lowest line."""
        keep_from = min(len(self._lines) - 1 - self.deepest_up, self._row)
        return self.emitted + max(0, keep_from)

    def release(self, upto: int) -> list[str]:
        """Emit the lines numbered below `upto` that are below `releasable` now too."""
        return self._emit(min(upto, self.releasable) - self.emitted)

    def screen(self) -> list[str]:
        """The lines held now, rendered (what a live view draws below the final lines)."""
        return [self._render(i) for i in range(len(self._lines))]

    # -- applying text -----------------------------------------------------------------------

    def _apply(self, text: str) -> None:
        if not any(char in text for char in CONTROL_CHARS):
            self._plain(text)  # most of a log: lines of text
            return
        position = 0
        find = CONTROL.search
        while (control := find(text, position)) is not None:
            start = control.start()
            match = SPECIAL.match(text, start) or control  # (it always matches)
            if start > position:
                self._plain(text[position:start])
            position = match.end()
            self._control(match)
        if position < len(text):
            self._plain(text[position:])

    def _plain(self, text: str) -> None:
        """Printable text, `\\n`s and `\\r`s: written in bulk."""
        if "\r" in text:
            self._with_returns(text)
            return
        parts = text.split("\n")
        self._write(parts[0])
        if len(parts) == 1:
            return
        middle = parts[1:-1]
        bottom = self._row == len(self._lines) - 1
        if middle and bottom and not self._sgr and max(map(len, middle)) <= MAX_COLUMNS:
            # The common case: fresh lines below the last one, written whole.
            self._newline()
            self._lines[-1] = middle[0]
            self._times[-1] = self._when
            rest = middle[1:]
            self._lines += rest
            self._styles += [None] * len(rest)
            self._times += [self._when] * len(rest)
            self._row = len(self._lines) - 1
            self._col = len(self._lines[-1])
        else:
            for part in middle:
                self._newline()
                self._write(part)
        self._newline()
        self._write(parts[-1])

    def _with_returns(self, text: str) -> None:
        for number, line in enumerate(text.split("\n")):
            if number:
                self._newline()
            first, *redraws = line.split("\r")
            self._write(first)
            # Each redraw starts at column 0: one no longer than a later one is hidden by it.
            longest, shown = 0, []
            for part in reversed(redraws):
                if len(part) > longest:
                    shown.append(part)
                    longest = len(part)
            for part in reversed(shown):
                self._col = 0
                self._write(part)
            if redraws and longest <= MAX_COLUMNS:
                self._col = len(redraws[-1])

    def _write(self, text: str) -> None:
        if not text:
            return
        row, col = self._row, self._col
        line = self._lines[row]
        end = col + len(text)
        if col == len(line):
            new = line + text
        elif col > len(line):
            new = line + " " * (col - len(line)) + text
        else:
            new = line[:col] + text + line[end:]
        self._lines[row] = new
        self._times[row] = self._when
        if self._colour and (self._sgr or self._styles[row] is not None):
            styles = self._styles[row] or [""] * len(line)
            styles += [""] * (col - len(styles))
            styles[col:end] = [self._sgr] * len(text)
            self._styles[row] = styles
        self._col = end
        if end > MAX_COLUMNS:
            self._wrap(row)

    def _wrap(self, row: int) -> None:
        """Move what passed MAX_COLUMNS on `row` to a new line below (as a terminal wraps)."""
        line = self._lines[row]
        styles = self._styles[row]
        self._lines[row] = line[:MAX_COLUMNS]
        self._styles[row] = styles[:MAX_COLUMNS] if styles else None
        self._lines.insert(row + 1, line[MAX_COLUMNS:])
        self._styles.insert(row + 1, styles[MAX_COLUMNS:] if styles else None)
        self._times.insert(row + 1, self._when)
        self._row, self._col = row + 1, self._col - MAX_COLUMNS
        if self._col > MAX_COLUMNS:
            self._wrap(row + 1)

    def _newline(self) -> None:
        """CR + LF: a new empty line below the last one, or the next line down."""
        self._col = 0
        self._down(1)

    def _down(self, count: int) -> None:
        target = self._row + count
        missing = target - (len(self._lines) - 1)
        if missing > 0:
            self._lines += [""] * missing
            self._styles += [None] * missing
            self._times += [self._when] * missing
        self._row = target

    def _up(self, count: int) -> None:
        self._row = max(0, self._row - count)
        self.deepest_up = max(self.deepest_up, len(self._lines) - 1 - self._row)

    # -- control sequences -------------------------------------------------------------------

    def _control(self, match: re.Match[str]) -> None:
        text = match.group()
        if len(text) == 1:
            self._c0(text)
        elif text[1] == "[":
            final = match.group(2)
            params = match.group(1)
            if params and params[0] in "<=>?":
                return  # private modes (cursor shown/hidden, ...)
            self._csi(final, params)

    def _c0(self, char: str) -> None:
        if char in "\x0b\x0c":
            self._newline()
        elif char == "\b":
            self._col = max(0, self._col - 1)
        elif char == "\t":
            stop = min(MAX_COLUMNS, (self._col // 8 + 1) * 8)
            if self._col >= len(self._lines[self._row]):
                # Kept as a tab (`| cut` works), its cells up to the stop held by fillers.
                self._write(TAB + TAB_FILLER * (stop - self._col - 1))
                self._tabs = True
            self._col = stop
        # anything else (BEL, NUL, SO/SI, a lone ESC, DEL) shows nothing

    def _csi(self, final: str, params: str) -> None:
        if final == "m":
            if self._colour:
                self._sgr = updated_sgr(self._sgr, params)
            return
        number = first_number(params)
        count = max(1, number)
        if final == "K":
            self._erase_in_line(number)
        elif final == "A":
            self._up(count)
        elif final in "BE":
            self._down(count)
            if final == "E":
                self._col = 0
        elif final == "F":
            self._up(count)
            self._col = 0
        elif final == "G" or final == "`":
            self._col = min(count - 1, MAX_COLUMNS)
        elif final == "C":
            self._col = min(self._col + count, MAX_COLUMNS)
        elif final == "D":
            self._col = max(0, self._col - count)
        elif final == "J" and number == 0:
            self._erase_in_line(0)
            below = self._row + 1
            del self._lines[below:], self._styles[below:], self._times[below:]
        # anything else (absolute positions, scrolling regions, reports) shows nothing here

    def _erase_in_line(self, mode: int) -> None:
        row, col = self._row, self._col
        line = self._lines[row]
        styles = self._styles[row]
        if mode == 0:
            self._lines[row] = line[:col]
            self._styles[row] = styles[:col] if styles else None
        elif mode == 1:
            self._lines[row] = " " * min(col + 1, len(line)) + line[col + 1 :]
            if styles:
                styles[: col + 1] = [""] * min(col + 1, len(styles))
        elif mode == 2:
            self._lines[row] = ""
            self._styles[row] = None
        self._times[row] = self._when

    # -- output ------------------------------------------------------------------------------

    def _scroll(self) -> list[str]:
        """Emit the lines past the window (trimmed in batches: amortised O(1) per line)."""
        if len(self._lines) - 1 <= 2 * self._window:
            return []
        keep_from = min(len(self._lines) - 1 - self._window, self._row)
        return self._emit(keep_from) if keep_from > 0 else []

    def _emit(self, count: int) -> list[str]:
        if count <= 0:
            return []
        if self._stamp is None and not self._colour and not self._tabs:
            out = self._lines[:count]
        else:
            out = [self._render(i) for i in range(count)]
        del self._lines[:count], self._styles[:count], self._times[:count]
        self._row = max(0, self._row - count)
        if not self._lines:
            self._reset_screen()
        self.emitted += count
        return out

    def _render(self, index: int) -> str:
        line = self._lines[index]
        styles = self._styles[index]
        tabs = self._tabs and (TAB in line or TAB_FILLER in line)
        if tabs:
            line = settled_tabs(line)
        if styles and any(styles):
            line = styled(line, styles)
        if tabs:
            line = line.replace(TAB_FILLER, "")
        if self._stamp is not None:
            return self._stamp(self._times[index]) + line
        return line

    def _reset_screen(self) -> None:
        self._lines, self._styles, self._times = [""], [None], [self._when]
        self._row = self._col = 0
