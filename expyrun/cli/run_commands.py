"""The commands over recorded runs (`ls`, `logs`, `status`, `stop`, `rm`, `clean`): argparse
subparsers.

Each has its own `--help`; a parse error is a `UsageError` (one line, exit 2), never argparse's
own exit.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from expyrun.errors import UsageError
from expyrun.run.record import Status

# What a RUN argument may be (runs/naming.py).
RUN_HELP = "a run folder, a name folder (its latest exp.N), or `last` (the newest run below .)"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message, hint=f"see {self.prog} --help")


def parse(name: str, args: list[str]) -> argparse.Namespace | int:
    """Parse a run command's arguments with its subparser; an int: --help was shown (exit 0)."""
    parser = _parser()
    try:
        namespace, extra = parser.parse_known_args([name, *_joined_values(args)])
    except SystemExit as exc:  # --help: argparse printed it and exits 0
        return int(exc.code or 0)
    if extra:
        raise UsageError(
            f"unrecognized arguments: {' '.join(extra)}", hint=f"see expyrun {name} --help"
        )
    return namespace


# Options whose value may start with "-" (`--sort -result.acc`, `--where "-x<1"` is no flag):
# argparse would take such a value for an unknown option.
_VALUE_OPTIONS = ("--sort", "--where", "--keys")


def _joined_values(args: list[str]) -> list[str]:
    """`--sort -KEY` -> `--sort=-KEY`, so that argparse reads the value as a value."""
    joined: list[str] = []
    tokens = iter(args)
    for token in tokens:
        if token in _VALUE_OPTIONS:
            value = next(tokens, None)
            joined.append(token if value is None else f"{token}={value}")
        else:
            joined.append(token)
    return joined


