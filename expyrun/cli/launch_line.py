"""The launch line, `expyrun CONFIG [flags] [--KEY VALUE ...]`, from one declarative table.

`rerun` and `reproduce` take a launch line after their run folder, with flags of their own.
The tables (`LAUNCH_FLAGS`, `RERUN_FLAGS`, `REPRODUCE_FLAGS`) parse them and write their help
(`cli.help`). Overrides are open-ended and expyrun's flags may appear anywhere on the line,
which argparse cannot parse faithfully: a value that looks like a flag is written
`--key=--debug`, and after `--` everything is an override. The tables also keep argparse
(~8 ms) off the launch path.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from expyrun.errors import UsageError

if TYPE_CHECKING:
    from expyrun.launch.options import LaunchOptions
    from expyrun.reproduce.commands import PastRunOptions


class Flag(NamedTuple):
    """One flag of a launch line: its name, the option field it sets, its help."""

    name: str
    field: str  # the option's field; "" for a pip option, passed to pip-sync as written
    help: str
    metavar: str | None = None  # the value it takes (None: a flag without a value)
    repeatable: bool = False  # each use adds a value (the field gets a tuple)


LAUNCH_FLAGS = (
    Flag(
        "--debug",
        "debug",
        "run the original code in {output_dir}/DEBUG/{name}/exp.{i}, without a code copy or "
        "frozen requirements",
    ),
    Flag("--strict", "strict", "turn every config warning into an error"),
    Flag(
        "--print-config",
        "print_config",
        "print the resolved config and the run folder it would get; run nothing",
    ),
    Flag(
        "--detach",
        "detach",
        "prepare the run here, then run it in the background (immune to the terminal "
        "closing); prints the run folder as its last line",
    ),
    Flag(
        "--slurm",
        "slurm",
        "prepare the run folder now (config, code copy, requirements) and submit a Slurm job "
        "that runs it; sbatch options come from __run__.__slurm__ (--__run__.__slurm__.time "
        "60); prints the job id, then the run folder as the last line",
    ),
    Flag(
        "--grace",
        "grace_seconds",
        "after SIGINT/SIGTERM, wait this long for the run to end before killing its "
        "processes (default 10; in a Slurm job, at most KillWait - 2)",
        "SECONDS",
    ),
    Flag(
        "--merge-output",
        "merged_output",
        "give the run one pipe for stdout and stderr, as `> log 2>&1`: outputs.log keeps the "
        "exact order of every write, also of subprocesses and C code; the terminal copy then "
        "goes to stdout only",
    ),
    Flag(
        "--tag",
        "tags",
        "tag the run (repeatable; a letter, digit or _, then up to 63 letters, digits, _, . "
        "or -); edit later with expyrun tag",
        "NAME",
        repeatable=True,
    ),
    Flag("--note", "note", "a note on the run, kept in run.json; edit with expyrun note", "TEXT"),
    Flag(
        "--nproc",
        "nproc",
        "start N workers of one run on this machine, as torchrun --standalone "
        "--nproc-per-node N: each gets RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, "
        "MASTER_ADDR=127.0.0.1 and a free MASTER_PORT; one run folder, outputs.log for worker 0, "
        "outputs.taskN.log for the others; a worker failing stops the others",
        "N",
    ),
)
RERUN_FLAGS = (Flag("--exact", "exact", "run RUN/config.yml instead of RUN/raw_config.yml"),)
REPRODUCE_FLAGS = (
    Flag(
        "--check",
        "check",
        "only list how this environment (or --env PATH) differs from the run's; exit 1 if it does",
    ),
    Flag(
        "--env",
        "env",
        "the virtual environment to build or sync (default: the cache, "
        "$XDG_CACHE_HOME/expyrun/envs)",
        "PATH",
    ),
    Flag(
        "--python",
        "base_python",
        "the interpreter to build the environment with (default: one of the run's Python version)",
        "PATH",
    ),
    Flag("--find-links", "", "passed to pip-sync", "DIR"),
    Flag("--no-index", "", "passed to pip-sync"),
    Flag("--index-url", "", "passed to pip-sync", "URL"),
    Flag("--extra-index-url", "", "passed to pip-sync", "URL"),
)
OVERRIDES_HELP = (
    "override a key of the config (dotted path: --model.size 18, --layers.0.units 64); the "
    "value is typed like the value it replaces. After --, every token is an override (a key "
    "named like a flag: -- --env x)"
)
LAUNCH_USAGE = "expyrun CONFIG [--debug] [--strict] [--print-config] [--detach | --slurm] "
LAUNCH_USAGE += "[--grace S] [--merge-output] [--nproc N] [--tag NAME ...] [--note TEXT] "
LAUNCH_USAGE += "[--KEY VALUE ...]"


class _Split(NamedTuple):
    """A launch line taken apart: its first positional, overrides, flags (by field), pip's."""

    positional: str | None
    overrides: tuple[str, ...]
    found: dict[str, str | bool | tuple[str, ...]]
    pip_options: tuple[str, ...]


