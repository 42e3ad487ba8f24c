"""The `expyrun` command: argv in, one call per command, errors printed, exit code out.

This is the only module that catches `ExpyrunError` and chooses exit codes. Arguments are
parsed by hand because overrides (`--a.b value`) are open-ended and expyrun's own flags may
appear anywhere on the line; a value that looks like one of those flags is written
`--key=--debug`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from expyrun import __version__, console
from expyrun.errors import ExitCode, ExpyrunError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from expyrun.pipeline import LaunchOptions

TRACEBACK_VARIABLE = "EXPYRUN_TRACEBACK"

USAGE = (
    "usage: expyrun CONFIG [--debug] [--strict] [--print-config] [--detach | --slurm] "
    "[--grace S] [--KEY VALUE ...]"
)

HELP = f"""{USAGE}

Run an experiment from a YAML config and keep, in one run folder per run
({{output_dir}}/{{name}}/exp.{{i}}), everything needed to understand and run it again.

Launch:
  expyrun CONFIG [options] [--KEY VALUE | --KEY=VALUE ...]

  CONFIG              the YAML config; its __run__ section names the entry point
  --KEY VALUE         override a key of the config (dotted path: --model.size 18,
                      --layers.0.units 64); the value is typed like the value it replaces
  --debug             run the original code in {{output_dir}}/DEBUG/{{name}}/exp.{{i}},
                      without a code copy or frozen requirements
  --strict            turn every config warning into an error
  --print-config      print the resolved config and the run folder it would get; run nothing
  --detach            prepare the run here, then run it in the background (immune to the
                      terminal closing); prints the run folder as its last line
  --slurm             prepare the run folder now (config, code copy, requirements) and
                      submit a Slurm job that runs it; sbatch options come from
                      __run__.__slurm__ (--__run__.__slurm__.time 60); prints the job id,
                      then the run folder as the last line
  --grace SECONDS     after SIGINT/SIGTERM, wait this long for the run to end before killing
                      its processes (default 10; in a Slurm job, at most KillWait - 2)

Manage runs (RUN is a run folder; these words are commands only when no file has that name):
  expyrun ls [PATH ...] [--json] [--status S]   the runs under PATHs (default .), newest first
  expyrun logs RUN [-f]                         print outputs.log; -f follows it to the run's end
  expyrun status RUN [--json]                   the run record; exit 0 if succeeded or running
  expyrun stop RUN [--kill]                     stop a run as Ctrl-C does (--kill: no grace);
                                                a --slurm run: scancel

Other:
  -h, --help          show this help
  --version           show the version

Exit status: the run's own (0, 1 when the entry point raised, n for sys.exit(n), 128+N when it
died of signal N); 2 for usage, config and entry-point errors, found before anything is created.
"""

_BOOL_FLAGS = {
    "--debug": "debug",
    "--strict": "strict",
    "--print-config": "print_config",
    "--detach": "detach",
    "--slurm": "slurm",
}
# Subcommands, recognised only when the first argument is not an existing file, so that
# `expyrun ls` still runs a config file named `ls`. Names starting with `_` are internal.
_SUBCOMMANDS = ("ls", "logs", "status", "stop", "_supervise")
_VALUE_FLAGS = {"--grace": "grace_seconds"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]) and return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debugging = os.environ.get(TRACEBACK_VARIABLE) == "1"
    try:
        return _program(args)
    except ExpyrunError as exc:
        if debugging:
            raise
        console.error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        console.error("interrupted")
        return ExitCode.SIGNAL_BASE + 2
    except Exception:
        if debugging:
            raise
        import traceback

        traceback.print_exc()
        console.error("internal error: this is a bug in expyrun; please report it with the above")
        return ExitCode.SOFTWARE


def console_main() -> None:
    """The `expyrun` console script and `python -m expyrun`: run `main`, then exit at once.

    A finished launch has written its record and nothing is pending, so the interpreter's
    finalization (~8 ms with the supervisor's threads) is skipped with os._exit.
    """
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _program(args: list[str]) -> int:
    """The main program without error handling."""
    if not args:
        raise UsageError("missing the config file", hint=f"{USAGE}; see expyrun --help")
    is_subcommand = args[0] in _SUBCOMMANDS and not os.path.isfile(args[0])
    if not is_subcommand and ("-h" in args or "--help" in args or args == ["help"]):
        console.out(HELP)
        return ExitCode.OK
    if args[0] == "--version":
        console.out(f"expyrun {__version__}")
        return ExitCode.OK
    if is_subcommand:
        return _subcommand(args[0], args[1:])
    options = parse_launch(args)
    from expyrun import pipeline

    return pipeline.launch(options)


def _subcommand(name: str, args: list[str]) -> int:
    if name == "_supervise":
        return _supervise(args)
    from expyrun import runs

    command: Callable[[list[str]], int] = getattr(runs, name)
    return command(args)


def _supervise(args: list[str]) -> int:
    """`expyrun _supervise RUN_DIR [--notify-fd FD | --copy-output]`: run a prepared run folder.

    Internal: `--detach` starts it with `--notify-fd` (its output goes to outputs.log only), a
    `--slurm` batch script with `--copy-output` (also to the job's output file).
    """
    from pathlib import Path

    from expyrun import detach, pipeline

    if not args or args[0].startswith("-"):
        raise UsageError("_supervise needs a run folder")
    on_running = None
    terminal = False
    if args[1:2] == ["--notify-fd"] and len(args) == 3:
        on_running = detach.notifier(int(args[2]))
    elif args[1:] == ["--copy-output"]:
        terminal = True
    elif len(args) != 1:
        raise UsageError("usage: expyrun _supervise RUN_DIR [--notify-fd FD | --copy-output]")
    return pipeline.supervise_run_folder(Path(args[0]), terminal=terminal, on_running=on_running)


def parse_launch(args: list[str]) -> LaunchOptions:
    """Split a launch command line into expyrun's flags, the config file and overrides."""
    from expyrun.pipeline import LaunchOptions

    config: str | None = None
    overrides: list[str] = []
    flags: dict[str, object] = {}
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        if token in _BOOL_FLAGS:
            flags[_BOOL_FLAGS[token]] = True
            continue
        name, equals, value = token.partition("=")
        if name in _VALUE_FLAGS:
            if not equals:
                if i >= len(args):
                    raise UsageError(f"{name} needs a value")
                value = args[i]
                i += 1
            flags[_VALUE_FLAGS[name]] = _seconds(name, value)
            continue
        if config is None:
            if token.startswith("-") and token != "-":  # noqa: S105 - not a password
                raise UsageError(
                    f"expected the config file first, got '{token}'",
                    hint="expyrun CONFIG [--KEY VALUE ...]",
                )
            config = token
            continue
        overrides.append(token)
    if config is None:
        raise UsageError("missing the config file", hint=f"{USAGE}; see expyrun --help")
    return LaunchOptions(
        config_path=config,
        overrides=tuple(overrides),
        command=("expyrun", *args),
        **flags,  # type: ignore[arg-type]
    )


def _seconds(flag: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise UsageError(f"{flag} takes a number of seconds, got '{value}'") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise UsageError(f"{flag} takes a finite number of seconds >= 0, got '{value}'")
    return seconds
