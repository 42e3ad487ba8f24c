"""The engine's documented limits (issue 11): nesting depth, alias copies, reference chains.

Before: a 460-byte alias bomb grew past 2.4 GB; a nesting of ~330 levels holding a reference,
a reference chain of ~170 and a reference cycle of 200 ended in RecursionError (exit 70). Each
limit is tested at its edge (accepted) and past it (one `ConfigError` naming file and line),
and a config at the deepest nesting goes through every stage: load, merge with a default,
override, resolve, walk, dump and read back, pickle (the worker's payload).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import sys
import threading
from pathlib import Path

import pytest
import yaml
from config_support import RUN, resolve_text, write

from expyrun.config import dump_config, dump_raw, resolve
from expyrun.config.composing import MAX_FILE_BYTES, parse_node
from expyrun.config.interpolation import MAX_REFERENCE_TEXT, MAX_REFERENCE_VALUES
from expyrun.config.keys import MAX_DEPTH, nesting, walk
from expyrun.config.parsing import MAX_ALIAS_VALUES
from expyrun.errors import ConfigError

RUN_LINES = RUN.count("\n")  # the config under test starts on the line after __run__


def _nested_mapping(levels: int, leaf: str = "1") -> str:
    """`a: {a: {... leaf}}` with `levels` mappings below the top level."""
    return "a: " + "{a: " * levels + leaf + "}" * levels + "\n"


def _bomb(levels: int, width: int = 10) -> str:
    """The "billion laughs": each level an anchored list of `width` aliases of the one below."""
    text = "l0: &l0 [" + ", ".join(['"lol"'] * width) + "]\n"
    for level in range(1, levels + 1):
        text += f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]\n"
    return text


def _depth(value: object) -> int:
    depth = 0
    while isinstance(value, dict | list):
        depth += 1
        value = next(iter(value.values())) if isinstance(value, dict) else value[0]
    return depth


# --- nesting --------------------------------------------------------------------------------


def test_the_documented_depth() -> None:
    assert MAX_DEPTH == 128


def test_a_config_at_the_deepest_nesting_goes_through_every_stage(tmp_path: Path) -> None:
    # The top-level mapping is level 1, `a` holds levels 2..128; a reference at the bottom.
    write(tmp_path, "base.yml", RUN + _nested_mapping(MAX_DEPTH - 1, "0") + "b: 1\n")
    top = write(
        tmp_path,
        "config.yml",
        "__default__: ./base.yml\n" + _nested_mapping(MAX_DEPTH - 1, "'{b}'"),
    )
    leaf = ".".join(["a"] * MAX_DEPTH)
    resolved = resolve(top, ["--b", "7"], cwd=tmp_path, environ={})
    assert 1 + _depth(resolved.config["a"]) == MAX_DEPTH
    value = resolved.config
    for _ in range(MAX_DEPTH):
        value = value["a"]  # type: ignore[index,assignment]
    assert value == 7
    assert any(".".join(map(str, path)) == leaf for path, _ in walk(resolved.config))
    for text in (dump_config(resolved.config), dump_raw(resolved.raw)):
        assert 1 + _depth(yaml.safe_load(text)["a"]) == MAX_DEPTH
    reread = write(tmp_path, "again.yml", dump_config(resolved.config))
    assert resolve(reread, cwd=tmp_path, environ={}).config == resolved.config
    payload = pickle.dumps(resolved.entry_config)  # what the worker is sent
    assert pickle.loads(payload) == resolved.entry_config  # noqa: S301 - made just above


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param(_nested_mapping(MAX_DEPTH), 1, id="flow-mappings"),
        pytest.param("a: " + "[" * (MAX_DEPTH) + "]" * (MAX_DEPTH) + "\n", 1, id="flow-lists"),
        pytest.param(
            "".join(" " * i + "k:\n" for i in range(MAX_DEPTH + 1)) + " " * MAX_DEPTH + " 1\n",
            MAX_DEPTH + 1,
            id="block-mappings",
        ),
        pytest.param(".".join(["k"] * (MAX_DEPTH + 1)) + ": 1\n", 1, id="dotted-key"),
        pytest.param(_nested_mapping(328, '"{b}"') + "b: 1\n", 1, id="repro-r11-deep"),
        pytest.param(
            "x: &x " + "[" * 100 + "]" * 100 + "\n" + _nested_mapping(40, "*x"),
            2,
            id="through-an-alias",
        ),
    ],
)
def test_nesting_past_the_limit_is_refused_with_its_line(
    tmp_path: Path, text: str, line: int
) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_text(tmp_path, text)
    message = str(caught.value)
    assert re.fullmatch(
        rf"config\.yml:{RUN_LINES + line}: (key '[a-z.0-9]+': )?nested deeper than 128 levels",
        message,
    ), message


def test_text_too_deep_for_the_yaml_composer_is_refused_before_composing(tmp_path: Path) -> None:
    """libyaml's composer recurses in C: 30,000 levels crashed the interpreter (SIGSEGV).

    The text is depth-checked from parse events first; libyaml builds that ship a nesting
    limit of their own (1,000 in 0.2.5) refuse it as invalid YAML: either way, one line.
    """
    text = "a: " + "[" * 50_000 + "]" * 50_000 + "\n"
    with pytest.raises(ConfigError) as caught:
        resolve_text(tmp_path, text)
    assert re.fullmatch(
        r"config\.yml:5: (nested deeper than 128 levels|invalid YAML: .*nesting depth.*)",
        str(caught.value),
    ), str(caught.value)


def test_the_depth_scan_refuses_before_composing() -> None:
    """Past 10,000 indicators, `parse_node` itself counts levels from parse events (the
    builder, which would refuse later, is not involved): 200 levels among 11,000 keys."""
    text = "".join(f"k{i}: 1\n" for i in range(11_000)) + "a: " + "[" * 200 + "]" * 200 + "\n"
    with pytest.raises(ConfigError) as caught:
        parse_node(text, "big.yml")
    assert str(caught.value) == "big.yml:11001: nested deeper than 128 levels"
    assert parse_node("a: " + "[" * 200 + "]" * 200 + "\n", "small.yml") is not None


def test_a_large_shallow_file_pays_the_depth_scan_and_resolves(tmp_path: Path) -> None:
    # Over 10,000 indicators: the text is scanned for depth before composing.
    text = "".join(f"s{i}: {{a: [1, 2], b: '{{s{i}.a}}'}}\n" for i in range(3000))
    config = resolve_text(tmp_path, text).entry_config
    assert config["s2999"] == {"a": [1, 2], "b": [1, 2]}


def test_a_reference_placing_a_mapping_too_deep_is_refused_there(tmp_path: Path) -> None:
    text = _nested_mapping(MAX_DEPTH - 1) + "deep:\n  er: '{a}'\n"
    with pytest.raises(ConfigError) as caught:
        resolve_text(tmp_path, text)
    assert str(caught.value) == (
        f"config.yml:{RUN_LINES + 3}: key 'deep.er': nested deeper than 128 levels once {{a}} "
        "is placed here"
    )


def test_references_nesting_mappings_stop_at_the_limit(tmp_path: Path) -> None:
    """Each `{aI+1}` nests one more level: the chain is refused where it passes 128."""
    text = "".join(f"a{i}: {{k: '{{a{i + 1}}}'}}\n" for i in range(200)) + "a200: 1\n"
    with pytest.raises(ConfigError, match=r"key 'a\d+\.k': nested deeper than 128 levels once"):
        resolve_text(tmp_path, text)


def test_nesting_counts_levels() -> None:
    assert nesting({"a": [{"b": 1}, 2], "c": {}}) == 3
    assert nesting({}) == 1
    assert nesting(5) == 0


def test_the_peers_fail_differently_past_their_own_depth() -> None:
    """Plain Python: json and PyYAML's own composer end in RecursionError, not a message."""
    with pytest.raises(RecursionError):
        json.loads("[" * 100_000 + "]" * 100_000)
    limit = sys.getrecursionlimit()
    with pytest.raises(RecursionError):
        yaml.load("[" * limit + "]" * limit, Loader=yaml.SafeLoader)


