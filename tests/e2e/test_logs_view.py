"""`expyrun logs` on real runs: the rendered view against a terminal emulator (pyte), the
flags, a folder still being prepared, and `-f` to the run's end with its closing line."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pyte
import pytest
from support import Project, read_json, run, start, start_in_terminal, wait_for

from expyrun.run.output_index import STDERR, STDOUT, IndexWriter


def terminal_lines(data: bytes) -> list[str]:
    """The lines a terminal shows for `data` (pyte; `\\n` as CR LF, tall and wide enough)."""
    screen = pyte.Screen(400, 600)
    screen.set_mode(pyte.modes.LNM)
    pyte.ByteStream(screen).feed(data)
    lines = [line.rstrip() for line in screen.display]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def shown(stdout: str) -> list[str]:
    return [line.rstrip() for line in stdout.splitlines()]


# Entries drawing progress bars the way tqdm does, on stderr (tqdm's default) and stdout.
BAR = """
def bar(i, n, out=sys.stderr, erase=False, position=0):
    filled = "█" * (i * 20 // n) + " " * (20 - i * 20 // n)
    text = f"{i * 100 // n:3d}%|{filled}| {i}/{n}"
    if position:
        out.write("\\n" * position)
    out.write("\\r" + ("\\x1b[K" if erase else "") + text)
    if position:
        out.write(f"\\x1b[{position}A")
    out.flush()
"""

BARS = {
    "plain-cr": "for i in range(101):\n    bar(i, 100)\nsys.stderr.write('\\n')\nprint('done')",
    "cr-erase-line": (
        "for i in range(101):\n    bar(100 - i, 100, erase=True)\n"
        "sys.stderr.write('\\n')\nprint('done')"
    ),
    "nested-bars-cursor-up": (
        "for epoch in range(3):\n"
        "    bar(epoch, 3)\n"
        "    for step in range(51):\n"
        "        bar(step, 50, position=1)\n"
        "bar(3, 3)\nsys.stderr.write('\\n\\n')\nprint('trained')"
    ),
    "three-bars": (
        "for i in range(31):\n"
        "    for p in range(3):\n"
        "        bar(i * (p + 1) // 3, 10 * (p + 1), position=p)\n"
        "sys.stderr.write('\\n\\n\\n')"
    ),
    "bar-interrupted-by-print": (
        "for i in range(61):\n"
        "    bar(i, 60, out=sys.stdout)\n"
        "    if i % 20 == 10:\n"
        "        sys.stdout.write('\\r\\x1b[K')\n"
        "        print(f'checkpoint at {i}', flush=True)\n"
        "print()"
    ),
    "coloured": (
        "for i in range(11):\n"
        "    sys.stdout.write(f'\\r\\x1b[32m{i * 10}%\\x1b[0m'); sys.stdout.flush()\n"
        "print()\nprint('\\x1b[1;31merror\\x1b[0m: plain')"
    ),
}


def _bar_run(project: Project, body: str) -> Path:
    code = BAR + "\n" + body
    entry = project.entry("exec(compile(" + repr(code) + ", 'bars', 'exec'), {'sys': sys})\n")
    result = run([project.config(entry)], cwd=project.root)
    assert result.code == 0, result.describe()
    return result.run_dir


@pytest.mark.parametrize("kind", list(BARS))
def test_the_rendered_view_is_what_a_terminal_shows(project: Project, kind: str) -> None:
    run_dir = _bar_run(project, BARS[kind])
    result = run(["logs", run_dir], cwd=project.root)
    assert result.code == 0, result.describe()
    log = (run_dir / "outputs.log").read_bytes()
    assert shown(result.stdout) == terminal_lines(log)
    assert "\r" not in result.stdout
    assert "\x1b" not in result.stdout
    assert len(result.stdout) < len(log) / 3  # the bars collapsed


def test_raw_prints_the_stored_bytes_and_tail_head_take_rendered_lines(project: Project) -> None:
    run_dir = _bar_run(project, BARS["bar-interrupted-by-print"])
    log = (run_dir / "outputs.log").read_bytes()
    assert run(["logs", "--raw", run_dir], cwd=project.root).stdout_bytes == log
    lines = terminal_lines(log)
    assert len(lines) == 4
    tail = run(["logs", "--tail", "2", run_dir], cwd=project.root)
    head = run(["logs", "--head", "2", run_dir], cwd=project.root)
    assert (shown(tail.stdout), shown(head.stdout)) == (lines[-2:], lines[:2])
    assert run(["logs", "--tail", "0", run_dir], cwd=project.root).stdout == ""


def test_no_color_and_a_closed_pipe(project: Project) -> None:
    run_dir = _bar_run(project, BARS["plain-cr"] + "\nfor i in range(30000): print(i)")
    piped = run(["logs", run_dir], cwd=project.root, env={"NO_COLOR": "1"})
    assert piped.code == 0
    assert piped.stdout.endswith("29999\n")
    import subprocess

    from support import EXPYRUN, child_env

    head = subprocess.run(
        ["bash", "-c", f"{' '.join(EXPYRUN)} logs {run_dir} | head -1"],
        capture_output=True,
        env=child_env(),
        cwd=project.root,
        timeout=60,
        check=False,
    )
    assert head.stdout.decode().strip() == "100%|████████████████████| 100/100"
    assert b"Traceback" not in head.stderr
    assert b"BrokenPipe" not in head.stderr


def test_a_folder_still_being_prepared_or_without_record_says_so(project: Project) -> None:
    preparing = project.output / "exp" / "exp.0"
    preparing.mkdir(parents=True)
    result = run(["logs", preparing], cwd=project.root)
    assert result.code == 2
    assert result.stderr.count("\n") == 1
    assert "still being prepared" in result.stderr
    plain = project.root / "plain"
    plain.mkdir()
    result = run(["logs", plain], cwd=project.root)
    assert result.code == 2, result.describe()
    assert result.stderr.count("\n") == 1, result.describe()


def test_timestamps_and_streams_without_an_index_say_so_once(project: Project) -> None:
    run_dir = _bar_run(project, "print('out'); sys.stderr.write('err\\n')")
    (run_dir / "outputs.index").unlink(missing_ok=True)
    result = run(["logs", "--stderr", "--timestamps", run_dir], cwd=project.root)
    assert result.code == 0
    assert shown(result.stdout) == ["out", "err"]
    assert result.stderr.count("\n") == 1
    assert "has no index" in result.stderr


def _indexed_run(project: Project, pieces: list[tuple[int, bytes]]) -> Path:
    """A real run folder whose outputs.log and outputs.index are rewritten from `pieces`."""
    run_dir = _bar_run(project, "pass")
    (run_dir / "outputs.index").unlink(missing_ok=True)
    writer = IndexWriter(run_dir / "outputs.index")
    with open(run_dir / "outputs.log", "wb") as log:
        for stream, data in pieces:
            writer.moved(log.tell(), stream)
            log.write(data)
            time.sleep(0.02)  # distinct records (COALESCE_SECONDS is 0.01)
    writer.close()
    return run_dir


def test_stream_filter_and_timestamps_from_the_index(project: Project) -> None:
    run_dir = _indexed_run(
        project,
        [
            (STDOUT, b"out 1\n"),
            (STDERR, b"\r 10%\r 50%"),
            (STDOUT, b"out 2\n"),
            (STDERR, b"\r100%\n"),
        ],
    )
    both = run(["logs", run_dir], cwd=project.root)
    assert shown(both.stdout) == terminal_lines((run_dir / "outputs.log").read_bytes())
    out = run(["logs", "--stdout", run_dir], cwd=project.root)
    err = run(["logs", "--stderr", run_dir], cwd=project.root)
    assert (shown(out.stdout), shown(err.stdout)) == (["out 1", "out 2"], ["100%"])
    assert out.stderr == err.stderr == ""
    stamped = run(["logs", "--timestamps", run_dir], cwd=project.root)
    times = [line[:23] for line in stamped.stdout.splitlines()]
    assert [line[24:] for line in stamped.stdout.splitlines()] == shown(both.stdout)
    assert times == sorted(times)
    assert len(set(times)) == len(times)
    elapsed = run(["logs", "--elapsed", "--stdout", run_dir], cwd=project.root)
    assert [line.split(" ", 1)[1] for line in elapsed.stdout.splitlines()] == ["out 1", "out 2"]


def test_follow_renders_as_the_run_goes_and_ends_with_a_closing_line(project: Project) -> None:
    entry = project.entry(
        """
        for i in range(101):
            sys.stderr.write(f"\\r{i}%"); sys.stderr.flush()
        sys.stderr.write("\\n")
        print("waiting", flush=True)
        deadline = time.monotonic() + 60
        while not os.path.exists("go") and time.monotonic() < deadline:
            time.sleep(0.01)
        sys.stdout.write("\\rlast bar 100%")
        raise ValueError("loss is nan")
        """
    )
    started = run([project.config(entry), "--detach"], cwd=project.root)
    run_dir = Path(started.stdout.splitlines()[-1])
    follower = start(["logs", "-f", run_dir], cwd=project.root)
    assert follower.stdout is not None
    first = follower.stdout.readline()
    assert first == b"100%\n"  # a line reaches the pipe once it is final, not at the end
    assert follower.stdout.readline() == b"waiting\n"
    (run_dir / "go").touch()
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 1
    lines = out.decode().splitlines()
    assert any(line.startswith("last bar 100%") for line in lines), lines
    assert lines[-1] == "ValueError: loss is nan"
    assert out.endswith(b"\n")
    closing = err.decode().strip().splitlines()[-1]
    record = read_json(run_dir / "run.json")
    assert closing.startswith("expyrun: failed in ")
    assert closing.endswith(f": {run_dir}")
    assert "(exit 1" in closing
    if record.get("error"):
        assert record["error"] in closing


def _in_terminal(args: list, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Run `expyrun ARGS` with its stdio on a new pseudo-terminal; its code and what it drew."""
    process, master = start_in_terminal(args, cwd=cwd, env=env)
    screen = bytearray()
    reader = threading.Thread(target=_read_all, args=(master, screen), daemon=True)
    reader.start()
    try:
        code = process.wait(60)
    finally:
        process.kill()
        process.wait()
        reader.join(10)
        os.close(master)
    return code, bytes(screen)


def _read_all(fd: int, into: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: every process of the terminal closed it
            return
        if not chunk:
            return
        into.extend(chunk)


def test_on_a_terminal_the_bytes_pass_through(project: Project) -> None:
    run_dir = _bar_run(project, BARS["coloured"])
    log = (run_dir / "outputs.log").read_bytes()
    code, drawn = _in_terminal(["logs", run_dir], cwd=project.root)
    assert code == 0
    assert drawn == log.replace(b"\n", b"\r\n")  # the terminal's onlcr, nothing else


def test_rendered_lines_on_a_terminal_keep_colour_unless_no_color(project: Project) -> None:
    run_dir = _bar_run(project, BARS["coloured"])
    code, drawn = _in_terminal(["logs", "--tail", "1", run_dir], cwd=project.root)
    assert code == 0
    assert drawn == b"\x1b[1;31merror\x1b[0m: plain\r\n"
    _, plain = _in_terminal(["logs", "--tail", "1", run_dir], project.root, {"NO_COLOR": "1"})
    assert plain == b"error: plain\r\n"


def test_follow_on_a_terminal_draws_the_bar_in_place(project: Project) -> None:
    """`-f --tail N` renders on a terminal: the lines not final yet are redrawn in place."""
    entry = project.entry(
        """
        for i in range(3):
            print(f"line {i}", flush=True)
        for i in range(101):
            sys.stderr.write(f"\\r\\x1b[Kbar {i}%"); sys.stderr.flush()
            if i == 50:
                open("half", "w").close()
                deadline = time.monotonic() + 60
                while not os.path.exists("go") and time.monotonic() < deadline:
                    time.sleep(0.01)
        sys.stderr.write("\\n")
        print("done")
        """
    )
    started = run([project.config(entry), "--detach"], cwd=project.root)
    run_dir = Path(started.stdout.splitlines()[-1])
    process, master = start_in_terminal(["logs", "-f", "--tail", "100", run_dir], project.root)
    screen = bytearray()
    reader = threading.Thread(target=_read_all, args=(master, screen), daemon=True)
    reader.start()
    try:
        wait_for(lambda: b"bar 50%" in screen, 30, "the live bar at 50%")
        (run_dir / "go").touch()
        assert process.wait(60) == 0
    finally:
        process.kill()
        process.wait()
        reader.join(10)
        os.close(master)
    shown_lines = [line for line in terminal_lines(bytes(screen)) if line]
    assert shown_lines[:5] == ["line 0", "line 1", "line 2", "bar 100%", "done"]
    assert shown_lines[-1].startswith("expyrun: succeeded in ")


def test_timestamps_follow_write_order_across_stdout_and_stderr(project: Project) -> None:
    """Each write reaches outputs.log before the next one is made (the entry waits for it)."""
    entry = project.entry(
        """
        for i in range(8):
            stream = sys.stdout if i % 2 else sys.stderr
            stream.write(f"line {i}\\n")
            stream.flush()
            deadline = time.monotonic() + 30
            while f"line {i}".encode() not in open("outputs.log", "rb").read():
                assert time.monotonic() < deadline
                time.sleep(0.005)
        """
    )
    result = run([project.config(entry)], cwd=project.root)
    assert result.code == 0, result.describe()
    run_dir = result.run_dir
    if not (run_dir / "outputs.index").exists():
        pytest.skip("this expyrun writes no outputs.index yet (the tee's index, issue 13)")
    stamped = run(["logs", "--timestamps", run_dir], cwd=project.root)
    assert [line[24:] for line in stamped.stdout.splitlines()] == [f"line {i}" for i in range(8)]
    times = [line[:23] for line in stamped.stdout.splitlines()]
    assert times == sorted(times)
    out = run(["logs", "--stdout", run_dir], cwd=project.root)
    err = run(["logs", "--stderr", run_dir], cwd=project.root)
    assert shown(out.stdout) == [f"line {i}" for i in range(1, 8, 2)]
    assert shown(err.stdout) == [f"line {i}" for i in range(0, 8, 2)]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        pytest.param(["--raw", "--tail", "3"], "--raw prints the stored bytes", id="raw-tail"),
        pytest.param(["--head", "-1"], "--head takes a count of lines", id="negative-head"),
        pytest.param(["--stdout", "--stderr"], "not allowed with argument", id="two-streams"),
        pytest.param(["--tail", "x"], "invalid int value", id="tail-not-a-number"),
    ],
)
def test_flags_that_do_not_go_together_are_one_line(
    project: Project, flags: list[str], message: str
) -> None:
    run_dir = _bar_run(project, "pass")
    result = run(["logs", *flags, run_dir], cwd=project.root)
    assert result.code == 2
    assert result.stderr.count("\n") == 1, result.describe()
    assert message in result.stderr
    assert result.stderr.startswith("expyrun: error: ")


