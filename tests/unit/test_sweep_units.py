"""Sweeps in-process: dimensions, member order, flags, GPUs, the member line (issue 15)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from expyrun.cli.sweep_line import parse_launch_line
from expyrun.errors import ConfigError, UsageError
from expyrun.launch.options import LaunchOptions
from expyrun.sweep import expand as expand_module
from expyrun.sweep.dimensions import Dimension, config_dimension, parse_dimension, value_text
from expyrun.sweep.gpus import gpu_list
from expyrun.sweep.options import SweepOptions


@pytest.mark.parametrize(
    ("label", "text", "expected"),
    [
        pytest.param("a", "[0.1, 0.01]", (("0.1",), ("0.01",)), id="flow-list"),
        pytest.param("a", "0.1,0.01", (("0.1",), ("0.01",)), id="comma-text"),
        pytest.param("a", "range(3)", (("0",), ("1",), ("2",)), id="range-stop"),
        pytest.param("a", "range(5, 0, -2)", (("5",), ("3",), ("1",)), id="range-step"),
        pytest.param("a", "[[8, 8], [16, 16]]", (("[8, 8]",), ("[16, 16]",)), id="list-valued"),
        pytest.param("a", "['x,y', z]", (("x,y",), ("z",)), id="quoted-comma"),
        pytest.param(
            "a,b", "[[resnet, 256], [vit, 64]]", (("resnet", "256"), ("vit", "64")), id="pair"
        ),
    ],
)
def test_values_are_kept_as_override_texts(label: str, text: str, expected: tuple) -> None:
    assert parse_dimension(label, text).values == expected


@pytest.mark.parametrize(
    ("label", "text", "message"),
    [
        pytest.param("a", "[]", "no value to sweep over", id="empty"),
        pytest.param("a", "range(0, 0)", "no value to sweep over", id="empty-range"),
        pytest.param("a", "range(1, 2, 3, 4)", "bad range", id="range-arguments"),
        pytest.param("a", "range(0, 1, 0)", "bad range", id="range-zero-step"),
        pytest.param("a,b", "1,2", "paired dimension takes a YAML flow list", id="pair-text"),
        pytest.param("a,b", "[1, 2]", "list of 2 items", id="pair-scalars"),
        pytest.param("a,b", "[[1, 2, 3]]", "each value sets 2 keys", id="pair-width"),
        pytest.param("a,a", "[[1, 2]]", "names a key twice", id="twice"),
        pytest.param("a..b", "1", "malformed key", id="key"),
        pytest.param("a", "[1, {", "--sweep a:", id="yaml"),
    ],
)
def test_bad_values_are_usage_errors(label: str, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        parse_dimension(label, text)


def test_config_dimensions_type_back_to_texts_and_say_where() -> None:
    dimension = config_dimension("a", [0.1, True, None, "x", [1, 2]], "c.yml", 3)
    assert dimension.values == (("0.1",), ("true",), ("null",), ("x",), ("[1, 2]",))
    assert config_dimension("a", "range(2)", "c.yml", 3).values == (("0",), ("1",))
    with pytest.raises(ConfigError) as caught:
        config_dimension("a", 5, "c.yml", 3)
    assert str(caught.value).startswith("c.yml:3: key '__sweep__.a': expected a list")


def test_value_text_of_a_string_is_verbatim() -> None:
    assert value_text("{model.width}") == "{model.width}"


def test_members_are_the_product_first_dimension_slowest() -> None:
    dimensions = [
        Dimension(("a",), (("1",), ("2",))),
        Dimension(("b", "c"), (("x", "0"), ("y", "1"), ("z", "2"))),
    ]
    texts = list(expand_module._texts(dimensions, range(6)))
    assert [tuple(t for _, t in member) for member in texts] == [
        ("1", "x", "0"),
        ("1", "y", "1"),
        ("1", "z", "2"),
        ("2", "x", "0"),
        ("2", "y", "1"),
        ("2", "z", "2"),
    ]


def test_sample_is_distinct_ordered_and_seeded() -> None:
    options = SweepOptions(sample=10, seed=4)
    drawn = expand_module._positions(10**9, options)
    assert list(drawn) == sorted(set(drawn))
    assert len(drawn) == 10
    assert drawn == expand_module._positions(10**9, options)
    with pytest.raises(UsageError, match="has 3 members only"):
        expand_module._positions(3, options)


def test_seed_is_a_sweep_flag_only_beside_sample() -> None:
    launch, sweep = parse_launch_line(["c.yml", "--seed", "3", "--sweep", "lr", "1,2"])
    assert launch.overrides == ("--seed", "3")
    assert sweep.seed is None
    assert sweep.dimensions == (("lr", "1,2"),)
    launch, sweep = parse_launch_line(["c.yml", "--sample", "2", "--seed", "3"])
    assert launch.overrides == ()
    assert (sweep.sample, sweep.seed) == (2, 3)
    launch, sweep = parse_launch_line(["c.yml", "--seed", "3", "--", "--sample", "2"])
    assert launch.overrides == ("--seed", "3", "--sample", "2")
    assert (sweep.sample, sweep.seed) == (None, None)


def test_sweep_flags_after_double_dash_are_overrides() -> None:
    launch, sweep = parse_launch_line(["c.yml", "--", "--parallel", "2", "--sweep", "x"])
    assert launch.overrides == ("--parallel", "2", "--sweep", "x")
    assert not sweep.is_requested


def test_plain_launch_line_is_no_sweep() -> None:
    launch, sweep = parse_launch_line(["c.yml", "--training.lr", "0.1", "--detach"])
    assert (launch.config_path, launch.overrides, launch.detach) == (
        "c.yml",
        ("--training.lr", "0.1"),
        True,
    )
    assert launch.command == ("expyrun", "c.yml", "--training.lr", "0.1", "--detach")
    assert "--parallel" in launch.flags  # suggested for a mistyped override
    assert not sweep.is_requested


@pytest.mark.parametrize(
    ("gpus", "per_run", "expected"),
    [
        pytest.param(None, 1, [], id="none"),
        pytest.param("0,1", 1, ["0", "1"], id="list"),
        pytest.param(" 2, 3 ", 2, ["2", "3"], id="spaces"),
    ],
)
def test_gpu_lists(gpus: str | None, per_run: int, expected: list[str]) -> None:
    assert gpu_list(gpus, per_run) == expected


@pytest.mark.parametrize(
    ("gpus", "per_run", "message"),
    [
        pytest.param("0,0", 1, "listed twice", id="twice"),
        pytest.param("0,", 1, "expected ids", id="empty"),
        pytest.param("0", 2, "only 1 GPUs", id="too-few"),
    ],
)
def test_bad_gpu_lists(gpus: str, per_run: int, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        gpu_list(gpus, per_run)


def test_gpus_auto_without_nvidia_smi_is_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpu_list("auto", 1) == []


def test_gpus_auto_reads_nvidia_smi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        "#!/bin/sh\necho 'GPU 0: NVIDIA A100 (UUID: GPU-1)'\n"
        "echo 'GPU 1: NVIDIA A100 (UUID: GPU-2)'\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert gpu_list("auto", 1) == ["0", "1"]


def _expansion(tmp_path: Path, extra: str = ""):
    from expyrun.sweep.expand import expand

    (tmp_path / "pkg").mkdir(exist_ok=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "main.py").write_text("def main(name, config):\n    pass\n")
    (tmp_path / "c.yml").write_text(
        "__run__:\n  __main__: pkg.main:main\n  __output_dir__: out\n  __name__: s{seed}\nseed: 0\n"
        + extra
    )
    launch = LaunchOptions("c.yml")
    sweep = SweepOptions(dimensions=(("seed", "range(0, 4)"),))
    return expand(launch, sweep, tmp_path), launch, sweep


def test_the_plan_skips_succeeded_and_running_members_and_reruns_the_others(
    tmp_path: Path,
) -> None:
    import json

    from expyrun.sweep import record
    from expyrun.sweep.plan import make_plan

    expansion, launch, sweep = _expansion(tmp_path)
    plan = make_plan(expansion, launch, sweep, tmp_path)
    assert plan.summary() == "0 done, 0 to rerun, 4 new"
    sweep_id, folder = record.create_folder(plan.output_dir)
    record.write(
        folder,
        record.SweepRecord(
            sweep_id,
            "2026-01-01T00:00:00+00:00",
            [],
            str(tmp_path),
            "c.yml",
            [],
            [],
            [],
            {},
            plan.line_key,
            plan.definition,
            [],
        ),
    )
    statuses = [
        {"status": "succeeded"},
        {"status": "failed"},
        {"status": "running", "pid": 2**22 + 7, "host": os.uname().nodename},  # no such pid
    ]
    for member, data in zip(expansion.members, statuses, strict=False):
        run_dir = tmp_path / "out" / member.resolved.run.name / "exp.0"
        run_dir.mkdir(parents=True)
        (run_dir / "run.json").write_text(json.dumps(data))
        record.append_member(folder, member.number, member.digest, run_dir)
    resumed = make_plan(expansion, launch, sweep, tmp_path)
    assert resumed.existing is not None
    assert resumed.summary() == "1 done, 2 to rerun, 1 new"
    assert [step.last_status for step in resumed.steps] == ["succeeded", "failed", "lost", None]
    changed, _, _ = _expansion(tmp_path, "other: 1\n")
    new = make_plan(changed, launch, sweep, tmp_path)
    assert new.existing is None
    assert new.changed is not None
    assert new.changed.id == sweep_id


def test_a_member_line_says_a_signal_once() -> None:
    """Was `(SIGINT, SIGINT, then killed by SIGKILL)`: the record's `signal`, then its
    `error`, which already starts with the signal."""
    from typing import Any, cast

    from expyrun.sweep.schedule import Outcome, member_line

    member = cast(Any, type("M", (), {"number": 2, "describe": lambda self: "seed=1"}))()
    data = {"duration_s": 1.0, "signal": "SIGINT", "error": "SIGINT, then killed by SIGKILL"}
    line = member_line(Outcome(member, "DIR", "killed", data), 4)
    assert line == "[2/4] killed in 1.0s (SIGINT, then killed by SIGKILL) seed=1 -> DIR"
    data = {"duration_s": 1.0, "exit_code": 1, "error": "RuntimeError: boom"}
    line = member_line(Outcome(member, "DIR", "failed", data), 4)
    assert line == "[2/4] failed in 1.0s (exit 1, RuntimeError: boom) seed=1 -> DIR"
