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
from expyrun.errors import ExitCode, ExpyrunError, UsageError, signal_exit_code

TYPE_CHECKING = False
if TYPE_CHECKING:
    from expyrun.pipeline import LaunchOptions
    from expyrun.reproduce import PastRunOptions

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

Run a past run again, from its code copy (RUN is a run folder; launch options apply):
  expyrun rerun RUN [--exact] [--KEY VALUE ...]
                      in this environment, from RUN/raw_config.yml and the overrides (values
                      derived from them, such as the name, follow); --exact: RUN/config.yml
  expyrun reproduce RUN [--env PATH] [--python PATH] [PIP OPTIONS] [--KEY VALUE ...]
                      from RUN/config.yml, in a virtual environment synced with pip-sync to
                      RUN/frozen_requirements.txt: built once, then cached (under
                      $XDG_CACHE_HOME/expyrun/envs, or at PATH); --python: the interpreter
                      to build it with (default: one of the run's Python version)
  expyrun reproduce RUN --check [--env PATH]
                      list how this environment (or PATH) differs from the run's; exit 1 if
                      it does
  PIP OPTIONS         --find-links DIR, --no-index, --index-url URL, --extra-index-url URL
  --                  what follows is overrides only (a key named like a flag: -- --env x)

Other:
  -h, --help          show this help
  --version           show the version

Exit status: the run's own (0, 1 when the entry point raised, n for sys.exit(n), 128+N when it
died of signal N); 2 for usage, config and entry-point errors, found before anything is created;
69 when an external tool or service fails (sbatch, scontrol, venv, pip-sync, the package index);
70 for a bug in expyrun; 1 for reproduce --check when the environment differs.
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
_SUBCOMMANDS = ("ls", "logs", "status", "stop", "rerun", "reproduce", "_supervise")
_VALUE_FLAGS = {"--grace": "grace_seconds"}
# Flags of `rerun` and `reproduce` besides the launch flags. Pip options go to pip-sync as they are.
_PAST_RUN_BOOL_FLAGS = {
    "rerun": {"--exact": "exact"},
    "reproduce": {"--check": "check"},
}
_PAST_RUN_VALUE_FLAGS = {"rerun": {}, "reproduce": {"--env": "env", "--python": "base_python"}}
_PIP_BOOL_FLAGS = ("--no-index",)
_PIP_VALUE_FLAGS = ("--find-links", "--index-url", "--extra-index-url")


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
        return signal_exit_code(2)  # SIGINT
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
    if name in ("rerun", "reproduce"):
        from expyrun import reproduce

        if args[:1] in (["-h"], ["--help"]):
            console.out(HELP)
            return ExitCode.OK

        past_run: Callable[[PastRunOptions], int] = getattr(reproduce, name)
        return past_run(parse_past_run(name, args))
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

    config, overrides, flags = _split(args, _BOOL_FLAGS, _VALUE_FLAGS)
    if config is None:
        raise UsageError("missing the config file", hint=f"{USAGE}; see expyrun --help")
    return LaunchOptions(
        config_path=config,
        overrides=tuple(overrides),
        command=("expyrun", *args),
        **flags,  # type: ignore[arg-type]
    )


def parse_past_run(command: str, args: list[str]) -> PastRunOptions:
    """Split `expyrun rerun|reproduce RUN ...` into the run folder, flags and overrides."""
    from expyrun.pipeline import LaunchOptions
    from expyrun.reproduce import PastRunOptions

    bool_flags = {**_BOOL_FLAGS, **_PAST_RUN_BOOL_FLAGS[command]}
    value_flags = {**_VALUE_FLAGS, **_PAST_RUN_VALUE_FLAGS[command]}
    pip_flags = command == "reproduce"
    usage = f"expyrun {command} RUN [options] [--KEY VALUE ...]"
    run_dir, overrides, flags = _split(
        args, bool_flags, value_flags, pip_flags, first="run folder", usage=usage
    )
    if run_dir is None:
        raise UsageError("missing the run folder", hint=f"expyrun {command} RUN [options]")
    launch_flags = {key: flags.pop(key) for key in list(flags) if key in LaunchOptions._fields}
    launch = LaunchOptions(
        config_path="",
        overrides=tuple(overrides),
        command=("expyrun", command, *args),
        **launch_flags,  # type: ignore[arg-type]
    )
    return PastRunOptions(run_dir=run_dir, launch=launch, **flags)  # type: ignore[arg-type]


def _split(
    args: list[str],
    bool_flags: dict[str, str],
    value_flags: dict[str, str],
    pip_flags: bool = False,
    first: str = "config file",
    usage: str = "expyrun CONFIG [--KEY VALUE ...]",
) -> tuple[str | None, list[str], dict[str, object]]:
    """The first positional argument, the overrides, and the flags found (by field name).

    After `--`, every token is an override. With `pip_flags`, pip's options are collected in
    order under `pip_options`.
    """
    positional: str | None = None
    overrides: list[str] = []
    flags: dict[str, object] = {}
    pip_options: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        if token == "--" and positional is not None:  # noqa: S105 - not a password
            overrides += args[i:]
            break
        if token in bool_flags:
            flags[bool_flags[token]] = True
        elif pip_flags and token in _PIP_BOOL_FLAGS:
            pip_options.append(token)
        elif (taken := _value_flag(args, i, value_flags, pip_flags)) is not None:
            name, value, i = taken
            if name in _VALUE_FLAGS:
                flags[value_flags[name]] = _seconds(name, value)
            elif name in value_flags:
                flags[value_flags[name]] = value
            else:
                pip_options += [name, value]
        elif positional is None:
            if token.startswith("-") and token != "-":  # noqa: S105 - not a password
                raise UsageError(f"expected the {first} first, got '{token}'", hint=usage)
            positional = token
        else:
            overrides.append(token)
    if pip_options:
        flags["pip_options"] = tuple(pip_options)
    return positional, overrides, flags


def _value_flag(
    args: list[str], i: int, value_flags: dict[str, str], pip_flags: bool
) -> tuple[str, str, int] | None:
    """`args[i - 1]` as a flag taking a value (`--flag value`, `--flag=value`), else None.

    Returns the flag, its value and the index of the next token.
    """
    name, equals, value = args[i - 1].partition("=")
    if name not in value_flags and not (pip_flags and name in _PIP_VALUE_FLAGS):
        return None
    if equals:
        return name, value, i
    if i >= len(args):
        raise UsageError(f"{name} needs a value")
    return name, args[i], i + 1


def _seconds(flag: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise UsageError(f"{flag} takes a number of seconds, got '{value}'") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise UsageError(f"{flag} takes a finite number of seconds >= 0, got '{value}'")
    return seconds
