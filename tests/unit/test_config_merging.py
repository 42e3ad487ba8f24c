"""Merging: deep merge, `__new_key_policy__`, type-change warnings."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from config_support import resolve_text, warning_texts, write

from expyrun.config.merging import merge
from expyrun.config.report import Report
from expyrun.errors import ConfigError, ConfigWarning


def test_merge_is_deep_lists_are_replaced_and_inputs_unchanged() -> None:
    base = {"m": {"x": 1, "y": {"p": 1}}, "l": [1, 2, 3], "s": 1}
    top = {"m": {"y": {"q": 2}}, "l": [9]}
    before = copy.deepcopy((base, top))
    report = Report(strict=False)
    merged = merge(base, top, policy="pass", top_origins={}, report=report)
    assert merged == {"m": {"x": 1, "y": {"p": 1, "q": 2}}, "l": [9], "s": 1}
    assert (base, top) == before
    assert report.warnings == []


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        pytest.param(
            "warn",
            [
                "config.yml:7: key 'n': new key, absent from the defaults",
                "config.yml:9: key 'm.q': new key, absent from the defaults",
            ],
            id="warn",
        ),
        pytest.param("pass", [], id="pass"),
    ],
)
def test_new_keys_follow_the_policy_at_every_level(
    tmp_path: Path, policy: str, expected: list[str]
) -> None:
    write(tmp_path, "base.yml", "m: {p: 1}\n")
    resolved = resolve_text(
        tmp_path,
        f"__default__: ./base.yml\n__new_key_policy__: {policy}\nn: {{deep: 1}}\nm:\n  q: 5\n",
    )
    assert resolved.entry_config == {"m": {"p": 1, "q": 5}, "n": {"deep": 1}}
    assert warning_texts(resolved) == expected


def test_warn_is_the_default_policy(tmp_path: Path) -> None:
    write(tmp_path, "base.yml", "a: 1\n")
    resolved = resolve_text(tmp_path, "__default__: ./base.yml\nb: 2\n")
    assert warning_texts(resolved) == ["config.yml:6: key 'b': new key, absent from the defaults"]


def test_raise_policy_names_the_nested_key_and_suggests(tmp_path: Path) -> None:
    write(tmp_path, "base.yml", "m: {lr: 1}\n")
    with pytest.raises(ConfigError) as caught:
        resolve_text(tmp_path, "__default__: ./base.yml\n__new_key_policy__: raise\nm: {lrr: 2}\n")
    assert not isinstance(caught.value, ConfigWarning)
    assert str(caught.value) == (
        "config.yml:7: key 'm.lrr': new key, absent from the defaults "
        "(__new_key_policy__ is 'raise') (did you mean 'm.lr'?)"
    )


def test_dunder_keys_are_always_accepted(tmp_path: Path) -> None:
    write(tmp_path, "base.yml", "m: {p: 1}\n")
    resolved = resolve_text(
        tmp_path,
        "__default__: ./base.yml\n__new_key_policy__: raise\n__extra__: 1\nm: {__x__: 2}\n",
    )
    assert resolved.entry_config == {"m": {"p": 1, "__x__": 2}, "__extra__": 1}


def test_defaults_merge_together_without_new_key_warnings(tmp_path: Path) -> None:
    write(tmp_path, "one.yml", "a: 1\n")
    write(tmp_path, "two.yml", "b: 2\n")
    resolved = resolve_text(
        tmp_path, "__default__: [./one.yml, ./two.yml]\n__new_key_policy__: raise\n"
    )
    assert resolved.entry_config == {"a": 1, "b": 2}
    assert resolved.warnings == ()


def test_the_policy_of_a_default_governs_only_that_file(tmp_path: Path) -> None:
    write(tmp_path, "base.yml", "a: 1\n")
    write(tmp_path, "mid.yml", "__default__: ./base.yml\n__new_key_policy__: pass\nb: 2\n")
    resolved = resolve_text(tmp_path, "__default__: ./mid.yml\nc: 3\n")
    assert warning_texts(resolved) == ["config.yml:6: key 'c': new key, absent from the defaults"]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        pytest.param("1", "1.5", "integer -> float", id="int-to-float"),
        pytest.param("1.5", "1", "float -> integer", id="float-to-int"),
        pytest.param("true", "1", "boolean -> integer", id="bool-to-int"),
        pytest.param("1", "true", None, id="int-to-bool-no-warning"),
        pytest.param("null", "1", "null -> integer", id="null-to-int"),
        pytest.param("1", "null", "integer -> null", id="int-to-null"),
        pytest.param("{x: 1}", "1", "mapping -> integer", id="mapping-to-scalar"),
        pytest.param("1", "{x: 1}", "integer -> mapping", id="scalar-to-mapping"),
        pytest.param("[1]", "{x: 1}", "list -> mapping", id="list-to-mapping"),
        pytest.param("[1]", "[a, b]", None, id="list-to-list"),
        pytest.param("[1]", "'{other}'", None, id="reference-has-no-type-yet"),
        pytest.param("'$HOME'", "1", None, id="variable-has-no-type-yet"),
    ],
)
def test_type_changes_warn(tmp_path: Path, old: str, new: str, message: str | None) -> None:
    write(tmp_path, "base.yml", f"k: {old}\nother: [1]\n")
    resolved = resolve_text(
        tmp_path, f"__default__: ./base.yml\nk: {new}\n", environ={"HOME": "/h"}
    )
    expected = [f"config.yml:6: key 'k': overridden with a different type: {message}"]
    assert warning_texts(resolved) == (expected if message else [])


def test_a_scalar_replacing_a_mapping_replaces_all_of_it(tmp_path: Path) -> None:
    write(tmp_path, "base.yml", "m: {x: 1, y: 2}\n")
    resolved = resolve_text(tmp_path, "__default__: ./base.yml\nm: 3\n")
    assert resolved.entry_config == {"m": 3}


def test_type_change_between_defaults_warns_naming_the_later_file(tmp_path: Path) -> None:
    write(tmp_path, "one.yml", "a: 1\n")
    write(tmp_path, "two.yml", "a: x\n")
    resolved = resolve_text(tmp_path, "__default__: [./one.yml, ./two.yml]\n")
    assert warning_texts(resolved) == [
        "two.yml:1: key 'a': overridden with a different type: integer -> string"
    ]