# --- aliases --------------------------------------------------------------------------------


def test_the_documented_alias_limit() -> None:
    assert MAX_ALIAS_VALUES == 100_000


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param(_bomb(6), 5, id="repro-f7-460-bytes"),
        pytest.param(_bomb(9), 5, id="billion-laughs"),
        pytest.param(
            "m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9, j: 10}\n"
            + "".join(
                f"m{i}: &m{i} {{" + ", ".join(f"{k}: *m{i - 1}" for k in "abcdefghij") + "}\n"
                for i in range(1, 7)
            ),
            5,
            id="mappings",
        ),
        pytest.param(
            "b: &b [" + ", ".join(["x"] * 400) + "]\n" + "c:\n" + "  - *b\n" * 300,
            2,
            id="one-wide-anchor-used-often",
        ),
    ],
)
def test_alias_copies_past_the_limit_are_refused_with_the_line_of_the_key(
    tmp_path: Path, text: str, line: int
) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_text(tmp_path, text)
    message = str(caught.value)
    assert re.fullmatch(
        rf"config\.yml:{RUN_LINES + line}: key '[a-z0-9.]+': YAML aliases expand to more than "
        r"100,000 values \(aliases are copied: nested anchors multiply; write the values out\)",
        message,
    ), message


def test_aliases_within_the_limit_are_copied_not_shared(tmp_path: Path) -> None:
    config = resolve_text(tmp_path, _bomb(3) + "m: &m {x: [1]}\nn: {<<: *m, y: 2}\n")
    config = config.entry_config
    assert len(config["l3"]) == 10
    assert config["l3"][9][9][9] == ["lol"] * 10  # 11,110 values
    assert config["l3"][0] is not config["l3"][1]
    assert config["n"] == {"x": [1], "y": 2}
    assert config["n"]["x"] is not config["m"]["x"]


