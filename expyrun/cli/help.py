"""The help of the launch line, `rerun` and `reproduce`, written from their flag tables."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from expyrun.cli.launch_line import (
    LAUNCH_FLAGS,
    LAUNCH_USAGE,
    OVERRIDES_HELP,
    REPRODUCE_FLAGS,
    RERUN_FLAGS,
    Flag,
)
from expyrun.errors import EXIT_CODES_HELP

# The help fits an 88-column terminal; names in a column of 20, their help beside them.
WIDTH = 88
_NAME_COLUMN = 20


def _entries(rows: Sequence[tuple[str, str]]) -> str:
    """Two columns: a name, then its help wrapped beside it (below it, if the name is long)."""
    indent = " " * (_NAME_COLUMN + 4)
    lines = []
    for name, text in rows:
        wrapped = textwrap.wrap(text, WIDTH - len(indent)) or [""]
        if len(name) <= _NAME_COLUMN:
            lines.append(f"  {name:<{_NAME_COLUMN}}  {wrapped[0]}")
        else:
            lines += [f"  {name}", indent + wrapped[0]]
        lines += [indent + line for line in wrapped[1:]]
    return "\n".join(lines)


def _paragraph(text: str, indent: str = "") -> str:
    return textwrap.fill(text, WIDTH, initial_indent=indent, subsequent_indent=indent)


def _flag_rows(flags: Sequence[Flag]) -> list[tuple[str, str]]:
    return [(f"{f.name} {f.metavar}" if f.metavar else f.name, f.help) for f in flags]


def exit_codes_help() -> str:
    """The `Exit status:` section of the help (errors.EXIT_CODES_HELP)."""
    return "Exit status:\n" + _entries(EXIT_CODES_HELP)


def general_help(commands: Sequence[tuple[str, str]]) -> str:
    """`expyrun --help`: the launch line, its flags, the commands (usage, summary), exit codes."""
    return "\n\n".join(
        [
            _paragraph(f"usage: {LAUNCH_USAGE}"),
            _paragraph(
                "Run an experiment from a YAML config and keep, in one run folder per run "
                "({output_dir}/{name}/exp.{i}), everything needed to understand and run it again."
            ),
            "Launch:\n  expyrun CONFIG [options] [--KEY VALUE | --KEY=VALUE ...]\n\n"
            + _entries(
                [
                    ("CONFIG", "the YAML config; its __run__ section names the entry point"),
                    ("--KEY VALUE", OVERRIDES_HELP),
                    *_flag_rows(LAUNCH_FLAGS),
                ]
            ),
            _paragraph(
                "Commands (RUN is a run folder, a name folder for its latest run, or `last` for "
                "the newest run below the current folder; these words are commands only when no "
                "file has that name; `expyrun COMMAND --help` describes each):"
            )
            + "\n"
            + "\n".join(
                f"  expyrun {usage}\n" + _paragraph(summary, " " * 6) for usage, summary in commands
            ),
            _entries([("-h, --help", "show this help"), ("--version", "show the version")]),
            exit_codes_help(),
        ]
    )


def past_run_help(command: str, usage: str, summary: str) -> str:
    """`expyrun rerun --help`, `expyrun reproduce --help`: from the flag tables."""
    own = RERUN_FLAGS if command == "rerun" else REPRODUCE_FLAGS
    return "\n\n".join(
        [
            _paragraph(f"usage: expyrun {usage}"),
            _paragraph(summary[0].upper() + summary[1:] + "."),
            f"Options of {command}:\n" + _entries(_flag_rows(own)),
            "Launch options (as for expyrun CONFIG):\n"
            + _entries([("--KEY VALUE", OVERRIDES_HELP), *_flag_rows(LAUNCH_FLAGS)]),
            exit_codes_help(),
        ]
    )
