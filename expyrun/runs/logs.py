"""`expyrun logs`: show a run's outputs.log, rendered or raw; with -f, follow it to the run's end.

outputs.log keeps the worker's bytes exactly. Shown to a pipe or a file, the log is rendered
(`runs/render.py`: progress bars collapsed to their final line, colour dropped); shown on a
terminal, the bytes pass through and the terminal renders them, unless an option needs the
rendered lines (`--tail`, `--head`, `--timestamps`, `--stdout`/`--stderr`: then colour is kept,
unless NO_COLOR is set, https://no-color.org). `--raw` prints the stored bytes always.
outputs.index (`run/output_index.py`) gives the times and streams of the log's stretches.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from expyrun import console
from expyrun.errors import ExitCode, RunFolderError, UsageError
from expyrun.run.folder import OUTPUTS_LOG, RUN_FOLDER_PATTERN
from expyrun.run.output_index import STDERR, STDOUT, index_path
from expyrun.run.record import ENDED, RECORD_FILE, RunRecord, Status
from expyrun.runs.log_sink import LogSink
from expyrun.runs.log_source import LogSource, Piece
from expyrun.runs.reading import effective_status, exit_code_of, load, load_json, open_run
from expyrun.runs.render import Renderer
from expyrun.runs.text import timestamp

# How often `logs -f` looks at the files of the run it follows, and how often it asks Slurm
# about a pending job (squeue costs the controller more than reading a file).
POLL_SECONDS = 0.1
SLURM_POLL_SECONDS = 5.0
# How long `logs -f` waits, once the run has ended, for the log to hold what the record counts.
LOG_CATCH_UP_SECONDS = 5.0
STREAM_NAMES = {STDOUT: "stdout", STDERR: "stderr"}


@dataclass(frozen=True)
class LogOptions:
    """What `expyrun logs` shows: the command's flags."""

    raw: bool = False
    tail: int | None = None  # the last N rendered lines
    head: int | None = None  # the first N rendered lines
    timestamps: bool = False  # prefix each rendered line with its wall time
    elapsed: bool = False  # ... with the time since the run started instead
    stream: int | None = None  # STDOUT or STDERR: that stream only
    task: int | None = None  # task N's log of a multi-task run (run/tasks.py)

    def check(self) -> None:
        """Raise UsageError for flags that do not go together."""
        if self.raw and (self.tail is not None or self.head is not None or self.timestamps):
            raise UsageError(
                "--raw prints the stored bytes: --tail/--head/--timestamps need the rendered view",
                hint="see expyrun logs --help",
            )
        for name, value in (("--tail", self.tail), ("--head", self.head)):
            if value is not None and value < 0:
                raise UsageError(f"{name} takes a count of lines, got {value}", hint="e.g. 20")

    @property
    def needs_rendering(self) -> bool:
        """Whether the rendered lines are needed even on a terminal."""
        return (
            self.tail is not None
            or self.head is not None
            or self.timestamps
            or self.elapsed
            or self.stream is not None
        )


def log_options(parsed: argparse.Namespace) -> LogOptions:
    """LogOptions from the parsed flags of `logs` (`cli/run_commands.py`)."""
    stream = STDOUT if parsed.stdout else STDERR if parsed.stderr else None
    return LogOptions(
        raw=parsed.raw,
        tail=parsed.tail,
        head=parsed.head,
        timestamps=parsed.timestamps,
        elapsed=parsed.elapsed,
        stream=stream,
        task=parsed.task,
    )


def show_log(run: str, follow: bool, options: LogOptions | None = None) -> int:
    """Show outputs.log of the run folder `run` (see the module docstring).

    `follow`: until the run ends, then a closing line on stderr and exit with the run's code (1
    when it was lost or cancelled). Stops quietly when stdout closes (`| head`).

    Raises:
        RunFolderError: `run` is no run folder, or one still being prepared (no record yet).
        UsageError: flags that do not go together.
    """
    options = options or LogOptions()
    options.check()
    run_dir, record = _open(run)
    terminal = sys.stdout.isatty()
    rendering = not options.raw and (options.needs_rendering or not terminal)
    colour = rendering and terminal and not os.environ.get("NO_COLOR")
    wants_index = bool(options.timestamps or options.elapsed or options.stream)
    log = run_dir / OUTPUTS_LOG
    if options.task is not None:
        log = task_log(run_dir, options.task, record.tasks)
    index = index_path(log)  # outputs.index, or a task's outputs.taskN.index
    has_index = wants_index and index.is_file()
    if wants_index and not has_index:
        console.warning(
            f"{log} has no index ({index.name}: an older expyrun wrote it): "
            "no timestamps, both streams"
        )
    sink = LogSink(
        sys.stdout.buffer, options.head, options.tail, live=follow and terminal and rendering
    )
    renderer = Renderer(keep_colour=colour, stamp=_stamp(options, record) if has_index else None)
    stream = options.stream if has_index else None
    source = LogSource(log, stream, index if has_index else None)
    if not follow:
        if not log.exists() and record.status not in ENDED:
            console.info(f"no output yet: the run is {record.status}")
            return ExitCode.OK
        try:
            if not rendering and stream is None:
                source.skip(sink.copy_file(log))  # the bytes as they are, in the kernel
            for piece in source.pieces(final=True):
                _feed(piece, renderer, sink, rendering)
                if sink.done:
                    break  # --head: the rest of the log is not read
            if rendering:
                sink.lines(renderer.finish())
            sink.close(newline=rendering)
        except BrokenPipeError:
            _silence_stdout()
        return ExitCode.OK
    return _follow(run_dir, log, renderer, source, sink, rendering)