def test_the_peer_shares_alias_nodes_where_the_engine_copies() -> None:
    """yaml.safe_load builds the bomb cheaply by sharing: any consumer that copies (the
    engine, json.dumps) pays the full expansion, hence a bound on the copies."""
    loaded = yaml.safe_load(_bomb(6))
    assert loaded["l6"][0] is loaded["l6"][1]


# --- references copying ---------------------------------------------------------------------


def _reference_bomb(levels: int, width: int = 10) -> str:
    """As `_bomb`, with whole references instead of aliases (a reference is a copy too)."""
    text = "r0: [" + ", ".join(["lol"] * width) + "]\n"
    for level in range(1, levels + 1):
        text += f"r{level}: [" + ", ".join([f"'{{r{level - 1}}}'"] * width) + "]\n"
    return text


def test_the_documented_reference_copy_limit() -> None:
    assert MAX_REFERENCE_VALUES == 1_000_000


@pytest.mark.parametrize("levels", [7, 10])
def test_references_copying_past_the_limit_are_refused(tmp_path: Path, levels: int) -> None:
    """Issue 11, the alias bomb's twin: 7 levels (640 bytes) took 25 s and 2.3 GB."""
    with pytest.raises(ConfigError) as caught:
        resolve_text(tmp_path, _reference_bomb(levels))
    message = str(caught.value)
    assert re.fullmatch(
        rf"config\.yml:{RUN_LINES + 6}: key 'r5\.\d': references copy more than 1,000,000 "
        r"values \(each whole reference to a mapping or list is a copy: references multiply\)",
        message,
    ), message


def test_references_copying_within_the_limit_resolve(tmp_path: Path) -> None:
    config = resolve_text(tmp_path, _reference_bomb(4)).entry_config  # r4: 111,110 values
    assert config["r4"][9][9][9][9] == ["lol"] * 10
    assert config["r4"][0] is not config["r4"][1]


def _text_bomb(levels: int) -> str:
    text = "s0: xxxxxxxxxx\n"
    for level in range(1, levels + 1):
        text += f"s{level}: '" + f"{{s{level - 1}}}" * 10 + "'\n"
    return text


def test_the_documented_reference_text_limit() -> None:
    assert MAX_REFERENCE_TEXT == 10_000_000


def test_references_inserting_too_much_text_are_refused(tmp_path: Path) -> None:
    """412 bytes, 7 levels: 100 MB of text (560 MB with --print-config); 8 levels, 1 GB."""
    with pytest.raises(ConfigError) as caught:
        resolve_text(tmp_path, _text_bomb(8))
    assert str(caught.value) == (
        f"config.yml:{RUN_LINES + 7}: key 's6': references insert more than 10,000,000 "
        "characters into text (text built from references of references multiplies)"
    )


def test_references_inserting_text_within_the_limit_resolve(tmp_path: Path) -> None:
    config = resolve_text(tmp_path, _text_bomb(5)).entry_config
    assert config["s5"] == "x" * 1_000_000


# --- reference chains and cycles ------------------------------------------------------------


@pytest.mark.parametrize("length", [180, 5_000])
def test_a_long_reference_chain_resolves(tmp_path: Path, length: int) -> None:
    text = "".join(f"a{i}: '{{a{i + 1}}}'\n" for i in range(length)) + f"a{length}: [1, 2]\n"
    config = resolve_text(tmp_path, text).entry_config
    assert config["a0"] == [1, 2]
    assert config["a0"] is not config[f"a{length}"]


