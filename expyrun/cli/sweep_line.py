"""The sweep part of the launch line (`--sweep KEY VALUES`, `--parallel`, ...) and the sweep
commands (`sweep resume`, `_sweep`, `stop SWEEP_ID`), beside `launch_line` (docs/sweeps.md).

Importing this module imports no part of `expyrun.sweep` but its options: a plain launch
reads the line through it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from expyrun.cli.launch_line import Flag, split_launch
from expyrun.errors import UsageError

if TYPE_CHECKING:
    from expyrun.launch.options import LaunchOptions
    from expyrun.sweep.options import SweepOptions

# The flags of a sweep (docs/sweeps.md). `--sweep KEY VALUES` takes two values (`_take_sweeps`);
# `--seed` is the sampling seed only beside `--sample`, else the override of a key `seed`.
SWEEP_OPTION = "--sweep"
SWEEP_FLAGS = (
    Flag(
        "--parallel",
        "parallel",
        "a sweep: run N members at once (default 1)",
        "N",
    ),
    Flag(
        "--gpus",
        "gpus",
        "a sweep: the GPUs to hand out, one set per running member in CUDA_VISIBLE_DEVICES "
        "(auto: those nvidia-smi -L lists); without --parallel, one member per set runs at once",
        "0,1|auto",
    ),
    Flag("--gpus-per-run", "gpus_per_run", "a sweep: GPUs per member (default 1)", "K"),
    Flag("--fail-fast", "fail_fast", "a sweep: start no more members after a failure"),
    Flag("--max-failures", "max_failures", "a sweep: start no more members after K failures", "K"),
    Flag("--sample", "sample", "a sweep: run K members drawn from the product", "K"),
    Flag("--seed", "seed", "with --sample: the random seed of the draw", "S"),
    Flag("--json", "json", "a sweep's --print-config: JSON instead of a table"),
    Flag(
        "--verbose",
        "verbose",
        "a sweep: stream the member's output to the terminal when one member runs at a time",
    ),
)
SWEEP_HELP = (
    "sweep KEY over VALUES: a YAML flow list ('[0.1, 0.01]'), comma-separated text (0.1,0.01) "
    "or range(START, STOP[, STEP]); K1,K2 sets keys together ('[[a, 1], [b, 2]]'); repeat for "
    "a grid (first dimension slowest). Each member is a run; see docs/sweeps.md"
)


def parse_launch_line(args: list[str]) -> tuple[LaunchOptions, SweepOptions]:
    """Split a launch command line into the launch's options and the sweep's.

    Raises:
        UsageError: as `parse_launch`; a sweep flag without its values or with a bad number.
    """
    from expyrun.sweep.options import SweepOptions

    rest, sweeps = _take_sweeps(args)
    flags: tuple[Flag, ...] = SWEEP_FLAGS
    before = rest[: rest.index("--")] if "--" in rest else rest
    if "--sample" not in before and not any(arg.startswith("--sample=") for arg in before):
        flags = tuple(flag for flag in flags if flag.name != "--seed")
    launch, found = split_launch(rest, flags, ("expyrun", *args))
    sweep = SweepOptions(
        dimensions=tuple(sweeps),
        parallel=_whole_number(found, "parallel", "--parallel"),
        gpus=_text(found.get("gpus")),
        gpus_per_run=_whole_number(found, "gpus_per_run", "--gpus-per-run") or 1,
        fail_fast=found.get("fail_fast") is True,
        max_failures=_whole_number(found, "max_failures", "--max-failures"),
        sample=_whole_number(found, "sample", "--sample"),
        seed=_integer(found, "seed", "--seed"),
        json=found.get("json") is True,
        verbose=found.get("verbose") is True,
    )
    return launch, sweep


def _take_sweeps(args: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Take each `--sweep KEY VALUES` out of a launch line (up to `--`)."""
    rest: list[str] = []
    sweeps: list[tuple[str, str]] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":  # noqa: S105 - not a password
            rest += args[i:]
            break
        if token == SWEEP_OPTION:
            if len(args) < i + 3:
                raise UsageError(
                    "--sweep needs a key and its values", hint="--sweep training.lr 0.1,0.01"
                )
            sweeps.append((args[i + 1], args[i + 2]))
            i += 3
            continue
        rest.append(token)
        i += 1
    return rest, sweeps


Found = dict[str, "str | bool | tuple[str, ...]"]


def _text(value: str | bool | tuple[str, ...] | None) -> str | None:
    return value if isinstance(value, str) else None


def _integer(found: Found, field: str, flag: str) -> int | None:
    text = _text(found.get(field))
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{flag} takes an integer, got '{text}'") from None


def _whole_number(found: Found, field: str, flag: str) -> int | None:
    number = _integer(found, field, flag)
    if number is not None and number < 1:
        raise UsageError(f"{flag} takes a whole number >= 1, got '{number}'")
    return number


# --- commands ---------------------------------------------------------------------------------


def sweep_named(text: str) -> Path | None:
    """The sweep folder `stop` was given (its id, searched from here, or its folder), if any."""
    if os.path.isdir(text) and not os.path.isfile(os.path.join(text, "sweep.json")):
        return None  # a run folder, or a name folder
    from expyrun.errors import RunFolderError
    from expyrun.sweep.record import find_sweep

    try:
        return find_sweep(text)
    except RunFolderError:
        return None


def sweep_command(args: list[str]) -> int:
    """`expyrun sweep resume ID [PATH ...] [--detach]`."""
    from expyrun.cli import run_commands

    parsed = run_commands.parse("sweep", args)
    if isinstance(parsed, int):
        return parsed
    from expyrun.sweep.commands import resume

    return resume(parsed.id, parsed.paths or ["."], parsed.detach)


def sweep_supervisor(args: list[str]) -> int:
    """`expyrun _sweep SWEEP_DIR [--notify-fd FD]`: a detached sweep's supervisor (internal)."""
    from expyrun.cli import run_commands

    parsed = run_commands.parse("_sweep", args)
    if isinstance(parsed, int):
        return parsed
    from expyrun.sweep.commands import supervise_sweep

    return supervise_sweep(Path(parsed.folder), parsed.notify_fd)
