"""Interpolation: environment variables, references, the `!P` escape, cycles, warnings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from config_support import resolve_text, warning_texts

from expyrun.config import resolve
from expyrun.config.variables import convert_text, expand_variables
from expyrun.errors import ConfigError, ConfigWarning

ENVIRON = {
    "INTV": "123",
    "FLT": "0.5",
    "STRV": "abc",
    "BOOLV": "TRUE",
    "HOME": "/home/u",
    "V1": "one",
    "V10": "ten",
    "_U": "under",
    "ZERO": "007",
    "UNDERSCORED": "1_000",
    "NAN": "nan",
    "TRAILING": "1.10",
    "SPACED": " 5 ",
    "NEG": "-3",
    "SMALL": "1e-05",
    "NULLV": "null",
    "LISTV": "[1,2]",
    "REFV": "{target}",
    "X1": "007",
    "X5": "${X1}",
    "DOLLAR": "$X1",
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("$INTV", 123, id="int-converted"),
        pytest.param("${FLT}", 0.5, id="braced-float-converted"),
        pytest.param("x_${STRV}_y", "x_abc_y", id="braced-inside-text"),
        pytest.param("$BOOLV", True, id="bool-any-case"),
        pytest.param("$HOME/x", "/home/u/x", id="path"),
        pytest.param('"${INTV}${INTV}"', 123123, id="two-then-converted"),
        pytest.param('"$5"', "$5", id="digit-is-not-a-name"),
        pytest.param('"cost 5$"', "cost 5$", id="trailing-dollar"),
        pytest.param('"${X"', "${X", id="unclosed-brace"),
        pytest.param("$_U", "under", id="underscore-first-is-a-name"),
        # Defect 1: names could not contain the digit 0.
        pytest.param("$V10", "ten", id="zero-in-name"),
        pytest.param("${V10}", "ten", id="zero-in-braced-name"),
        # Defect 19: the conversion is lossless only.
        pytest.param("$ZERO", "007", id="leading-zeros-stay-text"),
        pytest.param("$UNDERSCORED", "1_000", id="underscores-stay-text"),
        pytest.param("$NAN", "nan", id="nan-stays-text"),
        pytest.param("$TRAILING", "1.10", id="trailing-zero-stays-text"),
        pytest.param("$SPACED", " 5 ", id="spaces-stay-text"),
        pytest.param("$NEG", -3, id="negative-int"),
        pytest.param("$SMALL", 1e-05, id="float-printed-alike"),
        pytest.param("$NULLV", "null", id="null-stays-text"),
        pytest.param("$LISTV", "[1,2]", id="list-stays-text"),
        # Defect 20: a variable's value is not expanded again.
        pytest.param("$DOLLAR", "$X1", id="no-double-expansion"),
        pytest.param("$X5", "$from-config", id="no-double-expansion-braced-then-reference"),
        pytest.param("$REFV", 42, id="value-then-references"),
        pytest.param('"!P$INTV"', "$INTV", id="escaped"),
    ],
)
def test_environment_variables(tmp_path: Path, value: str, expected: object) -> None:
    resolved = resolve_text(tmp_path, f"v: {value}\ntarget: 42\nX1: from-config\n", environ=ENVIRON)
    assert resolved.entry_config["v"] == expected
    assert resolved.warnings == ()


@pytest.mark.parametrize(
    ("value", "expected", "missing"),
    [
        pytest.param("$MISSING", "", ["MISSING"], id="missing"),
        pytest.param("x_$STRV_y", "x_", ["STRV_y"], id="greedy-name"),
        pytest.param("$V20", "", ["V20"], id="zero-in-missing-name"),
        pytest.param('"$A-$A"', "-", ["A", "A"], id="one-warning-per-occurrence"),
    ],
)
def test_missing_variables_warn(
    tmp_path: Path, value: str, expected: object, missing: list[str]
) -> None:
    resolved = resolve_text(tmp_path, f"v: {value}\n", environ=ENVIRON)
    assert resolved.entry_config["v"] == expected
    assert warning_texts(resolved) == [
        f"config.yml:5: key 'v': environment variable {name} is not set: replaced by ''"
        for name in missing
    ]


# Review of issue 17: OmegaConf writes a reference `${lr}`; here it reads a variable.
def test_a_missing_variable_named_like_a_key_hints_at_the_reference(tmp_path: Path) -> None:
    resolved = resolve_text(tmp_path, 'lr: 0.1\nv: "${lr}"\n', environ=ENVIRON)
    assert resolved.entry_config["v"] == ""
    assert warning_texts(resolved) == [
        "config.yml:6: key 'v': environment variable lr is not set: replaced by '' (a "
        "reference to the key lr is written {lr})"
    ]


def test_expyrun_cwd_is_the_launch_directory(tmp_path: Path) -> None:
    resolved = resolve_text(tmp_path, "here: $EXPYRUN_CWD\n", environ={"EXPYRUN_CWD": "/else"})
    assert resolved.entry_config["here"] == str(tmp_path)


def test_os_environ_is_read_never_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPY_TEST_VAR", "7")
    monkeypatch.delenv("EXPYRUN_CWD", raising=False)
    path = tmp_path / "c.yml"
    path.write_text("__run__: {__main__: a:b, __output_dir__: o, __name__: n}\nv: $EXPY_TEST_VAR\n")
    assert resolve(path, cwd=tmp_path).entry_config == {"v": 7}
    assert "EXPYRUN_CWD" not in os.environ


REFERENCES = """
lr: 0.001
lst: [10, 10]
flag: true
none: null
model: {name: resnet, size: 18}
k0: 5
layers: [{size: 8}, {size: "{lr}"}]
"""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param('"{model.size}"', 18, id="whole-keeps-int"),
        pytest.param('"{lst}"', [10, 10], id="whole-keeps-list"),
        pytest.param('"{flag}"', True, id="whole-keeps-bool"),
        pytest.param('"{none}"', None, id="whole-keeps-null"),
        pytest.param('"{model}"', {"name": "resnet", "size": 18}, id="whole-mapping"),
        pytest.param('"s{model.size}"', "s18", id="inside-text"),
        pytest.param(
            '"{model.name}-{lr}-{lst}-{flag}-{none}"',
            "resnet-0.001-[10, 10]-True-None",
            id="python-formatting",
        ),
        pytest.param('"{{lr}}"', "{0.001}", id="no-brace-escaping"),
        pytest.param('["{lr}", "x{lr}"]', [0.001, "x0.001"], id="in-a-list"),
        pytest.param('[[1, "{flag}"]]', [[1, True]], id="in-nested-lists"),
        pytest.param('"{ lr }"', "{ lr }", id="spaces-are-literal"),
        pytest.param('"{k-1}"', "{k-1}", id="dash-is-literal"),
        pytest.param('"{}"', "{}", id="empty-braces-are-literal"),
        pytest.param("'{\"a\": 1}'", '{"a": 1}', id="json-is-literal"),
        pytest.param('"{k0}"', 5, id="zero-in-key"),  # defect 2
        pytest.param('"{layers.1.size}"', 0.001, id="into-a-list-of-mappings"),
        pytest.param('"{layers.0}"', {"size": 8}, id="a-list-item"),
        pytest.param('"{__run__.__name__}"', "exp", id="run-section"),
        pytest.param('"m={model}"', "m={'name': 'resnet', 'size': 18}", id="mapping-as-text"),
        pytest.param('"!P{lr}"', "{lr}", id="escape"),
        pytest.param('"x!P{lr}"', "x!P0.001", id="escape-only-at-start"),
        pytest.param('["!P{lr}", "{lr}"]', ["{lr}", 0.001], id="escape-per-item"),
    ],
)
def test_references(tmp_path: Path, value: str, expected: object) -> None:
    resolved = resolve_text(tmp_path, REFERENCES + f"v: {value}\n")
    assert resolved.entry_config["v"] == expected
    assert resolved.warnings == ()


def test_lists_of_mappings_are_resolved(tmp_path: Path) -> None:
    """Defect 8: items of a list of mappings were passed through unresolved."""
    resolved = resolve_text(
        tmp_path,
        'b: 2\nitems: [{name: "{b}", v: $HOME, sub: [{deep: "x{b}"}]}]\n',
        environ={"HOME": "/home/u"},
    )
    assert resolved.entry_config["items"] == [{"name": 2, "v": "/home/u", "sub": [{"deep": "x2"}]}]


def test_chains_resolve_in_any_order(tmp_path: Path) -> None:
    resolved = resolve_text(
        tmp_path,
        'a: "{b}"\nb: "{c.d}"\nc: {d: "{e}"}\ne: 3\nalias: "{c}"\ndeep: "{alias.d}"\n',
    )
    assert resolved.entry_config == {
        "a": 3,
        "b": 3,
        "c": {"d": 3},
        "e": 3,
        "alias": {"d": 3},
        "deep": 3,
    }


def test_referenced_mappings_are_copies(tmp_path: Path) -> None:
    config = resolve_text(tmp_path, 'model: {l: [1]}\nm: "{model}"\nn: "{model}"\n').entry_config
    assert config["m"] == config["n"] == config["model"]
    assert config["m"] is not config["model"]
    assert config["m"]["l"] is not config["n"]["l"]


def test_keys_are_never_parsed(tmp_path: Path) -> None:
    resolved = resolve_text(tmp_path, 'lr: 1\n"{lr}": 2\n"$HOME": 3\n', environ={"HOME": "/h"})
    assert resolved.entry_config == {"lr": 1, "{lr}": 2, "$HOME": 3}


@pytest.mark.parametrize(
    ("text", "expected", "warnings"),
    [
        pytest.param(
            'v: "{nope}"',
            "",
            ["config.yml:5: key 'v': unresolved reference {nope}: replaced by ''"],
            id="whole",
        ),
        pytest.param(
            'v: "a{nope}b"',
            "ab",
            ["config.yml:5: key 'v': unresolved reference {nope}: replaced by ''"],
            id="inside",
        ),
        pytest.param(
            'v: "{lr.x}"\nlr: 1',
            "",
            [
                "config.yml:5: key 'v': unresolved reference {lr.x}: replaced by '' (did you "
                "mean 'lr'?)"
            ],
            id="below-a-scalar",
        ),
        pytest.param(
            'v: "{lst.5}"\nlst: [1]',
            "",
            [
                "config.yml:5: key 'v': unresolved reference {lst.5}: replaced by '' "
                "(did you mean 'lst.0' or 'lst'?)"
            ],
            id="index-out-of-range",
        ),
    ],
)
def test_unresolved_references_warn(
    tmp_path: Path, text: str, expected: object, warnings: list[str]
) -> None:
    resolved = resolve_text(tmp_path, text + "\n")
    assert resolved.entry_config["v"] == expected
    assert warning_texts(resolved) == warnings


def test_unresolved_reference_suggests_a_key(tmp_path: Path) -> None:
    resolved = resolve_text(tmp_path, 'model: {name: x}\nv: "{model.nam}"\n')
    assert resolved.warnings[0].hint == "did you mean 'model.name' or 'model'?"


def test_one_warning_per_occurrence(tmp_path: Path) -> None:
    """Defect 23: identical warnings were shown once, pointing at re/__init__.py."""
    resolved = resolve_text(tmp_path, 'a: "{nope}"\nb: "{nope}"\nc: "{nope}{nope}"\nd: "{a}"\n')
    assert [(w.path, w.line, w.key) for w in resolved.warnings] == [
        ("config.yml", 5, "a"),
        ("config.yml", 6, "b"),
        ("config.yml", 7, "c"),
        ("config.yml", 7, "c"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            'a: "{b}"\nb: "x{a}"', "config.yml:5: key 'a': reference cycle: a -> b -> a", id="two"
        ),
        pytest.param('a: "{a}"', "config.yml:5: key 'a': reference cycle: a -> a", id="self"),
        pytest.param(
            'm: {x: "{m}"}',
            "config.yml:5: key 'm.x': reference cycle: m.x -> m -> m.x",
            id="own-parent",
        ),
        pytest.param(
            'l: [1, "{l}"]',
            "config.yml:5: key 'l.1': reference cycle: l.1 -> l -> l.1",
            id="own-list",
        ),
        pytest.param(
            'a: "{b.c}"\nb: "{a}"',
            "config.yml:5: key 'a': reference cycle: a -> b -> a",
            id="through-a-reference",
        ),
    ],
)
def test_reference_cycles_are_errors_naming_the_cycle(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_text(tmp_path, text + "\n")
    assert not isinstance(caught.value, ConfigWarning)
    assert str(caught.value) == message


def test_raw_config_keeps_variables_and_references(tmp_path: Path) -> None:
    resolved = resolve_text(
        tmp_path, 'a: 1\nb: "{a}"\nc: $HOME\nd: "!P{a}"\n', environ={"HOME": "/h"}
    )
    assert resolved.raw["b"] == "{a}"
    assert resolved.raw["c"] == "$HOME"
    assert resolved.raw["d"] == "!P{a}"
    assert resolved.raw["__run__"]["__name__"] == "exp"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("123", 123, id="int"),
        pytest.param("-3", -3, id="negative"),
        pytest.param("0", 0, id="zero"),
        pytest.param("-0", "-0", id="minus-zero-is-text"),
        pytest.param("+3", "+3", id="plus-is-text"),
        pytest.param("0.5", 0.5, id="float"),
        pytest.param(".5", ".5", id="bare-dot-is-text"),
        # Review of issue 17: what a config file reads as a float (YAML 1.2) is a float here
        # too, or `lr: ${LR:-1e-4}` hands the entry the string '1e-4'.
        pytest.param("1e3", "1e3", id="unsigned-exponent-may-be-an-id"),
        pytest.param("1234e56", "1234e56", id="git-commit-like-is-text"),
        pytest.param("1.5e3", 1500.0, id="yaml12-dot-and-exponent"),
        pytest.param("1e-4", 0.0001, id="yaml12-negative-exponent"),
        pytest.param("5E-4", 0.0005, id="yaml12-capital-exponent"),
        pytest.param("-2.5e+3", -2500.0, id="yaml12-signed-exponent"),
        pytest.param("1e400", "1e400", id="exponent-out-of-range-is-text"),
        pytest.param("1_0e5", "1_0e5", id="exponent-underscore-is-text"),
        pytest.param("1e3\n", "1e3\n", id="exponent-newline-is-text"),
        pytest.param("inf", "inf", id="inf"),
        pytest.param("true", True, id="true"),
        pytest.param("False", False, id="false"),
        pytest.param("yes", "yes", id="yes-is-text"),
        pytest.param("", "", id="empty"),
    ],
)
def test_convert_text_is_lossless(text: str, expected: object) -> None:
    assert convert_text(text) == expected
    assert type(convert_text(text)) is type(expected)


@pytest.mark.parametrize(
    ("text", "expected", "missing"),
    [
        pytest.param("$A", 1, [], id="converted"),
        pytest.param("${A}0", 10, [], id="braced"),
        pytest.param("x$A", "x1", [], id="text"),
        pytest.param("$NO", "", ["NO"], id="missing"),
        pytest.param("$NO-$A-${NO}", "-1-", ["NO", "NO"], id="each-missing-in-order"),
        pytest.param("$B", "$A", [], id="expanded-once"),
        pytest.param("007", "007", [], id="no-variable-no-conversion"),
        # Issue 17: the shell's defaults.
        pytest.param("${A:-5}", 1, [], id="default-unused-when-set"),
        pytest.param("${E:-5}", 5, [], id="colon-dash-default-when-empty"),
        pytest.param("${NO:-5}", 5, [], id="colon-dash-default-when-unset"),
        pytest.param("${E-5}", "", [], id="dash-keeps-an-empty-value"),
        pytest.param("${NO-5}", 5, [], id="dash-default-when-unset"),
        pytest.param("${NO:-}", "", [], id="empty-default"),
        pytest.param("${NO:-$A}", 1, [], id="default-holds-a-variable"),
        pytest.param("${NO:-$NO2}", "", ["NO2"], id="default-variable-missing"),
        pytest.param("${NO:-{root}/d}", "{root}/d", [], id="default-holds-a-reference"),
        pytest.param("${NO:-$B}", "$A", [], id="default-value-expanded-once"),
        pytest.param("${E?m}", "", [], id="question-mark-accepts-empty"),
        pytest.param("${A:?m}", 1, [], id="required-and-set"),
        pytest.param("${NO:-1e-4}", 0.0001, [], id="default-exponent-is-a-float"),
    ],
)
def test_expand_variables(text: str, expected: object, missing: list[str]) -> None:
    expansion = expand_variables(text, {"A": "1", "B": "$A", "E": ""})
    assert (expansion.value, expansion.missing, expansion.invalid) == (expected, missing, [])
    assert type(expansion.value) is type(expected)


@pytest.mark.parametrize(
    ("value", "expected", "warning"),
    [
        pytest.param(
            "${DATA_DIR:/datasets}",
            "${DATA_DIR:/datasets}",
            "not a variable expression: ${DATA_DIR:/datasets} is kept as text (did you mean "
            "${DATA_DIR:-/datasets}?)",
            id="colon-without-dash",
        ),
        pytest.param(
            "${DATA_DIR:=/d}",
            "${DATA_DIR:=/d}",
            "not a variable expression: ${DATA_DIR:=/d} is kept as text (did you mean "
            "${DATA_DIR:-/d}?)",
            id="assign-default",
        ),
        pytest.param(
            '"${1:-d}"',
            "${1:-d}",
            "not a variable expression: ${1:-d} is kept as text (write ${NAME}, "
            "${NAME:-default}, ${NAME-default} or ${NAME:?message}; '!P' before the value "
            "keeps it as text)",
            id="digit-name",
        ),
        pytest.param(
            '"x${lr}y${a b}"',
            "x0.1y${a b}",
            "not a variable expression: ${a b} is kept as text (write ${NAME}, "
            "${NAME:-default}, ${NAME-default} or ${NAME:?message}; '!P' before the value "
            "keeps it as text)",
            id="space-in-name",
        ),
        pytest.param(
            '"${m.n}"',
            "$x",
            "not a variable expression: ${m.n} is kept as text (a reference to a key is "
            "written {m.n})",
            id="dotted-name",
        ),
        # Review of issue 17: `:+` is the shell's alternate value (used when X is set), the
        # opposite of `:-`: not suggested as a default.
        pytest.param(
            '"${X:+alt}"',
            "${X:+alt}",
            "not a variable expression: ${X:+alt} is kept as text (write ${NAME}, "
            "${NAME:-default}, ${NAME-default} or ${NAME:?message}; '!P' before the value "
            "keeps it as text)",
            id="alternate-value-not-taken-for-a-default",
        ),
        # Review of issue 17: a warning stays on one line.
        pytest.param(
            '"${X:\\nd}"',
            "${X:\nd}",
            "not a variable expression: ${X:\\nd} is kept as text (did you mean ${X:-\\nd}?)",
            id="newline-escaped",
        ),
    ],
)
def test_invalid_variable_expressions_warn(
    tmp_path: Path, value: str, expected: object, warning: str
) -> None:
    resolved = resolve_text(tmp_path, f"v: {value}\nm: {{n: x}}\n", environ={"lr": "0.1"})
    assert resolved.entry_config["v"] == expected
    assert warning_texts(resolved) == [f"config.yml:5: key 'v': {warning}"]
    with pytest.raises(ConfigWarning, match="not a variable expression"):
        resolve_text(tmp_path, f"v: {value}\nm: {{n: x}}\n", environ={}, strict=True)


@pytest.mark.parametrize(
    ("value", "environ", "expected"),
    [
        pytest.param("${DATA:-/datasets/imagenet}", {}, "/datasets/imagenet", id="unset"),
        pytest.param("${DATA:-/datasets}", {"DATA": "/d"}, "/d", id="set"),
        pytest.param("${DATA:-{root}/imagenet}", {}, "/r/imagenet", id="default-reference"),
        pytest.param("${LR:-{lr}}", {}, 0.5, id="default-whole-reference-keeps-type"),
        pytest.param("${LR:-0.1}", {}, 0.1, id="default-converted"),
        pytest.param("${LR:-0.1}", {"LR": "0.2"}, 0.2, id="value-converted"),
        pytest.param("${DATA-/d}", {"DATA": ""}, "", id="dash-empty-is-set"),
    ],
)
def test_variables_with_defaults(
    tmp_path: Path, value: str, environ: dict[str, str], expected: object
) -> None:
    resolved = resolve_text(
        tmp_path, f"v: {value}\nroot: /r\nlr: 0.5\n", environ=environ, strict=True
    )
    assert resolved.entry_config["v"] == expected
    assert type(resolved.entry_config["v"]) is type(expected)


@pytest.mark.parametrize(
    ("value", "environ", "message"),
    [
        pytest.param(
            '"${DATA:?set DATA to the dataset folder}"',
            {},
            "environment variable DATA is not set: set DATA to the dataset folder",
            id="unset-with-message",
        ),
        pytest.param(
            "${DATA:?}", {}, "environment variable DATA is not set: required", id="no-message"
        ),
        pytest.param(
            "${DATA:?}", {"DATA": ""}, "environment variable DATA is empty: required", id="empty"
        ),
        pytest.param(
            "x/${DATA?gone}", {}, "environment variable DATA is not set: gone", id="unset-only"
        ),
        # Review of issue 17: the error stays on one line.
        pytest.param(
            '"${DATA:?line 1\\nline 2}"',
            {},
            "environment variable DATA is not set: line 1\\nline 2",
            id="message-newline-escaped",
        ),
    ],
)
def test_required_variables_are_errors(
    tmp_path: Path, value: str, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_text(tmp_path, f"v: {value}\n", environ=environ)
    assert type(caught.value) is ConfigError
    assert str(caught.value) == f"config.yml:5: key 'v': {message}"


# Issue 17: `seed: {seed}` is a YAML mapping {seed: null}; said, a warning (an error in __run__).
@pytest.mark.parametrize(
    ("text", "key", "shown"),
    [
        pytest.param("v: {seed}", "v", "{seed}", id="one-key"),
        pytest.param("v: {model.name}", "v", "{model.name}", id="dotted"),
        pytest.param("v: {layers.0.size}", "v", "{layers.0.size}", id="index"),
        pytest.param("v: [{seed}]", "v.0", "{seed}", id="in-a-list"),
        pytest.param("v: {a, b}", "v", "{a, b}", id="all-keys-without-values"),
        pytest.param("m: {v: {seed}}", "m.v", "{seed}", id="nested"),
    ],
)
def test_unquoted_references_warn(tmp_path: Path, text: str, key: str, shown: str) -> None:
    resolved = resolve_text(tmp_path, text + "\n", run=True)
    expected = f"config.yml:5: key '{key}': write \"{shown}\" in quotes: YAML reads {shown} as a "
    assert warning_texts(resolved) == [expected + "mapping"]
    with pytest.raises(ConfigWarning, match="in quotes"):
        resolve_text(tmp_path, text + "\n", strict=True)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("v: {seed: 1}", id="a-value"),
        pytest.param("v: {a, b: 1}", id="one-value"),
        pytest.param("v: {}", id="empty"),
        pytest.param("v: {'seed'}", id="quoted-key"),
        pytest.param("v: {a b}", id="not-a-reference"),
        pytest.param("v:\n  seed:", id="block-mapping"),
        pytest.param("v: '{seed}'\nseed: 1", id="quoted-reference"),
    ],
)
def test_mappings_that_are_not_unquoted_references_do_not_warn(tmp_path: Path, text: str) -> None:
    assert resolve_text(tmp_path, text + "\n").warnings == ()