@pytest.mark.parametrize(
    ("length", "shown"),
    [
        pytest.param(1, "c0 -> c0", id="self"),
        pytest.param(2, "c0 -> c1 -> c0", id="two"),
        pytest.param(7, "c0 -> c1 -> c2 -> c3 -> c4 -> c5 -> c6 -> c0", id="seven"),
        pytest.param(200, "c0 -> c1 -> c2 -> ... -> c198 -> c199 -> c0 (200 keys)", id="r11-200"),
        pytest.param(5000, "c0 -> c1 -> c2 -> ... -> c4998 -> c4999 -> c0 (5000 keys)", id="5000"),
    ],
)
def test_a_reference_cycle_of_any_length_is_named(tmp_path: Path, length: int, shown: str) -> None:
    text = "".join(f"c{i}: 'x{{c{(i + 1) % length}}}'\n" for i in range(length))
    with pytest.raises(ConfigError) as caught:
        resolve_text(tmp_path, text)
    assert str(caught.value) == f"config.yml:{RUN_LINES + 1}: key 'c0': reference cycle: {shown}"


def test_a_cycle_through_a_referenced_mapping_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_text(tmp_path, "a:\n  b: '{a}'\n")
    assert str(caught.value) == (
        f"config.yml:{RUN_LINES + 2}: key 'a.b': reference cycle: a.b -> a -> a.b"
    )


def test_warnings_keep_their_order_through_a_chain(tmp_path: Path) -> None:
    text = "x: '{nope1} {y}'\ny: '{nope2}'\nz: '$NOPE3'\n"
    warnings = [str(w) for w in resolve_text(tmp_path, text).warnings]
    assert [re.search(r"nope\d|NOPE\d", w).group() for w in warnings] == [  # type: ignore[union-attr]
        "nope1",
        "nope2",
        "NOPE3",
    ]


# --- file size ------------------------------------------------------------------------------


def test_an_endless_config_file_is_refused_after_the_documented_size(tmp_path: Path) -> None:
    """`expyrun /dev/zero` ran out of memory (MemoryError, exit 70)."""
    assert MAX_FILE_BYTES == 16 * 2**20
    with pytest.raises(ConfigError) as caught:
        resolve("/dev/zero", cwd=tmp_path, environ={})
    assert str(caught.value) == (
        "/dev/zero: the config file is larger than 16 MiB (a config holds settings; load data "
        "from your entry point)"
    )
    big = tmp_path / "big.yml"
    big.write_bytes(RUN.encode() + b"#" * MAX_FILE_BYTES)
    with pytest.raises(ConfigError, match="larger than 16 MiB"):
        resolve(big, cwd=tmp_path, environ={})


def test_a_default_that_is_a_device_is_not_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_text(tmp_path, "__default__: /dev/zero\n")
    assert str(caught.value) == (
        "config.yml:5: key '__default__': default config /dev/zero: not a regular file"
    )


def test_a_config_read_from_a_pipe_resolves(tmp_path: Path) -> None:
    """`expyrun <(make-config)`: the shell passes a pipe's path."""
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "w") as stream:  # blocks until the engine opens it
            stream.write(RUN + "lr: 0.5\n")

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    assert resolve(fifo, cwd=tmp_path, environ={}).entry_config == {"lr": 0.5}
    writer.join(timeout=10)


# --- numbers past Python's int conversion limit ---------------------------------------------


def test_a_variable_with_more_digits_than_python_converts_stays_text(tmp_path: Path) -> None:
    """`a: $BIG` with 5,000 digits: int() raised ValueError past 4,300 digits (exit 70)."""
    digits = "7" * (sys.get_int_max_str_digits() + 1)
    config = resolve_text(tmp_path, "a: $BIG\nb: 'x{a}'\n", environ={"BIG": digits})
    assert config.entry_config == {"a": digits, "b": "x" + digits}


def test_an_integer_with_more_digits_than_python_converts_is_refused_shortly(
    tmp_path: Path,
) -> None:
    digits = "7" * (sys.get_int_max_str_digits() + 1)
    with pytest.raises(ConfigError) as caught:
        resolve_text(tmp_path, f"n: {digits}\n")
    assert str(caught.value) == (
        f"config.yml:5: key 'n': cannot read '{'7' * 40}'... ({len(digits)} characters) as !!int"
    )