def test_run_may_be_a_name_folder_or_last(project: Project) -> None:
    run_dir = _bar_run(project, BARS["plain-cr"])
    expected = terminal_lines((run_dir / "outputs.log").read_bytes())
    for name in (run_dir.parent, "last"):
        result = run(["logs", name], cwd=project.root)
        assert result.code == 0, result.describe()
        assert shown(result.stdout) == expected


def test_follow_into_a_pipe_renders_nested_bars_as_the_finished_log(project: Project) -> None:
    """Lines go out while the run goes on (an epoch's line once the bars moved below it), and
    the whole equals the rendered log: no bar line printed before its cursor-up came."""
    code = (
        BAR
        + """
for epoch in range(3):
    bar(epoch, 3)
    for step in range(21):
        bar(step, 20, position=1)
    sys.stderr.write("\\x1b[1B\\r\\x1b[K\\x1b[1A")
    print(f"\\repoch {epoch} done\\x1b[K", flush=True)
    bar(epoch + 1, 3)
    open(f"epoch{epoch}", "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(f"go{epoch}") and time.monotonic() < deadline:
        time.sleep(0.01)
sys.stderr.write("\\n")
"""
    )
    entry = project.entry("exec(compile(" + repr(code) + ", 'bars', 'exec'), globals())\n")
    started = run([project.config(entry), "--detach"], cwd=project.root)
    run_dir = Path(started.stdout.splitlines()[-1])
    follower = start(["logs", "-f", run_dir], cwd=project.root)
    assert follower.stdout is not None
    for epoch in range(3):
        wait_for(lambda e=epoch: (run_dir / f"epoch{e}").exists(), 30, f"epoch {epoch}")
        if epoch:
            # The run waits at the end of this epoch: the line of the one before is final
            # (the bars moved below it), so the pipe has it already.
            assert follower.stdout.readline() == f"epoch {epoch - 1} done\n".encode()
        (run_dir / f"go{epoch}").touch()
    rest, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err.decode()
    expected = terminal_lines((run_dir / "outputs.log").read_bytes())
    got = [f"epoch {e} done" for e in range(2)] + shown(rest.decode())
    assert got == expected


def test_follow_with_tail_prints_only_the_last_lines_then_what_comes(project: Project) -> None:
    """`-f --tail N` into a pipe: the last N final lines, then each new one; of a run that has
    ended, the last N lines (not the whole log)."""
    entry = project.entry(
        """
        for i in range(10):
            print(f"line {i}")
        sys.stdout.flush()
        deadline = time.monotonic() + 60
        while not os.path.exists("go") and time.monotonic() < deadline:
            time.sleep(0.01)
        print("after go")
        """
    )
    started = run([project.config(entry), "--detach"], cwd=project.root)
    run_dir = Path(started.stdout.splitlines()[-1])
    wait_for(lambda: b"line 9\n" in (run_dir / "outputs.log").read_bytes(), 30, "the first lines")
    follower = start(["logs", "-f", "--tail", "2", run_dir], cwd=project.root)
    assert follower.stdout is not None
    assert follower.stdout.readline() == b"line 8\n"
    assert follower.stdout.readline() == b"line 9\n"
    (run_dir / "go").touch()
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert out == b"after go\n"
    ended = run(["logs", "-f", "--tail", "2", run_dir], cwd=project.root)
    assert ended.code == 0, ended.describe()
    assert ended.stdout == "line 9\nafter go\n"