def parse_launch(args: list[str]) -> "LaunchOptions":
    """Split a launch command line into expyrun's flags, the config file and overrides."""
    return split_launch(args)[0]


def split_launch(
    args: list[str], extra_flags: Sequence[Flag] = (), command: Sequence[str] = ()
) -> "tuple[LaunchOptions, dict[str, str | bool | tuple[str, ...]]]":
    """`parse_launch`, with more flags (a sweep's), and the flags found (by field).

    `command`: the line as typed, when `args` is what is left of it (default: `expyrun ARGS`).
    """
    split = _split(args, (*LAUNCH_FLAGS, *extra_flags), "config file", LAUNCH_USAGE)
    if split.positional is None:
        raise UsageError("missing the config file", hint=f"{LAUNCH_USAGE}; see expyrun --help")
    typed = tuple(command) or ("expyrun", *args)
    all_flags = (*LAUNCH_FLAGS, *extra_flags)
    return _launch_options(split, split.positional, typed, all_flags), split.found


def parse_past_run(command: str, args: list[str]) -> "PastRunOptions":
    """Split `expyrun rerun|reproduce RUN ...` into the run folder, flags and overrides."""
    from expyrun.reproduce.commands import PastRunOptions

    own = RERUN_FLAGS if command == "rerun" else REPRODUCE_FLAGS
    usage = f"expyrun {command} RUN [options] [--KEY VALUE ...]"
    split = _split(args, (*LAUNCH_FLAGS, *own), "run folder", usage)
    if split.positional is None:
        raise UsageError("missing the run folder", hint=f"expyrun {command} RUN [options]")
    found = split.found
    return PastRunOptions(
        run_dir=split.positional,
        launch=_launch_options(split, "", ("expyrun", command, *args), (*LAUNCH_FLAGS, *own)),
        exact=found.get("exact") is True,
        check=found.get("check") is True,
        env=_text(found.get("env")),
        base_python=_text(found.get("base_python")),
        pip_options=split.pip_options,
    )


def _checked_tags(tags: tuple[str, ...]) -> tuple[str, ...]:
    from expyrun.run.record_check import check_tags  # here: a launch without --tag skips it

    return check_tags(tags)


def _launch_options(
    split: _Split, config_path: str, command: tuple[str, ...], flags: Sequence[Flag]
) -> "LaunchOptions":
    from expyrun.launch.options import LaunchOptions

    found = split.found
    grace = _text(found.get("grace_seconds"))
    tags = found.get("tags")
    nproc = _text(found.get("nproc"))
    return LaunchOptions(
        config_path=config_path,
        overrides=split.overrides,
        debug=found.get("debug") is True,
        strict=found.get("strict") is True,
        print_config=found.get("print_config") is True,
        grace_seconds=None if grace is None else _seconds("--grace", grace),
        detach=found.get("detach") is True,
        slurm=found.get("slurm") is True,
        merged_output=found.get("merged_output") is True,
        command=command,
        tags=_checked_tags(tags) if isinstance(tags, tuple) else (),
        note=_text(found.get("note")),
        nproc=0 if nproc is None else _count("--nproc", nproc),
        flags=tuple(flag.name for flag in flags),
        flags_with_values=tuple(
            f.name for f in flags if f.metavar and f.field and f.field in found
        ),
    )


