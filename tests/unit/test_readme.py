"""The README stays true: its set-up commands chain in one shell, its exit codes are errors.py's."""

from __future__ import annotations

import re
from pathlib import Path

from expyrun.errors import EXIT_CODES_HELP

README = Path(__file__).resolve().parents[2] / "README.md"


def _set_up_commands() -> list[str]:
    section = README.read_text().split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", section, re.DOTALL)


def test_the_set_up_commands_leave_the_shell_where_it_was() -> None:
    """Pasted one after the other, the second runs at the repository root: any `cd` of the
    first is inside a subshell `( ... )`."""
    commands = _set_up_commands()
    assert len(commands) == 2
    for command in commands:
        outside = re.sub(r"\([^()]*\)", "", command)
        assert not re.search(r"(^|[;&|]\s*)cd\s", outside), command


def test_the_exit_codes_table_is_the_one_of_errors_py() -> None:
    text = README.read_text().split("## Exit status", 1)[1]
    rows = re.findall(r"^\| (\S+) \| (.+) \|$", text, re.MULTILINE)
    assert rows[2:] == list(EXIT_CODES_HELP)  # after the header and its separator
