"""The launch line's flags: a flag given a value, a mistyped flag, a key named like a flag."""

from __future__ import annotations

import pytest

from expyrun.cli.launch_line import LAUNCH_FLAGS, RERUN_FLAGS, parse_launch, parse_past_run
from expyrun.errors import UsageError


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["c.yml", "--debug", "false"],
            "--debug is expyrun's flag and takes no value, got 'false' after it (to set a config "
            "key named debug, write --debug=false or -- --debug false)",
            id="flag-given-a-value",
        ),
        pytest.param(
            ["c.yml", "--lr", "1", "--strict", "yes"],
            "--strict is expyrun's flag and takes no value, got 'yes' after it (to set a config "
            "key named strict, write --strict=yes or -- --strict yes)",
            id="after-a-complete-override",
        ),
        pytest.param(
            ["--detatch", "c.yml"],
            "expected the config file first, got '--detatch' (did you mean --detach?)",
            id="mistyped-flag-first",
        ),
        pytest.param(
            ["--merge-ouput=1", "c.yml"],
            "expected the config file first, got '--merge-ouput=1' (did you mean --merge-output?)",
            id="mistyped-flag-with-equals-first",
        ),
        # Review of issue 17: one line, whatever the token holds.
        pytest.param(
            ["c.yml", "--debug", "a\nb"],
            "--debug is expyrun's flag and takes no value, got 'a\\nb' after it (to set a config "
            "key named debug, write --debug=a\\nb or -- --debug a\\nb)",
            id="flag-given-a-value-with-a-newline",
        ),
        pytest.param(
            ["--detatch\n", "c.yml"],
            "expected the config file first, got '--detatch\\n' (did you mean --detach?)",
            id="mistyped-flag-with-a-newline-first",
        ),
    ],
)
def test_flag_mistakes_are_usage_errors_with_a_suggestion(args: list[str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_launch(args)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("args", "overrides", "debug"),
    [
        pytest.param(["c.yml", "--lr", "--debug", "0.1"], ("--lr", "0.1"), True, id="value-of-lr"),
        pytest.param(["c.yml", "--debug=false"], ("--debug=false",), False, id="key-by-equals"),
        pytest.param(["c.yml", "--", "--debug", "false"], ("--debug", "false"), False, id="dashes"),
        pytest.param(["c.yml", "--debug", "--lr", "1"], ("--lr", "1"), True, id="flag-then-key"),
    ],
)
def test_flags_and_keys_named_like_flags(
    args: list[str], overrides: tuple[str, ...], debug: bool
) -> None:
    options = parse_launch(args)
    assert options.overrides == overrides
    assert options.debug is debug


def test_the_flags_reach_the_config_engine_for_its_suggestions() -> None:
    assert parse_launch(["c.yml"]).flags == tuple(flag.name for flag in LAUNCH_FLAGS)
    rerun = parse_past_run("rerun", ["RUN"]).launch.flags
    assert rerun == tuple(flag.name for flag in (*LAUNCH_FLAGS, *RERUN_FLAGS))


def test_rerun_flag_given_a_value() -> None:
    with pytest.raises(UsageError, match="--exact is expyrun's flag and takes no value"):
        parse_past_run("rerun", ["RUN", "--exact", "1"])


def test_the_flags_given_a_value_reach_the_config_engine() -> None:
    options = parse_launch(["c.yml", "--tag", "a", "--grace=5", "--debug", "--lr", "1"])
    assert set(options.flags_with_values) == {"--tag", "--grace"}
    assert parse_launch(["c.yml", "--", "--tag", "a"]).flags_with_values == ()