def _text(value: str | bool | tuple[str, ...] | None) -> str | None:
    return value if isinstance(value, str) else None


def _split(args: list[str], flags: Sequence[Flag], first: str, usage: str) -> _Split:
    """The first positional argument, the overrides, and the flags found (by field name).

    After `--` (once the positional is found), every token is an override. Pip options (flags
    without a field) are collected in order, as written.
    """
    by_name = {flag.name: flag for flag in flags}
    positional: str | None = None
    overrides: list[str] = []
    found: dict[str, str | bool | tuple[str, ...]] = {}
    pip_options: list[str] = []
    pending = False  # the last override token is a `--KEY` waiting for its value
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        name, equals, value = token.partition("=")
        flag = by_name.get(name if equals else token)
        if token == "--" and positional is not None:  # noqa: S105 - not a password
            overrides += args[i:]
            break
        if flag is not None and flag.metavar is None and not equals:
            if positional is not None and not pending and _is_value(args, i):
                raise flag_with_a_value(flag.name, args[i])
            if flag.field:
                found[flag.field] = True
            else:
                pip_options.append(token)
        elif flag is not None and flag.metavar is not None:
            if not equals:
                if i >= len(args):
                    raise UsageError(f"{flag.name} needs a value")
                value, i = args[i], i + 1
            if flag.field and flag.repeatable:
                earlier = found.get(flag.field)
                found[flag.field] = (*(earlier if isinstance(earlier, tuple) else ()), value)
            elif flag.field:
                found[flag.field] = value
            else:
                pip_options += [flag.name, value]
        elif positional is None:
            positional = _positional(token, flags, first, usage)
        else:
            # An override `--KEY` without `=` waits for its value (the next override token).
            pending = not pending and token.startswith("--") and "=" not in token
            overrides.append(token)
    return _Split(positional, tuple(overrides), found, tuple(pip_options))


def _positional(token: str, flags: Sequence[Flag], first: str, usage: str) -> str:
    """`token` as the first positional (the config file, the run folder), never a flag."""
    if token.startswith("-") and token != "-":  # noqa: S105 - not a password
        hint = suggest_flag(token, flags) or usage
        raise UsageError(f"expected the {first} first, got '{_one_line(token)}'", hint=hint)
    return token


def _is_value(args: list[str], i: int) -> bool:
    """Whether `args[i]` exists and reads as a value (`false`), not a flag or an override."""
    return i < len(args) and not args[i].startswith("-")


def flag_with_a_value(name: str, value: str) -> UsageError:
    """`expyrun c.yml --debug false`: a flag without a value, given one (a key named alike?)."""
    key = name[2:]
    value = _one_line(value)
    return UsageError(
        f"{name} is expyrun's flag and takes no value, got '{value}' after it",
        hint=f"to set a config key named {key}, write --{key}={value} or -- --{key} {value}",
    )


def _one_line(text: str) -> str:
    """`text` for a one-line message: a token may hold a newline (`\\n`)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def suggest_flag(token: str, flags: Sequence[Flag]) -> str | None:
    """`did you mean --detach?` for a token close to one of `flags` (`--detatch`), or None."""
    import difflib  # only when a hint is needed: it costs start-up time

    name = token.partition("=")[0]
    matches = difflib.get_close_matches(name, [flag.name for flag in flags], n=1, cutoff=0.8)
    return f"did you mean {matches[0]}?" if matches else None


def _seconds(flag: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise UsageError(f"{flag} takes a number of seconds, got '{value}'") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise UsageError(f"{flag} takes a finite number of seconds >= 0, got '{value}'")
    return seconds


def _count(flag: str, value: str) -> int:
    # isascii: `²` is a digit to str.isdigit, not to int(); int() refuses past 4300 digits.
    if not (value.isascii() and value.isdigit()) or not value.strip("0"):
        raise UsageError(f"{flag} takes a number of workers >= 1, got '{_one_line(value)}'")
    if len(value) > 18:
        raise UsageError(f"{flag} takes a number of workers >= 1, got a {len(value)}-digit number")
    return int(value)