def _open(run: str) -> tuple[Path, RunRecord]:
    """The run folder and its record; a folder still being prepared says so."""
    run_dir = Path(run)
    if (
        RUN_FOLDER_PATTERN.match(run_dir.name)
        and run_dir.is_dir()
        and not (run_dir / RECORD_FILE).exists()
    ):
        raise RunFolderError(
            "no run.json yet: the run folder is still being prepared (or its launch failed)",
            path=run_dir,
        )
    return open_run(run)


def _follow(
    run_dir: Path, log: Path, renderer: Renderer, source: LogSource, sink: LogSink, rendering: bool
) -> int:
    """Show the log as it grows until the run ends; the closing line; the run's exit code."""
    asked_slurm = -SLURM_POLL_SECONDS
    releasable: int | None = None
    try:
        while True:
            current = load(run_dir)
            ask = time.monotonic() - asked_slurm >= SLURM_POLL_SECONDS
            if ask and current is not None and current.status == Status.PENDING:
                asked_slurm = time.monotonic()
            status = effective_status(current, ask_slurm=ask) if current else Status.LOST
            ended = status in ENDED
            if ended and log.name == OUTPUTS_LOG:
                _await_log(log, current)
            for piece in source.pieces(final=ended):
                _feed(piece, renderer, sink, rendering)
            if ended:
                if rendering:
                    sink.lines(renderer.finish())
                sink.close()  # prints what --tail kept
                _closing_line(run_dir, current, status)
                return exit_code_of(current, status)
            if rendering and sink.keeps_tail:
                # --tail counts the lines final now (the renderer still holds its window)
                sink.lines(renderer.release(renderer.releasable))
            sink.flush_tail()
            if rendering:
                releasable = _show_settled(renderer, sink, releasable)
            if sink.done:
                return ExitCode.OK
            time.sleep(POLL_SECONDS)
    except BrokenPipeError:
        _silence_stdout()
        return ExitCode.OK
    except BaseException:  # Ctrl-C: the message that follows starts on a line of its own
        sink.end_line()
        raise


def _show_settled(renderer: Renderer, sink: LogSink, releasable: int | None) -> int:
    """Show the lines that were out of a cursor-up's reach at the last poll and still are
    (a bar's cursor-up may come a moment after its newline); redraw the live area. Returns
    the boundary to use at the next poll."""
    if releasable is not None:
        sink.lines(renderer.release(releasable))
    if sink.live:
        sink.draw(renderer.screen())
    return renderer.releasable


def _await_log(log: Path, record: RunRecord | None) -> None:
    """Wait (a few seconds at most) until outputs.log holds the bytes the final record counts."""
    expected = record.output_bytes if record is not None else None
    deadline = time.monotonic() + LOG_CATCH_UP_SECONDS
    while expected and time.monotonic() < deadline:
        try:
            if log.stat().st_size >= expected:
                return
        except OSError:
            return
        time.sleep(POLL_SECONDS)


def _feed(piece: Piece, renderer: Renderer, sink: LogSink, rendering: bool) -> None:
    if rendering:
        sink.lines(renderer.feed(piece.data, piece.time))
    else:
        sink.raw(piece.data)


def _closing_line(run_dir: Path, record: RunRecord | None, status: Status) -> None:
    """`expyrun: failed in 41s (exit 1, ValueError: loss is nan): RUN` on stderr."""
    data = load_json(str(run_dir)) or {}
    details = []
    if record is not None and record.exit_code is not None:
        details.append(f"exit {record.exit_code}")
    if data.get("error"):
        details.append(str(data["error"]))
    took = ""
    if record is not None and record.duration_s is not None:
        took = f" in {console.duration_text(record.duration_s)}"
    said = f" ({', '.join(details)})" if details else ""
    console.info(f"{status}{took}{said}: {run_dir}")


def _stamp(options: LogOptions, record: RunRecord) -> Callable[[float | None], str] | None:
    """The prefix of each line for --timestamps / --elapsed (None: no prefix)."""
    if options.elapsed:
        start = timestamp(record.started_at)

        def elapsed(when: float | None) -> str:
            if when is None or not start:
                return " " * 13
            seconds = max(0.0, when - start)
            hours, rest = divmod(seconds, 3600)
            return f"{int(hours):02d}:{int(rest // 60):02d}:{rest % 60:06.3f} "

        return elapsed
    if not options.timestamps:
        return None

    def wall(when: float | None) -> str:
        if when is None:
            return " " * 24
        whole = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
        return f"{whole}.{int(when % 1 * 1000):03d} "

    return wall


def _silence_stdout() -> None:
    """The reader left (`| head`): point stdout at /dev/null so the exit flush cannot fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def task_log(run_dir: Path, task: int, recorded: list[dict[str, Any]] | None = None) -> Path:
    """Task `task`'s log; UsageError when the run has no such task.

    The tasks are those with a file of their own, and those run.json names (`recorded`): a
    task stopped before it wrote its file is in run.json only.
    """
    from expyrun.run.tasks import log_name, read_entries

    named = {entry.get("rank") for entry in recorded or ()}
    named.update(entry["rank"] for entry in read_entries(run_dir))
    ranks = sorted(rank for rank in named if isinstance(rank, int))
    if task not in ranks and not (task == 0 and not ranks):
        known = f"its tasks are {', '.join(map(str, ranks))}" if ranks else "it has one task: 0"
        raise UsageError(f"the run has no task {task} ({known})", hint=str(run_dir))
    return run_dir / log_name(task)
