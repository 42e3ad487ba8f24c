"""The `--where` grammar (runs/query.py): what matches, what is refused, and where."""

from __future__ import annotations

import pytest

from expyrun.runs.fields import ListedRun, changed_keys, dig
from expyrun.runs.query import MISSING, QueryError, parse_sort, parse_where, sort_key

RUN = {
    "status": "succeeded",
    "name": "resnet/lr0.01",
    "exit": 0,
    "training.lr": 0.01,
    "training.epochs": 10,
    "training.opt": "sgd",
    "model.layers": [64, 128],
    "debug": False,
    "note": None,
    "tags": ["baseline", "deep"],
    "result.acc": 0.91,
    "started": "2026-11-25T09:12:03.000+00:00",
    "version": "1.10",
}


def _lookup(key: str) -> object:
    return RUN.get(key, MISSING)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("training.lr<0.05", True, id="number-less"),
        pytest.param("training.lr<1e-3", False, id="number-exponent"),
        pytest.param("training.lr = 0.010", True, id="numbers-equal-by-value"),
        pytest.param("training.epochs>=10", True, id="int-vs-int"),
        pytest.param("exit!=0", False, id="not-equal"),
        pytest.param("status=succeeded", True, id="text-equal"),
        pytest.param("status==failed", False, id="double-equal"),
        pytest.param("training.opt<t", True, id="text-order"),
        pytest.param("version<1.9", True, id="text-value-compares-as-text"),  # "1.10" < "1.9"
        pytest.param("version='1.10'", True, id="quoted-text"),
        pytest.param("name~^resnet", True, id="regex"),
        pytest.param("name!~vit", True, id="regex-negated"),
        pytest.param("tags=baseline", True, id="list-member"),
        pytest.param("tags=other", False, id="list-not-member"),
        pytest.param("tags!=other", True, id="list-none-equal"),
        pytest.param("tags!=deep", False, id="list-one-equal"),
        pytest.param("tags~^de", True, id="list-regex"),
        pytest.param("model.layers=128", True, id="config-list-member"),
        pytest.param("tags<z", False, id="list-never-ordered"),
        pytest.param("debug=false", True, id="boolean-as-yaml-word"),
        pytest.param("note=null", True, id="null-as-yaml-word"),
        pytest.param("note>a", False, id="null-never-ordered"),
        pytest.param("note<a", False, id="null-never-ordered-either"),
        pytest.param("debug<true", False, id="boolean-never-ordered"),
        pytest.param("result.missing>0", False, id="missing-never-matches"),
        pytest.param("result.missing!=0", False, id="missing-not-equal-either"),
        pytest.param("not result.missing>0", True, id="not-missing"),
        pytest.param("started>=2026-11-01", True, id="time-as-text"),
        pytest.param("status=failed or result.acc>0.9", True, id="or"),
        pytest.param("status=succeeded and result.acc>0.95", False, id="and"),
        pytest.param("status=failed or exit=0 and tags=deep", True, id="and-binds-tighter"),
        pytest.param("(status=failed or exit=0) and not tags=deep", False, id="parentheses"),
        pytest.param("not not status=succeeded", True, id="double-not"),
        pytest.param("status=succeeded and(exit=0)", True, id="parenthesis-after-and"),
    ],
)
def test_matches(text: str, expected: bool) -> None:
    assert parse_where(text).matches(_lookup) is expected


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        pytest.param("training.lr < and x", 15, "expected a value after '<'", id="no-value"),
        pytest.param("training.lr", 12, "expected an operator", id="no-operator"),
        pytest.param("lr<1 status=x", 6, "expected 'and', 'or' or the end", id="no-joiner"),
        pytest.param("(lr<1", 6, "the '(' of column 1 is not closed", id="unclosed"),
        pytest.param("lr<1)", 5, "found ')'", id="extra-close"),
        pytest.param("lr<1 and", 9, "expected a comparison", id="dangling-and"),
        pytest.param("", 1, "expected a comparison", id="empty"),
        pytest.param("name='x", 6, "the quote ' is not closed", id="unclosed-quote"),
        pytest.param("name~(", 1, "not a regular expression", id="bad-regex"),
        pytest.param("=3", 1, "expected a key", id="no-key"),
        pytest.param("and=3", 1, "the word 'and'", id="keyword-as-key"),
        pytest.param("a=1 or not", 11, "expected a comparison", id="dangling-not"),
    ],
)
def test_grammar_errors_name_the_column_with_a_caret(text: str, column: int, message: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_where(text)
    line = str(caught.value)
    assert f"column {column}: " in line
    assert message in line
    assert line.endswith(text[: column - 1] + "^" + text[column - 1 :])
    assert "\n" not in line


def test_keys_and_unknown_key_hint() -> None:
    where = parse_where("training.lrr<0.1 and status=ok or training.lrr>1")
    assert where.key_names() == ["training.lrr", "status"]
    error = where.unknown_key("training.lrr", ["training.lr", "model.name"])
    assert str(error) == (
        "--where: column 1: unknown key 'training.lrr': no run listed has it: "
        "^training.lrr<0.1 and status=ok or training.lrr>1 (did you mean 'training.lr'?)"
    )


def test_sort_order_numbers_then_text_then_missing() -> None:
    values = ["b", 2, MISSING, 10, "a", 1.5]
    assert sorted(values, key=sort_key) == [1.5, 2, 10, "a", "b", MISSING]
    assert parse_sort("-result.acc") == ("result.acc", True)
    assert parse_sort("started") == ("started", False)
    with pytest.raises(QueryError):
        parse_sort("-")


def test_dig_and_changed_keys() -> None:
    assert dig({"a": {"b": [1, {"c": 2}]}}, "a.b.1.c") == 2
    assert dig({"a": [1]}, "a.3") is MISSING
    runs = [
        ListedRun("/x", {}, "succeeded"),
        ListedRun("/y", {}, "succeeded"),
    ]
    runs[0]._config = {"__run__": {"__code__": "/x"}, "a": 1, "b": {"c": [1]}, "same": 0}
    runs[1]._config = {"__run__": {"__code__": "/y"}, "a": 2, "b": {"c": [1]}, "same": 0, "d": 1}
    assert changed_keys(runs) == ["a", "d"]
