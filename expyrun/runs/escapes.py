"""Escape sequences in a terminal's output stream: their grammar, and the ones a chunk cuts.

ECMA-48 (https://ecma-international.org/publications-and-standards/standards/ecma-48/): a CSI
is `ESC [`, parameter bytes 0x30-0x3F, intermediate bytes 0x20-0x2F, one final byte 0x40-0x7E;
an OSC is `ESC ]` up to BEL or ST (`ESC \\`); other escapes are ESC, intermediates, a final.
"""

from __future__ import annotations

import re

# An escape sequence cut by the end of a chunk is kept for the next chunk up to this length;
# a longer unterminated OSC (an inline image) is skipped until its terminator.
MAX_PENDING = 4096

# What is not printable text, `\n` or `\r`, handled one by one (the rest goes in bulk).
SPECIAL = re.compile(
    r"\x1b\[([0-?]*)[ -/]*([@-~])"  # CSI: parameters, intermediates, final byte
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC, ended by BEL or ST
    r"|\x1b[ -/]*[0-Z\\^-~]"  # other escape sequences (charset selection, save cursor, ...)
    r"|[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]"  # C0 controls (tab included), DEL; not CR, LF
)
# A carriage return + erase line, and what it erases before the next one on the same line: a
# bar redrawn the tqdm way. Dropping these leaves the same screen, and saves work per redraw.
OVERDRAWN = re.compile(r"\r\x1b\[[02]?K[^\n\x0b\x0c\x1b]*(?=\r\x1b\[[02]?K)")
# The first character of each of them: found fast, then SPECIAL is matched there.
CONTROL = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]")
# The same characters, the likeliest first: `in` on each finds a text without any in ~0.3 ns
# per character, 30 times faster than a regular expression.
CONTROL_CHARS = "\x1b\t\b\x07" + "".join(
    chr(c) for c in (*range(0x20), 0x7F) if chr(c) not in "\x1b\t\b\x07\n\r"
)
# A suffix that may still become an escape sequence with the next chunk.
_ESCAPE_PREFIX = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?|[ -/]*)?\Z")
_OSC_END = re.compile(r"\x07|\x1b\\")
SGR_RESET = "\x1b[0m"
# A tab kept in a line is followed by fillers up to its tab stop (every 8 columns); NUL never
# comes from the stream (the renderer drops it), so it can mark them.
TAB, TAB_FILLER = "\t", "\x00"
_TAB_RUN = re.compile("\t?\x00+|\t")


class EscapeSplitter:
    """Keeps back an escape sequence cut by the end of a chunk until the next chunk ends it."""

    def __init__(self) -> None:
        self._pending = ""  # an escape sequence cut by the end of the last chunk
        self._in_osc = False  # inside an OSC too long to keep: skip to its end

    def split(self, text: str) -> str:
        """The part of `pending + text` that can be applied now; keeps the cut sequence."""
        if self._pending:
            text, self._pending = self._pending + text, ""
        if self._in_osc:
            text = self._skip_osc(text)
        cut = text.rfind("\x1b")
        if cut > 0 and cut == len(text) - 1:  # maybe the ESC of an OSC's ending `ESC \`
            osc = text.rfind("\x1b]", 0, cut)
            cut = osc if osc >= 0 and _ESCAPE_PREFIX.match(text, osc) else cut
        if cut >= 0 and _ESCAPE_PREFIX.match(text, cut) and not _is_complete(text, cut):
            if len(text) - cut <= MAX_PENDING:
                self._pending = text[cut:]
            else:
                self._in_osc = text.startswith("\x1b]", cut)
            text = text[:cut]
        return text

    def flush(self) -> str:
        """What is kept back, at the end of the stream (applied as it is)."""
        pending, self._pending, self._in_osc = self._pending, "", False
        return pending

    def _skip_osc(self, text: str) -> str:
        end = _OSC_END.search(text)
        if end is None:
            return "\x1b" if text.endswith("\x1b") else ""  # maybe the start of ST
        self._in_osc = False
        return text[end.end() :]


def _is_complete(text: str, start: int) -> bool:
    """Whether an escape sequence starts at `start` and ends within `text`."""
    match = SPECIAL.match(text, start)
    return match is not None and match.end() > start + 1


def first_number(params: str) -> int:
    """The first numeric parameter of a CSI sequence (0 when absent or not a number)."""
    head = params.split(";", 1)[0]
    return int(head) if head.isdigit() else 0


def updated_sgr(current: str, params: str) -> str:
    """The SGR sequences in effect after `ESC[{params}m` (colour, bold...), as one string."""
    if params in ("", "0"):
        return ""
    if params.startswith(("0;", ";")):
        current = ""
    return (current + f"\x1b[{params}m")[-256:]  # a runaway stack stays small


def styled(line: str, styles: list[str]) -> str:
    """`line` with SGR sequences where its cells' styles change, reset at its end."""
    parts: list[str] = []
    current = ""
    for char, style in zip(line, styles + [""] * (len(line) - len(styles)), strict=False):
        if style != current:
            parts.append(SGR_RESET + style if current else style)
            current = style
        parts.append(char)
    if current:
        parts.append(SGR_RESET)
    return "".join(parts)


def settled_tabs(line: str) -> str:
    """`line` with each tab whose cells are all still fillers kept (fillers and all), and what
    remains of a tab partly overwritten as spaces, as a terminal shows it; same length."""

    def shown(match: re.Match[str]) -> str:
        run = match.group()
        whole = run[0] == TAB and len(run) == 8 - match.start() % 8
        return run if whole else " " * len(run)

    return _TAB_RUN.sub(shown, line)
