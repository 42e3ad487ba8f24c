"""The streaming renderer: each control sequence, chunk boundaries, the window bound, colour.

pyte (a terminal emulator used in tests only) is the reference for what a terminal shows.
"""

from __future__ import annotations

import pyte
import pytest

from expyrun.runs.render import MAX_COLUMNS, Renderer


def reference(data: bytes) -> list[str]:
    """What a terminal tall and wide enough shows for `data` (`\\n` as CR LF: `onlcr`)."""
    screen = pyte.Screen(300, 400)
    screen.set_mode(pyte.modes.LNM)
    pyte.ByteStream(screen).feed(data)
    return _trimmed(screen.display)


def _trimmed(lines: list[str]) -> list[str]:
    lines = [line.rstrip() for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def render(data: bytes, step: int | None = None, **options) -> list[str]:
    renderer = Renderer(**options)
    out: list[str] = []
    for i in range(0, len(data), step or max(1, len(data))):
        out += renderer.feed(data[i : i + (step or len(data))])
    return out + renderer.finish()


CASES = [
    pytest.param(b"hello\nworld\n", ["hello", "world"], id="plain-lines"),
    pytest.param(b"no newline at the end", ["no newline at the end"], id="no-final-newline"),
    pytest.param(b"a\n\n\nb\n", ["a", "", "", "b"], id="blank-lines-kept"),
    pytest.param(b"10%\r20%\r100%\n", ["100%"], id="carriage-return"),
    pytest.param(b"long text\rshort\n", ["shorttext"], id="cr-overwrites-only-what-it-writes"),
    pytest.param(b"abcdef\rxy\x1b[K\n", ["xy"], id="erase-to-end"),
    pytest.param(b"abcdef\rxy\x1b[0K\n", ["xy"], id="erase-to-end-0"),
    pytest.param(b"abcdef\r\x1b[2Kxy\n", ["xy"], id="erase-whole-line"),
    pytest.param(b"abcdef\x1b[3G\x1b[1K\n", ["   def"], id="erase-to-cursor"),
    pytest.param(b"abc\bX\n", ["abX"], id="backspace"),
    pytest.param(b"\b\bab\n", ["ab"], id="backspace-at-column-0"),
    pytest.param(b"xxxxx\x1b[3Gy\n", ["xxyxx"], id="column-absolute"),
    pytest.param(b"xxxxx\x1b[Gy\n", ["yxxxx"], id="column-1-by-default"),
    pytest.param(b"ab\x1b[3Cc\n", ["ab   c"], id="cursor-forward"),
    pytest.param(b"abcd\x1b[2DX\n", ["abXd"], id="cursor-back"),
    pytest.param(b"one\ntwo\x1b[AX\n", ["oneX", "two"], id="cursor-up"),
    pytest.param(b"one\ntwo\x1b[1A\rONE\x1b[1B\rTWO\n", ["ONE", "TWO"], id="cursor-up-down"),
    pytest.param(b"a\nb\nc\x1b[2F1\x1b[1E2\n", ["1", "2", "c"], id="previous-next-line"),
    pytest.param(b"top\x1b[5Abar\n", ["topbar"], id="cursor-up-stops-at-the-top"),
    pytest.param(b"\x1b[31mred\x1b[0m plain\n", ["red plain"], id="colour-stripped"),
    pytest.param(b"\x1b]0;a title\x07text\n", ["text"], id="osc-title-dropped"),
    pytest.param(b"\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\\n", ["link"], id="osc-hyperlink"),
    pytest.param(b"\x1b[?25lhidden cursor\x1b[?25h\n", ["hidden cursor"], id="private-mode"),
    pytest.param(b"bell\x07 nul\x00\n", ["bell nul"], id="other-controls-dropped"),
    pytest.param(b"a\nb\nc\x1b[2A\x1b[J\n", ["a"], id="erase-below"),
    pytest.param("█▉▊▋▌ 50%\r██████ 100%\n".encode(), ["██████ 100%"], id="unicode-blocks"),
    pytest.param(b"bar 1/2\rprinted\nbar 2/2\n", ["printed", "bar 2/2"], id="print-over-bar"),
]


@pytest.mark.parametrize(("data", "expected"), CASES)
def test_each_sequence_renders_as_a_terminal_shows_it(data: bytes, expected: list[str]) -> None:
    assert render(data) == expected
    assert _trimmed(render(data)) == reference(data)


@pytest.mark.parametrize(("data", "expected"), CASES)
def test_any_chunk_boundary_gives_the_same_lines(data: bytes, expected: list[str]) -> None:
    for step in (1, 2, 3, 5):
        assert render(data, step) == expected, step
    for cut in range(1, len(data)):
        renderer = Renderer()
        lines = renderer.feed(data[:cut]) + renderer.feed(data[cut:]) + renderer.finish()
        assert lines == expected, cut


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert render(b"ok \xff\xfe end\n\xe2\x82\n") == ["ok \ufffd\ufffd end", "\ufffd"]


def test_a_utf8_character_split_between_chunks_is_whole() -> None:
    data = "é€😀\n".encode()
    for cut in range(1, len(data)):
        renderer = Renderer()
        assert renderer.feed(data[:cut]) + renderer.feed(data[cut:]) + renderer.finish() == ["é€😀"]


def test_colour_is_kept_for_a_terminal_and_follows_overwrites() -> None:
    assert render(b"\x1b[31mred\x1b[0m plain\rX\n", keep_colour=True) == [
        "X\x1b[31med\x1b[0m plain"
    ]
    assert render(b"\x1b[1;32mall\n", keep_colour=True) == ["\x1b[1;32mall\x1b[0m"]


def test_tabs_are_kept_as_tabs_where_a_terminal_would_show_them_whole() -> None:
    assert render(b"a\tb\tc\n") == ["a\tb\tc"]
    assert render(b"abc\r\tX\n") == ["abc     X"]  # a tab over text only moves the cursor
    assert render(b"\tb\r xy\n") == [" xy     b"]  # a tab partly overwritten: spaces
    assert render(b"\x1b[31ma\tb\n", keep_colour=True) == ["\x1b[31ma\tb\x1b[0m"]


def test_lines_scroll_out_of_the_window_as_they_become_unreachable() -> None:
    renderer = Renderer(window=4)
    out = renderer.feed(b"".join(b"line %d\n" % i for i in range(100)))
    assert out == [f"line {i}" for i in range(len(out))]
    assert len(renderer.screen()) <= 2 * 4 + 1
    assert out + renderer.finish() == [f"line {i}" for i in range(100)]


def test_a_cursor_up_past_the_window_lands_on_its_top_line() -> None:
    renderer = Renderer(window=2)
    lines = renderer.feed(b"".join(b"%d\n" % i for i in range(10)) + b"\x1b[9Atop\n")
    lines += renderer.finish()
    assert "top" in "".join(lines)
    assert len(lines) == 10  # nothing lost, nothing added


def test_a_line_longer_than_max_columns_wraps() -> None:
    lines = render(b"x" * (MAX_COLUMNS + 10) + b"\n")
    assert [len(line) for line in lines] == [MAX_COLUMNS, 10]
    lines = render(b"a\n" + b"x" * (MAX_COLUMNS + 10) + b"\nb\n")
    assert [len(line) for line in lines] == [1, MAX_COLUMNS, 10, 1]


def test_release_gives_lines_no_cursor_up_seen_so_far_can_reach() -> None:
    renderer = Renderer()
    assert renderer.feed(b"a\nb\nc\n") == []
    assert renderer.release(renderer.releasable) == ["a", "b", "c"]
    renderer.feed(b"outer\n\rinner\x1b[A\r")
    assert renderer.deepest_up == 1
    assert renderer.release(renderer.releasable) == []  # both bars are still reachable
    assert renderer.finish() == ["outer", "inner"]


def test_stamp_prefixes_each_line_with_the_time_of_its_last_write() -> None:
    renderer = Renderer(stamp=lambda when: f"[{when}] ")
    out = renderer.feed(b"a\nbar 1", when=1.0) + renderer.feed(b"\rbar 2\n", when=2.0)
    assert out + renderer.finish() == ["[1.0] a", "[2.0] bar 2"]


ALPHABET = [
    b"a",
    b"\t",
    b"bc",
    "█▌".encode(),
    b"\r",
    b"\n",
    b"\b",
    b"\x1b[K",
    b"\x1b[1K",
    b"\x1b[2K",
    b"\x1b[A",
    b"\x1b[2A",
    b"\x1b[B",
    b"\x1b[3G",
    b"\x1b[G",
    b"\x1b[2C",
    b"\x1b[D",
    b"\x1b[E",
    b"\x1b[F",
    b"\x1b[J",
    b"\x1b[31m",
    b"\x1b[0m",
    b"\x1b]0;t\x07",
    b"\x1b[?25l",
]


@pytest.mark.parametrize("seed", range(40))
def test_random_streams_render_as_pyte_shows_them(seed: int) -> None:
    """Random mixes of text and the sequences above, cut into random chunks."""
    import random

    generator = random.Random(seed)
    data = b"".join(generator.choice(ALPHABET) for _ in range(400))
    renderer = Renderer(window=8)
    lines: list[str] = []
    position = 0
    while position < len(data):
        step = generator.randint(1, 40)
        lines += renderer.feed(data[position : position + step])
        position += step
    lines += renderer.finish()
    assert [line.expandtabs() for line in _trimmed(lines)] == reference(data)