def _parser() -> argparse.ArgumentParser:
    """The argparse parser of the commands over recorded runs, one subparser each."""
    parser = _Parser(prog="expyrun", allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, description: str, epilog: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            description=description,
            epilog=epilog,
            allow_abbrev=False,
        )

    ls = add(
        "ls",
        "List the runs under output folders, newest first. KEYs name record fields (run, "
        "status, name, started, ended, duration, exit, signal, peak_mem, host, user, entry, "
        "tags, note, error), the entry's result (result.acc), any run.json field "
        "(record.git.commit) or a config key (training.lr; config.name for a config key named "
        "like a field).",
        "--where grammar: KEY OP VALUE, OP one of = != < <= > >= ~ (regex) !~, combined with "
        "and, or, not and parentheses: 'training.lr<0.01 and status=succeeded', 'tag=baseline', "
        "'result.acc>=0.9 or name~resnet'. Numbers compare as numbers, other values as text; a "
        "run without the key matches no comparison. See docs/run-management.md. "
        "Exit status: 0; 2 for a PATH that is no folder, a bad --where or a key no run has.",
    )
    ls.add_argument("paths", nargs="*", metavar="PATH", help="a folder to search (default .)")
    ls.add_argument(
        "--config",
        metavar="CFG",
        help="search the output dir of this config (resolved as a launch from here would)",
    )
    ls.add_argument("--json", action="store_true", help="one JSON list, for scripts")
    ls.add_argument(
        "--status",
        action="append",
        choices=[status.value for status in Status],
        help="only runs with this status (repeatable)",
    )
    ls.add_argument(
        "--sweep",
        metavar="ID",
        help="the members of sweep ID (searched under PATH), the swept keys as columns",
    )
    ls.add_argument(
        "--keys",
        action="append",
        metavar="K1,K2",
        help="add columns: config keys, result.KEY, record fields (repeatable)",
    )
    ls.add_argument("--where", metavar="EXPR", help="only runs matching EXPR (grammar below)")
    ls.add_argument("--sort", metavar="KEY", help="order by KEY (-KEY: descending)")
    ls.add_argument("--last", type=int, metavar="N", help="only the N newest runs")
    ls.add_argument(
        "--changed",
        action="store_true",
        help="add a column for each config key whose value differs between the listed runs",
    )
    confirm_epilog = (
        "Each run folder is renamed into .trash/ under its output dir, then deleted: a crash "
        "never leaves half a run; the next rm or clean finishes what is left in .trash/. "
        "Exit status: 0 when done (or nothing to do); 1 when the question was answered no; 2 "
        "for bad input, a refused run, or no terminal to ask and no --yes."
    )
    rm = add("rm", "Remove run folders (never a running run).", confirm_epilog)
    rm.add_argument("runs", nargs="+", metavar="RUN", help=RUN_HELP)
    clean = add(
        "clean",
        "Remove the runs under PATHs (default .) that match --status, --older-than and "
        "--where (never a running run).",
        confirm_epilog,
    )
    clean.add_argument("paths", nargs="*", metavar="PATH", help="a folder to search (default .)")
    clean.add_argument("--config", metavar="CFG", help="search the output dir of this config")
    clean.add_argument(
        "--status",
        action="append",
        default=[],
        metavar="S1,S2",
        help="only runs with one of these statuses, e.g. failed,killed,lost (repeatable)",
    )
    clean.add_argument(
        "--older-than",
        metavar="AGE",
        help="only runs that ended more than AGE ago: 30m, 12h, 7d, 2w",
    )
    clean.add_argument("--where", metavar="EXPR", help="only runs matching EXPR (as ls --where)")
    for command in (rm, clean):
        command.add_argument("-y", "--yes", action="store_true", help="do not ask")
        command.add_argument(
            "--dry-run", action="store_true", help="only list what would be removed"
        )
    logs = add(
        "logs",
        "Print a run's outputs.log; with -f, follow it until the run ends. Rendered (progress "
        "bars as their final line, no colour) when stdout is no terminal; on a terminal the "
        "bytes pass through, unless an option needs the rendered lines.",
        "Exit status: 0; with -f, the run's own exit code (1 if it was lost or cancelled); 2 "
        "for a folder that is no run folder, or one still being prepared.",
    )
    logs.add_argument("run", metavar="RUN", help=RUN_HELP)
    logs.add_argument("-f", "--follow", action="store_true", help="follow until the run ends")
    logs.add_argument(
        "--task",
        type=int,
        metavar="N",
        help="task N's output, of a multi-task run (srun, --nproc); 0: outputs.log",
    )
    _add_log_view_flags(logs)
    status = add(
        "status",
        "Show a run's record. Exit 0 if it succeeded or runs.",
        "Exit status: 0 if the run succeeded or has not ended; else its own exit code (1 if it "
        "was lost or cancelled); 2 for a folder that is no run folder.",
    )
    status.add_argument("run", metavar="RUN", help=RUN_HELP)
    status.add_argument("--json", action="store_true", help="the record as JSON, with `status`")
    stop = add(
        "stop",
        "Stop a run: SIGTERM to its supervisor (forwarded to the entry), the grace period, "
        "then kill. A --slurm run is "
        "stopped with scancel.",
        "Exit status: 0 once the run ended (also when it had ended already); 2 when it has "
        "not started, or is not a run; 69 when scancel "
        "fails.",
    )
    stop.add_argument("run", metavar="RUN", help=RUN_HELP + ", or a sweep id (all its members)")
    stop.add_argument("--kill", action="store_true", help="kill at once, without the grace")
    tag = add(
        "tag",
        "Add (+NAME) and remove (-NAME) tags of runs, also while they run; with no +NAME or "
        "-NAME, print each run's tags. A tag is a letter, digit or _, then up to 63 letters, "
        "digits, _, . or - (a name both added and removed is removed).",
        "Exit status: 0; 2 for an invalid tag name or a RUN that is no run (nothing changed).",
    )
    tag.add_argument("runs", nargs="+", metavar="RUN", help=RUN_HELP)
    tag.add_argument("edits", nargs="*", metavar="+NAME|-NAME", help="a tag to add or remove")
    note = add(
        "note",
        "Set a run's note, also while it runs; an empty TEXT removes it; with no TEXT, print it.",
        "Exit status: 0; 2 for a RUN that is no run.",
    )
    note.add_argument("run", metavar="RUN", help=RUN_HELP)
    note.add_argument("text", nargs="?", metavar="TEXT", help="the note (free text)")
    diff = add(
        "diff",
        "Show how two runs differ: config keys added, removed and changed (dotted keys, old -> "
        "new), result values, requirements (pip-sync style), git commit and dirty state; "
        "with --code, a unified diff of their code copies.",
        "Exit status: 0 when they are the same, 1 when they differ, 2 for bad input.",
    )
    diff.add_argument("run_a", metavar="RUN_A", help=RUN_HELP)
    diff.add_argument("run_b", metavar="RUN_B", help=RUN_HELP)
    diff.add_argument("--code", action="store_true", help="also diff the code copies")
    diff.add_argument("--json", action="store_true", help="the differences as JSON, for scripts")
    sweep = add(
        "sweep",
        "Resume a sweep: run its command again from its launch folder. Members that succeeded "
        "or are running are skipped; failed, killed, lost and never-started ones run in a new "
        "run folder. A sweep whose definition changed is started as a new sweep.",
        "Exit status: 0 if every member succeeded; 1 if one did not; 2 for bad input.",
    )
    sweep.add_argument("action", choices=["resume"], help="what to do (resume)")
    sweep.add_argument("id", metavar="ID", help="the sweep id, or its folder")
    sweep.add_argument("paths", nargs="*", metavar="PATH", help="where to look (default .)")
    sweep.add_argument("--detach", action="store_true", help="run it in the background")
    sweeping = add("_sweep", "Run a recorded sweep (internal).", "")
    sweeping.add_argument("folder", metavar="SWEEP_DIR")
    sweeping.add_argument("--notify-fd", type=int, metavar="FD")
    supervise = add("_supervise", "Run a prepared run folder (internal).", "")
    supervise.add_argument("run", metavar="RUN_DIR")
    mode = supervise.add_mutually_exclusive_group()
    mode.add_argument("--notify-fd", type=int, metavar="FD")
    mode.add_argument("--copy-output", action="store_true")
    supervise.add_argument("--task", type=int, metavar="RANK")  # --nproc: this task's rank
    supervise.add_argument("--ntasks", type=int, metavar="N")
    return parser


def _add_log_view_flags(logs: argparse.ArgumentParser) -> None:
    """The flags of `logs` that choose the view (issue 13)."""
    logs.add_argument("--raw", action="store_true", help="the stored bytes, exactly")
    logs.add_argument("--tail", type=int, metavar="N", help="the last N rendered lines")
    logs.add_argument("--head", type=int, metavar="N", help="the first N rendered lines")
    logs.add_argument(
        "--timestamps", action="store_true", help="prefix each line with its wall time"
    )
    logs.add_argument(
        "--elapsed", action="store_true", help="prefix each line with the time since the start"
    )
    streams = logs.add_mutually_exclusive_group()
    streams.add_argument("--stdout", action="store_true", help="the entry's stdout only")
    streams.add_argument("--stderr", action="store_true", help="the entry's stderr only")
