"""Command-line overrides: parsing, typing from the replaced value, lists of mappings."""

from __future__ import annotations

import datetime
import math
import re
from pathlib import Path

import pytest
import yaml
from config_support import RUN, resolve_text, warning_texts, write

from expyrun.config import resolve
from expyrun.config.overrides import Override, parse_overrides
from expyrun.errors import ConfigError


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        pytest.param(["--a", "2"], [("a", "2")], id="pair"),
        pytest.param(["--a=2"], [("a", "2")], id="equals"),
        pytest.param(["--a.b=x=y"], [("a.b", "x=y")], id="equals-in-value"),
        pytest.param(["--a="], [("a", "")], id="empty-value"),
        pytest.param(["--a", "-3"], [("a", "-3")], id="negative-number"),
        pytest.param(["--a", ""], [("a", "")], id="empty-token"),
        pytest.param(
            ["--a", "1", "--b=2", "--a", "3"], [("a", "1"), ("b", "2"), ("a", "3")], id="several"
        ),
        pytest.param(["--s=--debug"], [("s", "--debug")], id="value-starting-with-dashes"),
        # Defect 22: a key named `debug` is set with --debug=VALUE (the CLI keeps that token).
        pytest.param(["--debug=3"], [("debug", "3")], id="key-named-debug"),
    ],
)
def test_parse_overrides(tokens: list[str], expected: list[tuple[str, str]]) -> None:
    assert [(o.key, o.text) for o in parse_overrides(tokens)] == expected


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        pytest.param(
            ["a", "2"],
            "command line: expected an override --KEY VALUE or --KEY=VALUE, got 'a'",
            id="no-dashes",
        ),
        pytest.param(
            ["-a", "2"],
            "command line: expected an override --KEY VALUE or --KEY=VALUE, got '-a'",
            id="one-dash",
        ),
        pytest.param(
            ["--", "2"],
            "command line: expected an override --KEY VALUE or --KEY=VALUE, got '--'",
            id="bare-dashes",
        ),
        pytest.param(
            ["--a"], "command line: key 'a': the override --a has no value", id="no-value"
        ),
        pytest.param(
            ["--s", "--debug"],
            "command line: key 's': the override --s has no value (next comes the option "
            "'--debug')",
            id="option-instead-of-value",
        ),
        pytest.param(
            ["--a..b", "1"], "command line: malformed key in the override '--a..b'", id="empty-part"
        ),
        pytest.param(
            ["--=3"], "command line: malformed key in the override '--=3'", id="empty-key"
        ),
    ],
)
def test_malformed_overrides(tokens: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_overrides(tokens)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


# Issue 17: what a mistyped override probably meant. The launch line's flags, as the CLI
# passes them.
FLAGS = (
    "--debug",
    "--strict",
    "--print-config",
    "--detach",
    "--slurm",
    "--grace",
    "--merge-output",
)


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        pytest.param(
            ["training.lr=0.3"],
            "expected an override --KEY VALUE or --KEY=VALUE, got 'training.lr=0.3' (did you "
            "mean --training.lr=0.3?)",
            id="hydra-style",
        ),
        pytest.param(
            ["+training.lr=0.3"],
            "expected an override --KEY VALUE or --KEY=VALUE, got '+training.lr=0.3' (did you "
            "mean --training.lr=0.3?)",
            id="hydra-append",
        ),
        pytest.param(
            ["--a", "1", "b.c=x y"],
            "expected an override --KEY VALUE or --KEY=VALUE, got 'b.c=x y' (did you mean "
            "--b.c=x y?)",
            id="hydra-style-after-an-override",
        ),
        pytest.param(
            ["--a", "1", "b.c=x\ny"],
            "expected an override --KEY VALUE or --KEY=VALUE, got 'b.c=x\\ny' (did you mean "
            "--b.c=x\\ny?)",
            id="hydra-style-newline-on-one-line",
        ),
        pytest.param(
            ["-lr", "0.3"],
            "expected an override --KEY VALUE or --KEY=VALUE, got '-lr' (did you mean --lr?)",
            id="one-dash",
        ),
        pytest.param(
            ["--name", "my", "run"],
            "expected an override --KEY VALUE or --KEY=VALUE, got 'run' (an override takes one "
            "value: quote a value holding spaces)",
            id="unquoted-space",
        ),
        # Review of issue 17: a second config file is not a key (it said `--b.yml`).
        pytest.param(
            ["b.yml"],
            "expected an override --KEY VALUE or --KEY=VALUE, got 'b.yml' (one config file per "
            "launch: name the others in its __default__)",
            id="second-config-file",
        ),
        pytest.param(
            ["--a", "1", "configs/b.yaml"],
            "expected an override --KEY VALUE or --KEY=VALUE, got 'configs/b.yaml' (one config "
            "file per launch: name the others in its __default__)",
            id="second-config-file-after-an-override",
        ),
        pytest.param(
            ["a b"],
            "expected an override --KEY VALUE or --KEY=VALUE, got 'a b' (write --KEY VALUE)",
            id="other",
        ),
        pytest.param(
            ["--detatch"],
            "key 'detatch': the override --detatch has no value (did you mean expyrun's flag "
            "--detach?)",
            id="mistyped-flag-without-value",
        ),
        pytest.param(
            ["--degub", "--lr", "1"],
            "key 'degub': the override --degub has no value (next comes the option '--lr') "
            "(did you mean expyrun's flag --debug?)",
            id="swapped-letters",
        ),
        pytest.param(
            ["--print"],
            "key 'print': the override --print has no value (did you mean expyrun's flag "
            "--print-config?)",
            id="start-of-a-flag",
        ),
        pytest.param(
            ["--data"],
            "key 'data': the override --data has no value (write --data VALUE, or --data=VALUE "
            "for a value starting with --)",
            id="not-close-to-a-flag",
        ),
    ],
)
def test_mistyped_overrides_say_what_was_meant(tokens: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_overrides(tokens, FLAGS)
    assert str(caught.value) == "command line: " + message


@pytest.mark.parametrize(
    ("tokens", "hint"),
    [
        pytest.param(
            ["--stric", "1"], "did you mean expyrun's flag --strict?", id="close-to-a-flag"
        ),
        pytest.param(["--slrum", "1"], "did you mean expyrun's flag --slurm?", id="swapped"),
        pytest.param(
            ["--detach=true"],
            "--detach is expyrun's flag and takes no value: write --detach; --detach=VALUE sets "
            "a config key named detach",
            id="flag-with-a-value",
        ),
        pytest.param(["--seeed", "1"], "did you mean 'seed'?", id="closer-to-a-key"),
        pytest.param(["--detach_m", "1"], "did you mean 'detach_me'?", id="key-closer-than-flag"),
    ],
)
def test_unknown_keys_suggest_a_flag_when_it_is_closest(
    tmp_path: Path, tokens: list[str], hint: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(
            write(tmp_path, "c.yml", RUN + "seed: 1\ndetach_me: 1\n"),
            tokens,
            cwd=tmp_path,
            environ={},
            flags=FLAGS,
        )
    key = tokens[0][2:].partition("=")[0]
    assert str(caught.value) == f"command line: key '{key}': no such key to override ({hint})"


# Review of issue 17: `--tag v2` (or `--tag=v2`) is expyrun's flag even where the config has a
# key `tag`: the key stays unchanged, which is said; `-- --tag v2` sets the key.
def test_a_flag_given_a_value_warns_about_a_key_named_alike(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml", RUN + "tag: v1\nnote: n\nlr: 1\n")
    given = ("--tag", "--grace")
    resolved = resolve(path, [], cwd=tmp_path, environ={}, flags=FLAGS, flags_with_values=given)
    assert resolved.entry_config["tag"] == "v1"
    assert warning_texts(resolved) == [
        "c.yml:5: key 'tag': --tag on the command line is expyrun's flag and leaves this key "
        "unchanged (to set the key, write -- --tag VALUE at the end of the line)"
    ]
    overridden = resolve(
        path, ["--tag", "v3"], cwd=tmp_path, environ={}, flags=FLAGS, flags_with_values=given
    )
    assert overridden.entry_config["tag"] == "v3"
    assert warning_texts(overridden) == []


def test_a_key_named_like_a_flag_is_set_with_equals(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yml", RUN + "debug: false\n")
    resolved = resolve(path, ["--debug=true"], cwd=tmp_path, environ={}, flags=FLAGS)
    assert resolved.entry_config["debug"] is True


def test_override_is_a_frozen_record() -> None:
    assert parse_overrides(["--a.b", "1"]) == [Override("a.b", ("a", "b"), "1")]


@pytest.mark.parametrize(
    ("existing", "text", "expected"),
    [
        pytest.param("true", "FALSE", False, id="bool-false-any-case"),
        pytest.param("false", "yes", True, id="bool-yes"),
        pytest.param("true", "no", False, id="bool-no"),
        pytest.param("false", "1", True, id="bool-1"),
        pytest.param("true", "0", False, id="bool-0"),
        pytest.param("1", "-3", -3, id="int"),
        pytest.param("1", " 7 ", 7, id="int-spaces"),
        pytest.param("1.5", "3", 3.0, id="float-from-int-text"),
        pytest.param("1.5", "1e3", 1000.0, id="float-exponent"),
        pytest.param("1.5", "inf", math.inf, id="float-inf"),
        pytest.param("'5'", "9", "9", id="str-verbatim"),
        pytest.param("s", "1,2", "1,2", id="str-with-commas"),
        pytest.param("s", "[1, 2]", "[1, 2]", id="str-with-brackets"),
        pytest.param("s", "!Pnull", "null", id="str-escaped-null"),
        pytest.param("null", "4.5", 4.5, id="null-to-float"),
        pytest.param("null", "abc", "abc", id="null-to-str"),
        pytest.param("null", "007", "007", id="null-lossless"),
        pytest.param("null", "true", True, id="null-to-bool"),
        pytest.param("null", "no", "no", id="null-no-stays-text"),
        pytest.param("null", "[1, a]", [1, "a"], id="null-to-flow-list"),
        # Defect 21: null, empty lists and items with commas could not be set.
        pytest.param("s", "null", None, id="null-into-str"),
        pytest.param("1", "~", None, id="tilde-into-int"),
        pytest.param("[1, 2]", "null", None, id="null-into-list"),
        pytest.param("[1, 2]", "[]", [], id="empty-list"),
        pytest.param("[a]", '["x,y", z]', ["x,y", "z"], id="flow-items-with-commas"),
        pytest.param("[1, a, 2.5]", "3,4,5", [3, "4", 5.0], id="list-same-length-per-item"),
        pytest.param("[1, 2]", "5,6,7", [5, 6, 7], id="list-other-length-like-first"),
        pytest.param("[]", "1,x,2.0,true", [1, "x", 2.0, True], id="list-empty-converted"),
        # Issue 17: an empty text is an empty list (it was `['']`).
        pytest.param("[a]", "", [], id="list-empty-text"),
        pytest.param("[1, 2]", "", [], id="int-list-empty-text"),
        pytest.param("[a]", "  ", [], id="list-blank-text"),
        pytest.param("1e-3", "2e-4", 0.0002, id="yaml12-float-key-takes-exponents"),
        pytest.param("[1e-3]", "2e-4,3E-5", [0.0002, 3e-05], id="yaml12-float-list"),
        pytest.param("'${LR:-1e-3}'", "2e-4", 0.0002, id="yaml12-float-over-a-variable"),
        pytest.param("null", "1e-4", 0.0001, id="yaml12-float-over-null"),
        pytest.param("[]", "[1e-4, '1e-4']", [0.0001, "1e-4"], id="yaml12-float-flow-item"),
        pytest.param("[1.5]", "[1, 2]", [1.0, 2.0], id="flow-typed-like-first"),
        pytest.param("[a, b]", "[1, '2']", ["1", "2"], id="flow-str-items"),
        pytest.param("[[1]]", "[[2, 3]]", [[2, 3]], id="flow-nested"),
        pytest.param("[1]", "[null]", [None], id="flow-null-item"),
        pytest.param("[{a: 1}]", "[{a: 2}, {b: x}]", [{"a": 2}, {"b": "x"}], id="flow-mappings"),
        pytest.param("2024-01-02", "2025-03-04", datetime.date(2025, 3, 4), id="date"),
        pytest.param("'{other}'", "5", 5, id="reference-typed-once-resolved"),
        pytest.param("'x{other}'", "{other}", 1, id="override-with-a-reference"),
    ],
)
def test_override_typing(tmp_path: Path, existing: str, text: str, expected: object) -> None:
    resolved = resolve_text(tmp_path, f"k: {existing}\nother: 1\n", ["--k", text])
    assert resolved.entry_config["k"] == expected
    assert type(resolved.entry_config["k"]) is type(expected)


@pytest.mark.parametrize(
    ("existing", "text", "message"),
    [
        pytest.param("true", "maybe", "expected a boolean (true/false, yes/no, 1/0)", id="bool"),
        pytest.param("1", "1.5", "expected an integer", id="int"),
        pytest.param("1.5", "fast", "expected a number", id="float"),
        # Issue 17: a list item that cannot be typed is named by its index and value.
        pytest.param(
            "[1, 2]", "[1, x]", "item 1 (x): expected an integer", id="flow-list-bad-item"
        ),
        pytest.param(
            "[8, 8]", "[8, 8.5]", "item 1 (8.5): expected an integer", id="flow-item-float"
        ),
        pytest.param("[1, 2]", "1,,2", "item 1 (): expected an integer", id="comma-item-empty"),
        pytest.param(
            "[true]", "yes,maybe", "item 1 (maybe): expected a boolean", id="comma-item-bool"
        ),
        pytest.param(
            "[[1]]", "[[1], [2, x]]", "item 1.1 (x): expected an integer", id="nested-item"
        ),
        pytest.param("[1]", "[[2]]", "item 0 ([...]): expected an item like 1", id="list-item"),
        # Review of issue 17: a scalar where a list was is not wrapped (it gave [[1], [5]]).
        pytest.param(
            "[[1], [3, 4]]",
            "[[1], 5]",
            "item 1 (5): expected a list like [3, 4], got a scalar",
            id="scalar-item-for-a-list",
        ),
        pytest.param("[1, 2]", "[1", "invalid YAML", id="flow-list-syntax"),
        pytest.param(
            "[{a: 1}]", "4,5", "the items are mappings", id="list-of-mappings-from-commas"
        ),
        pytest.param("2024-01-02", "soon", "expected a date", id="date"),
        # Issue 11: a tag inside a flow list was dropped (the list's items kept), where a file
        # refuses it, and where yaml.safe_load raises ConstructorError for the same text.
        pytest.param(
            "null",
            '[!!python/object/apply:os.system ["echo hi"]]',
            "unsupported YAML tag !!python/object/apply:os.system",
            id="python-tag-on-a-flow-list-item",
        ),
        pytest.param(
            "[1]", "[1, !!binary aGk=]", "unsupported YAML tag !!binary", id="binary-scalar-tag"
        ),
        pytest.param("null", "[[!local x]]", "unsupported YAML tag !local", id="local-tag-nested"),
        pytest.param(
            "null",
            "[{a: !!python/name:os.system }]",
            "unsupported YAML tag !!python/name:os.system",
            id="tag-inside-a-mapping-item",
        ),
        pytest.param("null", "[!!set {a: null}]", "unsupported YAML tag !!set", id="set-tag"),
        # Aliases in a flow list are copies, as in a file: bounded (a 376-byte list ran for
        # over 60 s and 2.3 GB), an alias inside itself refused (issue 11).
        pytest.param(
            "null",
            "[&l0 [x, x, x, x, x, x, x, x, x, x]"
            + "".join(f", &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 8))
            + "]",
            "YAML aliases expand to more than 100,000 values (aliases are copied: nested "
            "anchors multiply)",
            id="alias-bomb",
        ),
        pytest.param("null", "[&a [*a]]", "a YAML alias contains itself", id="alias-in-itself"),
        pytest.param(
            "null",
            "[&m {a: [*m]}]",
            "a YAML alias contains itself",
            id="alias-in-itself-through-a-mapping",
        ),
        # Nesting: a list nested past the limit stops before its recursion could (issue 11).
        pytest.param(
            "null", "[" * 500 + "]" * 500, "nested deeper than 128 levels", id="nested-lists"
        ),
        pytest.param(
            "null",
            "[" * 128 + "]" * 128,
            "the config would nest deeper than 128 levels",
            id="nested-lists-at-a-key",
        ),
    ],
)
def test_untypable_overrides(tmp_path: Path, existing: str, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_text(tmp_path, f"k: {existing}\n", ["--k", text])
    assert caught.value.key == "k"
    shown = repr(text) if len(text) <= 80 else repr(text[:60]) + f"... ({len(text)} characters)"
    assert str(caught.value).startswith(
        f"command line: key 'k': cannot override with {shown}: {message}"
    )
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        pytest.param(
            '[!!python/object/apply:os.system ["echo hi"]]',
            "!!python/object/apply:os.system",
            id="python-apply",
        ),
        pytest.param("[1, !!binary aGk=]", "!!binary", id="binary"),
        pytest.param("[!!set {a: null}]", "!!set", id="set"),
    ],
)
def test_a_tag_is_refused_on_the_command_line_as_in_a_file(
    tmp_path: Path, text: str, tag: str
) -> None:
    message = f"unsupported YAML tag {tag} (only plain values, mappings, lists)"
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_text(tmp_path, f"k: {text}\n")
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_text(tmp_path, "k: null\n", ["--k", text])


def test_a_python_tag_is_refused_by_the_peer_safe_load_as_well() -> None:
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.safe_load('[!!python/object/apply:os.system ["echo hi"]]')


def test_plain_tags_stay_accepted_in_a_flow_list(tmp_path: Path) -> None:
    resolved = resolve_text(tmp_path, "k: [1, 2]\n", ["--k", "[!!int 3, !!str 4]"])
    assert resolved.entry_config["k"] == [3, 4]


def test_aliases_in_a_flow_list_are_copies(tmp_path: Path) -> None:
    resolved = resolve_text(tmp_path, "k: null\n", ["--k", "[&a [1, 2], *a, {x: *a}]"])
    value = resolved.entry_config["k"]
    assert value == [[1, 2], [1, 2], {"x": [1, 2]}]
    assert value[0] is not value[1]


def test_a_list_nested_to_the_limit_is_accepted(tmp_path: Path) -> None:
    # `k` is level 2 of the config: 127 lists fill levels 2 to 128.
    resolved = resolve_text(tmp_path, "k: null\n", ["--k", "[" * 127 + "]" * 127])
    value = resolved.entry_config["k"]
    depth = 0
    while isinstance(value, list):
        depth += 1
        value = value[0] if value else None
    assert depth == 127


def test_overrides_reach_into_lists_of_mappings(tmp_path: Path) -> None:
    resolved = resolve_text(
        tmp_path,
        "layers: [{size: 3, act: relu}, {size: 4, act: relu}]\n",
        ["--layers.1.size", "5", "--layers.0.act=tanh"],
    )
    assert resolved.entry_config["layers"] == [
        {"size": 3, "act": "tanh"},
        {"size": 5, "act": "relu"},
    ]


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        pytest.param("trainer.lrr", "did you mean 'trainer.lr'?", id="typo"),
        pytest.param(
            "layers.2.size",
            "did you mean 'layers.1.size' or 'layers.0.size' or 'layers'?",
            id="index-out-of-range",
        ),
        pytest.param(
            "layers.-1.size",
            "did you mean 'layers.1.size' or 'layers.0.size' or 'layers'?",
            id="negative-index",
        ),
        pytest.param("trainer.lr.x", "did you mean 'trainer.lr'?", id="below-a-scalar"),
        pytest.param("zzz", None, id="nothing-close"),
    ],
)
def test_unknown_keys_are_errors_with_suggestions(
    tmp_path: Path, key: str, hint: str | None
) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_text(
            tmp_path, "trainer: {lr: 1}\nlayers: [{size: 1}, {size: 2}]\n", [f"--{key}", "1"]
        )
    assert caught.value.key == key
    assert caught.value.message == "no such key to override"
    assert caught.value.hint == hint


def test_a_mapping_cannot_be_overridden_whole(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_text(tmp_path, "model: {name: x}\n", ["--model", "3"])
    assert str(caught.value) == (
        "command line: key 'model': is a mapping: override its keys one by one (for instance "
        "--model.name)"
    )


@pytest.mark.parametrize("key", ["__default__", "__new_key_policy__"])
def test_loading_keys_cannot_be_overridden(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError, match="cannot be overridden"):
        resolve_text(tmp_path, "a: 1\n", [f"--{key}", "x"])


def test_overrides_apply_before_resolution(tmp_path: Path) -> None:
    resolved = resolve_text(
        tmp_path,
        'i: 1\nderived: "n{i}"\nhome: x\n',
        ["--i", "12", "--home", "$HOME", "--__run__.__name__", "run-{i}"],
        environ={"HOME": "/h"},
    )
    assert resolved.entry_config == {"i": 12, "derived": "n12", "home": "/h"}
    assert resolved.run.name == "run-12"
    assert resolved.raw["__run__"]["__name__"] == "run-{i}"
    assert resolved.raw["i"] == 12


def test_run_keys_are_typed_as_text(tmp_path: Path) -> None:
    resolved = resolve_text(
        tmp_path,
        "__run__: {__main__: a:b, __output_dir__: out, __name__: 5}\n",
        ["--__run__.__name__", "abc", "--__run__.__output_dir__", "7"],
        run=False,
    )
    assert resolved.config["__run__"]["__name__"] == "abc"
    assert resolved.config["__run__"]["__output_dir__"] == "7"
    assert resolved.run.output_dir == resolved.run.code_dir / "7"


def test_dunder_keys_may_be_added_to_an_existing_mapping(tmp_path: Path) -> None:
    resolved = resolve_text(tmp_path, "", ["--__run__.__code__", "src", "--__x__", "5"])
    assert resolved.run.code_dir == tmp_path / "src"
    assert resolved.config["__x__"] == 5


def test_slurm_options_may_be_added_from_the_command_line(tmp_path: Path) -> None:
    # No __slurm__ in the config: the mapping is made; the values stay as written (sbatch
    # reads text: 1:00:00 must not become YAML's base-60 3600), but for booleans and null.
    resolved = resolve_text(
        tmp_path,
        "",
        [
            *("--__run__.__slurm__.time", "1:00:00"),
            *("--__run__.__slurm__.gpus", "1"),
            *("--__run__.__slurm__.exclusive", "true"),
            *("--__run__.__slurm__.requeue", "no"),
            *("--__run__.__slurm__.comment", "null"),
        ],
    )
    assert resolved.run.slurm == {
        "time": "1:00:00",
        "gpus": "1",
        "exclusive": True,
        "requeue": False,
        "comment": None,
    }


def test_slurm_options_of_the_config_are_overridden_as_text(tmp_path: Path) -> None:
    resolved = resolve_text(
        tmp_path,
        "__run__:\n  __main__: a:b\n  __output_dir__: out\n  __name__: n\n"
        "  __slurm__:\n    time: 60\n    partition: debug\n",
        ["--__run__.__slurm__.time", "2:00:00", "--__run__.__slurm__.partition", "gpu"],
        run=False,
    )
    assert resolved.run.slurm == {"time": "2:00:00", "partition": "gpu"}


def test_an_option_below_a_slurm_option_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no such key to override"):
        resolve_text(tmp_path, "", ["--__run__.__slurm__.time.x", "1"])


def test_an_overridden_value_is_reported_from_the_command_line(tmp_path: Path) -> None:
    resolved = resolve_text(tmp_path, "s: x\n", ["--s", "{nope}"])
    assert warning_texts(resolved) == [
        "command line: key 's': unresolved reference {nope}: replaced by ''"
    ]


def test_overrides_never_warn_about_types(tmp_path: Path) -> None:
    resolved = resolve_text(tmp_path, "a: 1\nb: null\n", ["--a", "2", "--b", "x"])
    assert resolved.warnings == ()
