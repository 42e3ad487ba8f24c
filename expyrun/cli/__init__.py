"""The `expyrun` command: argv in, one typed call per command, errors printed, exit code out.

This is the only place that catches `ExpyrunError` and chooses exit codes (`main`);
`_program` is the work without error handling (httpie's `core.main` / `core.program`).
Nothing imports `cli`.

Two grammars:
- the launch line, `expyrun CONFIG [flags] [--KEY VALUE ...]`, and `rerun`/`reproduce`, which
  take a launch line after their run folder: `launch_line`, one declarative table of flags
  that also writes their help (`help`);
- the commands over recorded runs (`ls`, `logs`, `status`, `stop`, `tag`, `note`, `diff`, `rm`,
  `clean`): argparse subparsers in `run_commands`, each with its own `--help`, and one call per
  command in `run_calls`.

A word is a command only when no file of that name exists: `expyrun ls` still runs a config
file named `ls`. Commands are dispatched through the explicit table `COMMANDS`.
"""

import os
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from expyrun import __version__, console, started
from expyrun.cli import run_calls
from expyrun.cli.launch_line import LAUNCH_USAGE, parse_past_run
from expyrun.cli.sweep_line import parse_launch_line, sweep_command, sweep_supervisor
from expyrun.errors import (
    STOP_SIGNALS,
    ExitCode,
    ExpyrunError,
    Interrupted,
    UsageError,
    interrupt,
    raise_if_interrupted,
    signal_exit_code,
)

TRACEBACK_VARIABLE = "EXPYRUN_TRACEBACK"
# The commands that start a run in this process: the garbage collector stays off until the
# worker has its payload (expyrun/__main__.py); every other command turns it on first.
LAUNCHING_COMMANDS = frozenset({"_supervise", "rerun", "reproduce"})


class Command(NamedTuple):
    """A subcommand: its usage, its one-line summary, and the function that runs it."""

    usage: str
    summary: str
    run: Callable[[list[str]], int]


def main(argv: Sequence[str] | None = None, held: Iterable[int] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]) and return the exit code.

    `held`: the signal mask to restore once the stop signals are taken over, when the caller
    blocked them while expyrun was imported (expyrun/__main__.py); a signal held back is
    raised then.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debugging = os.environ.get(TRACEBACK_VARIABLE) == "1"
    _interrupt_on_stop_signals()
    try:
        if held is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        code = _program(args)
        # A stop signal whose exception was dropped (errors.interrupt) and that nothing took
        # over since (a command over runs, `logs -f`): the command still ends interrupted.
        raise_if_interrupted()
        return code
    except ExpyrunError as exc:
        if debugging:
            raise
        console.error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        console.error("interrupted")
        return signal_exit_code(2)  # SIGINT
    except Interrupted as exc:
        console.error(f"interrupted ({signal.Signals(exc.signum).name})")
        return signal_exit_code(exc.signum)
    except Exception:
        if debugging:
            raise
        import traceback

        traceback.print_exc()
        console.error("internal error: this is a bug in expyrun; please report it with the above")
        return ExitCode.SOFTWARE


def console_main(held: Iterable[int] | None = None) -> None:
    """The `expyrun` console script and `python -m expyrun`: run `main`, then exit at once.

    A finished launch has written its record and nothing is pending, so the interpreter's
    finalization (~8 ms with the supervisor's threads) is skipped with os._exit. `held`: as
    for `main`.
    """
    code = main(held=held)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _interrupt_on_stop_signals() -> None:
    """SIGTERM and SIGHUP raise `Interrupted`, SIGINT KeyboardInterrupt (errors.interrupt).

    A signal that is ignored (SIGHUP under nohup, SIGINT in a background job) stays ignored.
    """
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler):
            signal.signal(signum, interrupt)
    if sys.unraisablehook is sys.__unraisablehook__:
        sys.unraisablehook = _hide_dropped_interrupts


def _hide_dropped_interrupts(unraisable: "sys.UnraisableHookArgs") -> None:
    """Keep quiet about the exception of a dropped stop signal; print any other unraisable.

    Python prints an exception raised where it cannot propagate (a weakref callback of the
    import system, a __del__) as "Exception ignored in ...", with a traceback of expyrun's
    handler. `interrupt` remembered the signal, and `raise_if_interrupted` raises it again
    where the signals are taken over, or when the command returns: it is acted on, and the
    traceback would only alarm.
    """
    if not isinstance(unraisable.exc_value, (KeyboardInterrupt, Interrupted)):
        sys.__unraisablehook__(unraisable)


def _program(args: list[str]) -> int:
    """The main program without error handling."""
    if not args:
        raise UsageError("missing the config file", hint=f"{LAUNCH_USAGE}; see expyrun --help")
    if args[0] in COMMANDS and not os.path.isfile(args[0]):
        if args[0] not in LAUNCHING_COMMANDS:
            started()
        return COMMANDS[args[0]].run(args[1:])
    if "-h" in args or "--help" in args or args == ["help"]:
        from expyrun.cli.help import general_help

        commands = [(c.usage, c.summary) for n, c in COMMANDS.items() if not n.startswith("_")]
        console.out(general_help(commands))
        return ExitCode.OK
    if args[0] == "--version":
        console.out(f"expyrun {__version__}")
        return ExitCode.OK
    options, sweep = parse_launch_line(args)
    if sweep.is_requested:
        from expyrun.sweep.commands import run_sweep

        started()
        return run_sweep(options, sweep)
    from expyrun.launch import launch
    from expyrun.launch.options import SweepInConfig

    try:
        return launch(options)
    except SweepInConfig:  # the config has a __sweep__ section: nothing was created
        from expyrun.sweep.commands import run_sweep

        started()
        return run_sweep(options, sweep)


