"""Dotted key paths over mappings and lists."""

from __future__ import annotations

import pytest

from expyrun.config.keys import (
    MissingKey,
    closest,
    copy_value,
    format_key,
    get,
    list_index,
    normalize,
    set_value,
    split_key,
    walk,
)

CONFIG = {"model": {"name": "x", "layers": [{"size": 1}, {"size": 2}]}, "lr": 0.1, "e": {}}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param(("lr",), 0.1, id="top"),
        pytest.param(("model", "name"), "x", id="nested"),
        pytest.param(("model", "layers", 1, "size"), 2, id="int-index"),
        pytest.param(("model", "layers", "1", "size"), 2, id="text-index"),
        pytest.param(("e",), {}, id="empty-mapping"),
        pytest.param((), CONFIG, id="root"),
    ],
)
def test_get(path: tuple, expected: object) -> None:
    assert get(CONFIG, path) == expected


@pytest.mark.parametrize(
    ("path", "depth"),
    [
        pytest.param(("nope",), 0, id="missing-top"),
        pytest.param(("model", "nope"), 1, id="missing-nested"),
        pytest.param(("model", "layers", 2), 2, id="index-out-of-range"),
        pytest.param(("model", "layers", "-1"), 2, id="negative-index"),
        pytest.param(("lr", "x"), 1, id="below-a-scalar"),
        pytest.param(("model", "layers", "x"), 2, id="name-in-a-list"),
    ],
)
def test_get_missing_says_how_far_it_got(path: tuple, depth: int) -> None:
    with pytest.raises(MissingKey) as caught:
        get(CONFIG, path)
    assert caught.value.depth == depth


def test_normalize_turns_indices_into_ints() -> None:
    assert normalize(CONFIG, ("model", "layers", "0", "size")) == ("model", "layers", 0, "size")


def test_set_value_in_mappings_and_lists() -> None:
    config = copy_value(CONFIG)
    set_value(config, ("model", "layers", 0, "size"), 9)
    set_value(config, ("lr",), 1.0)
    assert config["model"]["layers"][0] == {"size": 9}
    assert config["lr"] == 1.0
    assert CONFIG["model"]["layers"][0] == {"size": 1}
    with pytest.raises(MissingKey):
        set_value(config, ("model", "layers", 5), 1)


def test_walk_lists_every_path_parents_first() -> None:
    assert [format_key(path) for path, _ in walk(CONFIG)] == [
        "model",
        "model.name",
        "model.layers",
        "model.layers.0",
        "model.layers.0.size",
        "model.layers.1",
        "model.layers.1.size",
        "lr",
        "e",
    ]


def test_closest() -> None:
    assert closest("model.nmae", CONFIG)[0] == "model.name"
    assert closest("model.layers.3.size", CONFIG, leaves=True)[:2] == [
        "model.layers.1.size",
        "model.layers.0.size",
    ]


@pytest.mark.parametrize(
    ("dotted", "expected"),
    [
        pytest.param("a.b.c", ("a", "b", "c"), id="parts"),
        pytest.param("a", ("a",), id="one"),
        pytest.param("a..b", None, id="empty-part"),
        pytest.param(".a", None, id="leading-dot"),
        pytest.param("", None, id="empty"),
        # Issue 17: `\.` is a dot inside a key.
        pytest.param(r"kafka.bootstrap\.servers", ("kafka", "bootstrap.servers"), id="escaped"),
        pytest.param(r"a\.b\.c", ("a.b.c",), id="all-escaped"),
        pytest.param(r"a\.", ("a.",), id="escaped-last"),
        pytest.param(r"a\b.c", ("a\\b", "c"), id="other-backslash-kept"),
        pytest.param(r"\..a", (".", "a"), id="a-key-that-is-a-dot"),
    ],
)
def test_split_key(dotted: str, expected: tuple | None) -> None:
    assert split_key(dotted) == expected
    if expected is not None:
        assert split_key(format_key(expected)) == expected


def test_format_key_escapes_dots_inside_keys() -> None:
    assert format_key(("kafka", "bootstrap.servers", 1)) == r"kafka.bootstrap\.servers.1"


@pytest.mark.parametrize(
    ("part", "expected"),
    [("0", 0), ("12", 12), (3, 3), ("-1", None), (-1, None), ("x", None), ("\u0661", None)],
)
def test_list_index(part: str | int, expected: int | None) -> None:
    assert list_index(part) == expected
