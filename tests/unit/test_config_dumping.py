"""config.yml and raw_config.yml: block style, sorted, and their round trips."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from config_support import resolve_text, write

from expyrun.config import dump_config, dump_raw, resolve
from expyrun.errors import ConfigWarning

TRICKY = r"""
money: "cost 5$"
template: "!P{not a reference}"
braces: '{"json": 1}'
escaped: "!P!Pdouble"
quoted_int: "123"
zeros: "007"
word_yes: "yes"
word_null: "null"
none: null
small: 1e-05
big: 1.0e+20
yaml12_float: 1e-3
yaml12_text: "5E-4"
negative: -3
date: 2024-01-02
when: 2024-01-02 10:11:12
empty: {}
empty_list: []
empty_text: ""
spaces: "  padded  "
colon: "a: b # c"
multi: "line one\nline two"
unicode: "héllo ✓"
layers: [{size: 3, act: relu, name: "{act}"}, {size: 4, inner: [[1, "{x}"]]}]
"""


def test_dump_config_round_trip(tmp_path: Path) -> None:
    first = resolve_text(tmp_path, TRICKY + "x: $HOME\nref: '{layers.1}'\n", environ={"HOME": "/h"})
    assert [w.key for w in first.warnings] == ["layers.0.name"]  # {act} names no top-level key
    stored = write(tmp_path, "stored/config.yml", dump_config(first.config))
    again = resolve(stored, cwd=tmp_path, environ={})
    assert again.config == first.config
    assert again.run == first.run
    assert again.warnings == ()
    assert first.config["escaped"] == "!Pdouble"
    assert again.config["date"] == datetime.date(2024, 1, 2)


def test_dump_config_escapes_what_resolution_would_change() -> None:
    text = dump_config({"a": "{b}", "c": "$X", "d": "!Py", "e": "plain", "l": ["{b}"]})
    assert text == "a: '!P{b}'\nc: '!P$X'\nd: '!P!Py'\ne: plain\nl:\n- '!P{b}'\n"


def test_dumps_are_block_style_sorted_without_aliases() -> None:
    shared = {"x": [1, 2]}
    text = dump_raw({"b": shared, "a": shared, "__run__": {"__name__": "n-{a}"}})
    assert text == "__run__:\n  __name__: n-{a}\na:\n  x:\n  - 1\n  - 2\nb:\n  x:\n  - 1\n  - 2\n"


def test_dumps_accept_paths_and_tuples() -> None:
    assert dump_config({"p": Path("/a/b"), "t": (1, 2)}) == "p: /a/b\nt:\n- 1\n- 2\n"


def test_long_strings_stay_on_one_line() -> None:
    value = "word " * 40
    assert dump_config({"a": value}).count("\n") == 1


def test_raw_config_with_a_new_override_rederives_the_name(tmp_path: Path) -> None:
    """README: raw_config.yml + overrides gives a new name (config.yml would keep the old one)."""
    write(tmp_path, "base.yml", "training: {lr: 0.001, seed: '{seed}'}\nseed: 1\n")
    config = write(
        tmp_path,
        "first.yml",
        "__default__: ./base.yml\n"
        "__run__: {__main__: a:b, __output_dir__: $OUT, __name__: 'first/{training.lr}'}\n",
    )
    environ = {"OUT": str(tmp_path / "out")}
    first = resolve(config, ["--seed", "2"], cwd=tmp_path, environ=environ)
    assert first.run.name == "first/0.001"
    raw_file = write(tmp_path, "run/raw_config.yml", dump_raw(first.raw))
    config_file = write(tmp_path, "run/config.yml", dump_config(first.config))

    again = resolve(raw_file, ["--training.lr", "0.1"], cwd=tmp_path, environ=environ)
    assert again.run.name == "first/0.1"
    assert again.entry_config == {"training": {"lr": 0.1, "seed": 2}, "seed": 2}
    frozen = resolve(config_file, ["--training.lr", "0.1"], cwd=tmp_path, environ=environ)
    assert frozen.run.name == "first/0.001"
    assert frozen.entry_config["training"]["lr"] == 0.1


def test_raw_config_reads_variables_again(tmp_path: Path) -> None:
    first = resolve_text(tmp_path, "data: $DATA\n", environ={"DATA": "/old"})
    raw_file = write(tmp_path, "run/raw_config.yml", dump_raw(first.raw))
    again = resolve(raw_file, cwd=tmp_path, environ={"DATA": "/new"})
    assert again.entry_config == {"data": "/new"}


# --- warnings and strict -----------------------------------------------------------------


def test_warnings_are_returned_in_order_with_their_place(tmp_path: Path) -> None:
    resolved = resolve_text(tmp_path, "a: $NOPE\nb: '{nope}'\n")
    assert all(isinstance(w, ConfigWarning) for w in resolved.warnings)
    assert [(w.path, w.line, w.key) for w in resolved.warnings] == [
        ("config.yml", 5, "a"),
        ("config.yml", 6, "b"),
    ]


def test_strict_raises_the_first_warning(tmp_path: Path) -> None:
    with pytest.raises(ConfigWarning) as caught:
        resolve_text(tmp_path, "a: $NOPE\nb: '{nope}'\n", strict=True)
    assert caught.value.key == "a"


def test_strict_without_warnings_resolves(tmp_path: Path) -> None:
    assert resolve_text(tmp_path, "a: 1\n", strict=True).entry_config == {"a": 1}


def test_resolve_leaves_its_inputs_alone(tmp_path: Path) -> None:
    environ = {"A": "1"}
    overrides = ["--a", "2"]
    resolve_text(tmp_path, "a: $A\n", overrides, environ=environ)
    assert environ == {"A": "1"}
    assert overrides == ["--a", "2"]


def test_each_resolution_is_independent(tmp_path: Path) -> None:
    first = resolve_text(tmp_path, "a: [1]\nb: {c: 1}\n", ["--a", "2,3"])
    config = tmp_path / "config.yml"
    second = resolve(str(config), cwd=str(tmp_path), environ={})
    assert first.entry_config == {"a": [2, 3], "b": {"c": 1}}
    assert second.entry_config == {"a": [1], "b": {"c": 1}}
    first.raw["b"]["c"] = 5
    assert first.config["b"]["c"] == 1