# --- commands ---------------------------------------------------------------------------------


def _past_run(command: str) -> Callable[[list[str]], int]:
    """The runner of `rerun` or `reproduce`: a launch line after a run folder."""

    def run(args: list[str]) -> int:
        if "-h" in args or "--help" in args:
            before = args[: args.index("--")] if "--" in args else args
            if "-h" in before or "--help" in before:
                from expyrun.cli.help import past_run_help

                spec = COMMANDS[command]
                console.out(past_run_help(command, spec.usage, spec.summary))
                return ExitCode.OK
        options = parse_past_run(command, args)
        options = options._replace(run_dir=run_calls.run_folder(options.run_dir))
        from expyrun.launch.options import SweepInConfig
        from expyrun.reproduce import commands

        try:
            return commands.rerun(options) if command == "rerun" else commands.reproduce(options)
        except SweepInConfig:
            raise UsageError(
                f"the run's config has a __sweep__ section: {command} runs one run",
                hint="rerun a member of the sweep, whose config holds its own values",
            ) from None

    return run


def _supervise(args: list[str]) -> int:
    """`expyrun _supervise RUN_DIR [--notify-fd FD | --copy-output]`: run a prepared folder.

    Internal: `--detach` starts it with `--notify-fd`, a `--slurm` batch script with
    `--copy-output`.
    """
    from expyrun.cli import run_commands

    parsed = run_commands.parse("_supervise", args)
    if isinstance(parsed, int):
        return parsed
    from expyrun.launch import supervise

    return supervise(
        Path(parsed.run), parsed.notify_fd, parsed.copy_output, parsed.task, parsed.ntasks
    )


COMMANDS: dict[str, Command] = {
    "ls": Command(
        "ls [PATH ...] [--keys K,..] [--where EXPR] [--sort KEY] [--last N] [--changed]",
        "the runs under PATHs (default .; --config CFG: its output dir), newest first; --keys "
        "adds config, result and record columns, --where filters (training.lr<0.01 and "
        "status=succeeded), --sort -result.acc orders, --changed shows the config keys that "
        "differ; also --status S, --json; --sweep ID: a sweep's members",
        run_calls.ls,
    ),
    "logs": Command(
        "logs RUN [-f] [--raw] [--tail N] [--head N] [--timestamps|--elapsed] "
        "[--stdout|--stderr] [--task N]",
        "print outputs.log (rendered in a pipe); -f follows it to the run's end",
        run_calls.logs,
    ),
    "status": Command(
        "status RUN [--json]", "the run record; exit 0 if succeeded or running", run_calls.status
    ),
    "stop": Command(
        "stop RUN|SWEEP_ID [--kill]",
        "stop a run: SIGTERM, the grace period, then kill (--kill: no grace); "
        "a --slurm run: scancel",
        run_calls.stop,
    ),
    "tag": Command(
        "tag RUN... [+NAME ...] [-NAME ...]",
        "add (+NAME) and remove (-NAME) tags of runs, also running ones; with no change, "
        "print their tags",
        run_calls.tag,
    ),
    "note": Command(
        "note RUN [TEXT]",
        'set the run\'s note ("" removes it); with no TEXT, print it',
        run_calls.note,
    ),
    "diff": Command(
        "diff RUN_A RUN_B [--code] [--json]",
        "how two runs differ: config keys, result, requirements, git state; --code: a unified "
        "diff of their code copies; exit 0 same, 1 different",
        run_calls.diff,
    ),
    "rm": Command(
        "rm RUN... [--yes] [--dry-run]",
        "remove run folders (never a running one); asks first on a terminal",
        run_calls.rm,
    ),
    "clean": Command(
        "clean [PATH ...] --status S,.. [--older-than AGE] [--where EXPR] [--yes]",
        "remove the runs that match (e.g. --status failed,killed,lost --older-than 7d); asks "
        "first on a terminal; --dry-run only lists them",
        run_calls.clean,
    ),
    "rerun": Command(
        "rerun RUN [--exact] [options] [--KEY VALUE ...]",
        "run RUN's code copy again in this environment, from RUN/raw_config.yml and the "
        "overrides (values derived from them, such as the name, follow); --exact: "
        "RUN/config.yml",
        _past_run("rerun"),
    ),
    "reproduce": Command(
        "reproduce RUN [--check] [--env PATH] [--python PATH] [PIP OPTIONS] [--KEY VALUE ...]",
        "run RUN again from RUN/config.yml, in a virtual environment synced with pip-sync to "
        "RUN/frozen_requirements.txt: built once, then cached",
        _past_run("reproduce"),
    ),
    "sweep": Command(
        "sweep resume ID [PATH ...] [--detach]",
        "run a sweep again from its record: failed, killed, lost and never-started members "
        "run in a new run folder; succeeded and running ones are skipped",
        sweep_command,
    ),
    "_sweep": Command("_sweep SWEEP_DIR [--notify-fd FD]", "", sweep_supervisor),
    "_supervise": Command("_supervise RUN_DIR [--notify-fd FD | --copy-output]", "", _supervise),
}
