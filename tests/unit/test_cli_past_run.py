"""`expyrun rerun|reproduce` command lines: flags anywhere, pip options in order, `--`."""

from __future__ import annotations

import pytest

from expyrun.cli import parse_past_run
from expyrun.errors import UsageError


def test_reproduce_flags_pip_options_and_overrides() -> None:
    options = parse_past_run(
        "reproduce",
        [
            "RUN",
            "--lr",
            "0.1",
            "--env=/e",
            "--find-links",
            "w1",
            "--no-index",
            "--debug",
            "--find-links=w2",
            "--python",
            "python3.12",
            "--grace",
            "3",
            "--model.size",
            "18",
        ],
    )
    assert options.run_dir == "RUN"
    assert options.env == "/e"
    assert options.base_python == "python3.12"
    assert options.pip_options == ("--find-links", "w1", "--no-index", "--find-links", "w2")
    assert options.launch.overrides == ("--lr", "0.1", "--model.size", "18")
    assert options.launch.debug is True
    assert options.launch.grace_seconds == 3.0
    assert options.launch.python is None
    assert options.launch.command[:3] == ("expyrun", "reproduce", "RUN")


def test_after_a_double_dash_everything_is_an_override() -> None:
    options = parse_past_run("rerun", ["RUN", "--exact", "--", "--env", "x", "--debug", "1"])
    assert options.exact is True
    assert options.launch.overrides == ("--env", "x", "--debug", "1")
    assert options.launch.debug is False


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        pytest.param("rerun", [], "missing the run folder", id="no-run"),
        pytest.param("rerun", ["RUN", "--env", "x"], None, id="env-is-an-override-for-rerun"),
        pytest.param("rerun", ["RUN", "--no-index"], None, id="pip-flag-is-an-override"),
        pytest.param("reproduce", ["RUN", "--python"], "--python needs a value", id="no-value"),
        pytest.param("reproduce", ["--lr", "1", "RUN"], "expected the run folder", id="order"),
    ],
)
def test_command_line_errors(command: str, args: list[str], message: str | None) -> None:
    if message is None:
        assert parse_past_run(command, args).launch.overrides == tuple(args[1:])
        return
    with pytest.raises(UsageError, match=message):
        parse_past_run(command, args)
