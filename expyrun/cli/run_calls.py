"""The commands over recorded runs: parsed arguments in, the one call of `runs/` that does the work.

Each function takes the command's arguments after its name (parsed by `run_commands`) and
returns the exit code; errors propagate to `cli.main`. A RUN argument goes through
`run_folder` (a run folder, a name folder, or `last`).
"""

from __future__ import annotations

from expyrun import console
from expyrun.cli.sweep_line import sweep_named
from expyrun.errors import ExitCode


def run_folder(text: str) -> str:
    """The run folder a RUN argument names (a run folder, a name folder, `last`).

    Says which run it is when the argument named it otherwise (`last: outputs/a/exp.3`).
    """
    from pathlib import Path

    from expyrun.runs.naming import resolve_run

    found = resolve_run(text)
    if found != Path(text):
        console.info(f"{text}: {found}")
    return str(found)


def ls(args: list[str]) -> int:
    from expyrun.cli import run_commands

    parsed = run_commands.parse("ls", args)
    if isinstance(parsed, int):
        return parsed
    if parsed.sweep is not None:
        from expyrun.sweep.background import list_sweep

        return list_sweep(parsed.sweep, parsed.paths, parsed.json)
    from expyrun.runs.ls import View, list_runs

    keys = [key.strip() for value in parsed.keys or () for key in value.split(",")]
    view = View(tuple(k for k in keys if k), parsed.where, parsed.sort, parsed.last, parsed.changed)
    return list_runs(parsed.paths, parsed.json, parsed.status or (), view, parsed.config)


def rm(args: list[str]) -> int:
    from expyrun.cli import run_commands

    parsed = run_commands.parse("rm", args)
    if isinstance(parsed, int):
        return parsed
    from expyrun.runs.clean import remove_runs

    return remove_runs(parsed.runs, parsed.yes, parsed.dry_run)


def clean(args: list[str]) -> int:
    from expyrun.cli import run_commands

    parsed = run_commands.parse("clean", args)
    if isinstance(parsed, int):
        return parsed
    from expyrun.runs.clean import clean_runs

    selection = (parsed.status, parsed.older_than, parsed.where)
    return clean_runs(parsed.paths, *selection, parsed.yes, parsed.dry_run, parsed.config)


def logs(args: list[str]) -> int:
    from expyrun.cli import run_commands

    parsed = run_commands.parse("logs", args)
    if isinstance(parsed, int):
        return parsed
    from expyrun.runs.logs import log_options, show_log

    return show_log(run_folder(parsed.run), parsed.follow, log_options(parsed))


def status(args: list[str]) -> int:
    from expyrun.cli import run_commands

    parsed = run_commands.parse("status", args)
    if isinstance(parsed, int):
        return parsed
    from expyrun.runs.status import show_status

    return show_status(run_folder(parsed.run), parsed.json)


def stop(args: list[str]) -> int:
    from expyrun.cli import run_commands

    parsed = run_commands.parse("stop", args)
    if isinstance(parsed, int):
        return parsed
    sweep_folder = sweep_named(parsed.run)
    if sweep_folder is not None:
        from expyrun.sweep.background import stop_sweep

        return stop_sweep(sweep_folder, parsed.kill)
    from expyrun.runs.stop import stop_run

    return stop_run(run_folder(parsed.run), parsed.kill)


def tag(args: list[str]) -> int:
    from expyrun.cli import run_commands

    if "-h" in args or "--help" in args:
        parsed = run_commands.parse("tag", ["--help"])
        return parsed if isinstance(parsed, int) else ExitCode.OK
    from expyrun.runs.tags import edit_tags, split_tag_arguments

    runs, added, removed = split_tag_arguments(args)
    return edit_tags([run_folder(run) for run in runs], added, removed)


def note(args: list[str]) -> int:
    from expyrun.cli import run_commands

    parsed = run_commands.parse("note", args)
    if isinstance(parsed, int):
        return parsed
    from expyrun.runs.tags import edit_note

    return edit_note(run_folder(parsed.run), parsed.text)


def diff(args: list[str]) -> int:
    from expyrun.cli import run_commands

    parsed = run_commands.parse("diff", args)
    if isinstance(parsed, int):
        return parsed
    from expyrun.runs.diff import show_diff

    return show_diff(run_folder(parsed.run_a), run_folder(parsed.run_b), parsed.code, parsed.json)
