"""Loading: safe YAML with file:line, keys, `__default__` chains and their path rules."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from config_support import RUN, resolve_text, warning_texts, write

from expyrun.config import dump_config, dump_raw, resolve
from expyrun.config.loading import MAX_CHAIN, default_path
from expyrun.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a: yes", True, id="yaml11-yes-is-bool"),
        pytest.param("a: 1.0e+5", 100000.0, id="yaml11-float-with-dot"),
        # Issue 17: YAML 1.2 floats, which YAML 1.1 (PyYAML) reads as strings.
        pytest.param("a: 1e5", 100000.0, id="yaml12-1e5-is-float"),
        pytest.param("a: 1e-3", 0.001, id="yaml12-negative-exponent"),
        pytest.param("a: 5E-4", 0.0005, id="yaml12-capital-e"),
        pytest.param("a: 1.0e5", 100000.0, id="yaml12-unsigned-exponent-with-dot"),
        pytest.param("a: -2e+2", -200.0, id="yaml12-signs"),
        pytest.param("a: .5e3", 500.0, id="yaml12-leading-dot"),
        pytest.param("a: [1e-3, {b: 2E2}]", [0.001, {"b": 200.0}], id="yaml12-in-collections"),
        pytest.param("a: '1e-3'", "1e-3", id="quoted-exponent-is-str"),
        pytest.param("a: 1e", "1e", id="no-exponent-digits-is-str"),
        pytest.param("a: e5", "e5", id="no-mantissa-is-str"),
        pytest.param("a: 1_0e5", "1_0e5", id="underscore-exponent-is-str"),
        pytest.param("a: 0x10", 16, id="yaml11-hex"),
        pytest.param("a: 2024-01-02", datetime.date(2024, 1, 2), id="date"),
        pytest.param("a: ~", None, id="null"),
        pytest.param("a: !!str 5", "5", id="explicit-str-tag"),
        pytest.param("a: !!float 5", 5.0, id="explicit-float-tag"),
        pytest.param("a: 'x'", "x", id="quoted"),
        pytest.param("a: [1, [2, {b: 3}]]", [1, [2, {"b": 3}]], id="nested-lists"),
    ],
)
def test_values_follow_yaml_safe_load(tmp_path: Path, text: str, expected: object) -> None:
    value = resolve_text(tmp_path, text).entry_config["a"]
    assert value == expected
    assert type(value) is type(expected)


def test_the_loader_stays_the_c_loader_with_yaml12_floats() -> None:
    import yaml

    from expyrun.config.composing import ConfigLoader

    if hasattr(yaml, "CSafeLoader"):
        assert issubclass(ConfigLoader, yaml.CSafeLoader)
    # The resolver is the loader's own: PyYAML's safe loader is left as it is.
    assert yaml.safe_load("a: 1e-3") == {"a": "1e-3"}


def test_empty_mappings_are_kept(tmp_path: Path) -> None:
    """Defect 9: `empty: {}` vanished from the config given to the entry point."""
    resolved = resolve_text(tmp_path, "empty: {}\nnested: {inner: {}}\n")
    assert resolved.entry_config == {"empty": {}, "nested": {"inner": {}}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param('"a.b": 1', {"a": {"b": 1}}, id="split"),
        pytest.param('"a.b": 1\na: {c: 2}', {"a": {"b": 1, "c": 2}}, id="dotted-then-mapping"),
        pytest.param('a: {c: 2}\n"a.b": 1', {"a": {"c": 2, "b": 1}}, id="mapping-then-dotted"),
        pytest.param('"a.b.c": 1\n"a.b.d": 2', {"a": {"b": {"c": 1, "d": 2}}}, id="two-dotted"),
    ],
)
def test_dotted_keys_are_split_into_nesting(tmp_path: Path, text: str, expected: object) -> None:
    assert resolve_text(tmp_path, text).entry_config == expected


# Issue 17: `\.` keeps a dot inside a key (Kafka options, dataset names, Kubernetes labels).
DOTTED = r"""
kafka:
  bootstrap\.servers: host:9092
  enable: false
  'enable\.auto\.commit': true
c4\.en: {split: train}
labels: {app\.kubernetes\.io/name: web}
servers: '{kafka.bootstrap\.servers}'
commit: "{kafka.enable\\.auto\\.commit}"
label: x-{c4\.en.split}
"""
DOTTED_CONFIG = {
    "kafka": {"bootstrap.servers": "host:9092", "enable": False, "enable.auto.commit": True},
    "c4.en": {"split": "train"},
    "labels": {"app.kubernetes.io/name": "web"},
    "servers": "host:9092",
    "commit": True,
    "label": "x-train",
}


def test_an_escaped_dot_stays_in_the_key(tmp_path: Path) -> None:
    resolved = resolve_text(tmp_path, DOTTED)
    assert resolved.entry_config == DOTTED_CONFIG
    assert resolved.warnings == ()


def test_keys_with_a_dot_are_overridden_and_round_trip(tmp_path: Path) -> None:
    overrides = [r"--kafka.bootstrap\.servers", "other:1", r"--c4\.en.split=test"]
    first = resolve_text(tmp_path, DOTTED, overrides)
    assert first.entry_config["kafka"]["bootstrap.servers"] == "other:1"
    assert first.entry_config["servers"] == "other:1"
    assert first.entry_config["c4.en"] == {"split": "test"}
    for name, text in (("config.yml", dump_config(first.config)), ("raw.yml", dump_raw(first.raw))):
        assert r"bootstrap\.servers: other:1" in text
        again = resolve(write(tmp_path, f"stored/{name}", text), cwd=tmp_path, environ={})
        assert again.config == first.config, name


@pytest.mark.parametrize(
    ("override", "message"),
    [
        pytest.param(
            "--kafka.bootstrap.servers",
            r"key 'kafka.bootstrap.servers': no such key to override (did you mean "
            r"'kafka.bootstrap\.servers'?)",
            id="unescaped-override",
        ),
        pytest.param(
            "--c4.en.split",
            r"key 'c4.en.split': no such key to override (did you mean 'c4\.en.split'?)",
            id="unescaped-first-part",
        ),
    ],
)
def test_an_unescaped_dot_suggests_the_escaped_key(
    tmp_path: Path, override: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_text(tmp_path, DOTTED, [override, "x"])
    assert str(caught.value) == "command line: " + message


def test_an_unescaped_reference_to_a_key_with_a_dot_warns_with_the_key(tmp_path: Path) -> None:
    resolved = resolve_text(tmp_path, DOTTED + "bad: '{kafka.bootstrap.servers}'\n")
    assert warning_texts(resolved) == [
        "config.yml:15: key 'bad': unresolved reference {kafka.bootstrap.servers}: replaced by "
        r"'' (did you mean 'kafka.bootstrap\.servers'?)"
    ]


def test_a_backslash_in_double_quotes_says_how_to_write_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_text(tmp_path, 'a: "{kafka.bootstrap\\.servers}"\n'.replace("\\\\", "\\"))
    assert str(caught.value) == (
        "config.yml:5: invalid YAML: found unknown escape character (in double quotes a "
        "backslash starts an escape: write \\\\ or use single quotes)"
    )


def test_yaml_aliases_and_merge_keys_are_copies(tmp_path: Path) -> None:
    resolved = resolve_text(
        tmp_path,
        """
        base: &base {lr: 0.1, sizes: [1, 2]}
        other: *base
        merged:
          <<: *base
          lr: 0.2
        """,
    )
    config = resolved.entry_config
    assert config["other"] == {"lr": 0.1, "sizes": [1, 2]}
    assert config["merged"] == {"lr": 0.2, "sizes": [1, 2]}
    assert config["other"]["sizes"] is not config["base"]["sizes"]


def test_the_config_path_is_relative_to_the_given_cwd(tmp_path: Path) -> None:
    write(tmp_path, "configs/c.yml", RUN + "a: 1\n")
    resolved = resolve("configs/c.yml", cwd=tmp_path, environ={})
    assert resolved.entry_config == {"a": 1}


def test_default_and_policy_keys_never_reach_the_config(tmp_path: Path) -> None:
    """Defect 10: `__new_key_policy__` leaked into the config when there was no default."""
    write(tmp_path, "base.yml", "__new_key_policy__: pass\nb: 1\n")
    resolved = resolve_text(tmp_path, "__default__: base.yml\n__new_key_policy__: raise\n")
    alone = resolve_text(tmp_path, "__new_key_policy__: raise\na: 1\n")
    assert "__new_key_policy__" not in resolved.config
    assert "__default__" not in resolved.config
    assert "__default__" not in resolved.raw
    assert alone.entry_config == {"a": 1}


# --- __default__ -----------------------------------------------------------------------------


def test_readme_example_merges_defaults(tmp_path: Path) -> None:
    write(tmp_path, "configs/data.yml", "data:\n  location: $DATA_FOLDER\n  train_size: 0.7\n")
    write(
        tmp_path,
        "configs/experiments/first_method.yml",
        """
        __default__: ../data.yml
        __run__:
            __main__: my_code.experiments.first_method:main
            __output_dir__: $OUTPUT_DIR
            __name__: first_method/{model.name}-{training.lr}
        seed: 666
        model:
            name: MyModel
        training:
            seed: "{seed}"
            lr: 0.001
            batch_size: 10
        """,
    )
    write(
        tmp_path,
        "configs/experiments/second_method.yml",
        """
        __default__: ./first_method.yml
        __run__:
            __main__: my_code.experiments.second_method:main
            __name__: second_method/{model.name}-{training.size}
        seed: 777
        model:
            name: MyModelBis
        training:
            lr: 0.1
            size: [10, 10]
        """,
    )
    environ = {"DATA_FOLDER": "/data", "OUTPUT_DIR": str(tmp_path / "outputs")}
    resolved = resolve(
        "configs/experiments/second_method.yml",
        ["--training.size", "15,15"],
        cwd=tmp_path,
        environ=environ,
    )
    assert resolved.entry_config == {
        "data": {"location": "/data", "train_size": 0.7},
        "seed": 777,
        "model": {"name": "MyModelBis"},
        "training": {"seed": 777, "lr": 0.1, "batch_size": 10, "size": [15, 15]},
    }
    assert resolved.run.name == "second_method/MyModelBis-[15, 15]"
    assert resolved.run.entry == "my_code.experiments.second_method:main"
    assert resolved.run.output_dir == tmp_path / "outputs"


def test_defaults_merge_in_order_then_the_file_with_its_policy(tmp_path: Path) -> None:
    """behaviour.md §2: base.yml from the cwd, ./first.yml next to the file."""
    write(tmp_path, "base.yml", "a: 1\nm: {x: 1, y: 2}\n")
    write(tmp_path, "sub/first.yml", "a: 2\nm: {y: 20}\n")
    child = write(
        tmp_path, "sub/child.yml", RUN + "__default__: [base.yml, ./first.yml]\nm: {z: 3}\n"
    )
    resolved = resolve(child, cwd=tmp_path, environ={})
    assert resolved.entry_config == {"a": 2, "m": {"x": 1, "y": 20, "z": 3}}
    assert warning_texts(resolved) == [
        "sub/child.yml:6: key 'm.z': new key, absent from the defaults"
    ]


def test_diamond_inheritance_right_wins(tmp_path: Path) -> None:
    write(tmp_path, "top.yml", "a: top\nb: top\nc: top\n")
    write(tmp_path, "left.yml", "__default__: ./top.yml\na: left\nb: left\n")
    write(tmp_path, "right.yml", "__default__: ./top.yml\nb: right\n")
    resolved = resolve_text(tmp_path, "__default__: [./left.yml, ./right.yml]\n")
    # right.yml carries top's `a`, which wins over left's: top is merged under each branch.
    assert resolved.entry_config == {"a": "top", "b": "right", "c": "top"}


def test_run_section_may_live_in_a_default(tmp_path: Path) -> None:
    write(tmp_path, "base.yml", RUN)
    resolved = resolve_text(tmp_path, "__default__: ./base.yml\n", run=False)
    assert resolved.run.entry == "pkg.mod:main"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param("/abs/x.yml", "/abs/x.yml", id="absolute"),
        pytest.param("./x.yml", "{file_dir}/x.yml", id="dot-slash-from-the-file"),
        pytest.param("../x.yml", "{file_dir}/../x.yml", id="dot-dot-from-the-file"),
        pytest.param("x.yml", "{cwd}/x.yml", id="plain-from-the-cwd"),
        pytest.param("sub/x.yml", "{cwd}/sub/x.yml", id="plain-folder-from-the-cwd"),
        # Defect 12: any path starting with "." was taken from the file's folder.
        pytest.param(".hid/x.yml", "{cwd}/.hid/x.yml", id="dot-hidden-from-the-cwd"),
        pytest.param("..x.yml", "{cwd}/..x.yml", id="dotdot-name-from-the-cwd"),
        pytest.param("~/x.yml", "{home}/x.yml", id="tilde-expanded"),
    ],
)
def test_default_path_rules(tmp_path: Path, spec: str, expected: str) -> None:
    file_dir = tmp_path / "configs"
    cwd = tmp_path / "launch"
    path = default_path(spec, file_dir / "c.yml", cwd)
    home = os.path.expanduser("~")
    assert str(path) == expected.format(file_dir=file_dir, cwd=cwd, home=home)


def test_hidden_folder_default_is_found_from_the_cwd(tmp_path: Path) -> None:
    """Defect 12, end to end: `.hid/h.yml` is relative to the launch directory."""
    write(tmp_path, ".hid/h.yml", "h: 1\n")
    resolved = resolve_text(tmp_path, "__default__: .hid/h.yml\n")
    assert resolved.entry_config == {"h": 1}


def test_nested_plain_default_is_from_the_cwd_not_the_file(tmp_path: Path) -> None:
    write(tmp_path, "shared.yml", "s: cwd\n")
    write(tmp_path, "configs/shared.yml", "s: configs\n")
    write(tmp_path, "configs/mid.yml", "__default__: shared.yml\n")
    resolved = resolve_text(tmp_path, "__default__: ./configs/mid.yml\n")
    assert resolved.entry_config == {"s": "cwd"}


def test_default_null_or_empty_list_means_no_default(tmp_path: Path) -> None:
    assert resolve_text(tmp_path, "__default__:\na: 1\n").entry_config == {"a": 1}
    assert resolve_text(tmp_path, "__default__: []\na: 1\n").entry_config == {"a": 1}


def test_a_default_is_read_once_in_a_diamond(tmp_path: Path) -> None:
    """A shared default's warnings are reported once, not once per path to it."""
    write(tmp_path, "top.yml", "__default__: ./base.yml\nnew: 1\n")
    write(tmp_path, "base.yml", "b: 1\n")
    write(tmp_path, "left.yml", "__default__: ./top.yml\n")
    write(tmp_path, "right.yml", "__default__: ./top.yml\n")
    resolved = resolve_text(tmp_path, "__default__: [./left.yml, ./right.yml]\n")
    assert warning_texts(resolved) == ["top.yml:2: key 'new': new key, absent from the defaults"]


def test_default_cycle_names_the_chain(tmp_path: Path) -> None:
    """Defect 11: a cycle was a RecursionError."""
    write(tmp_path, "a.yml", "__default__: ./b.yml\n")
    write(tmp_path, "b.yml", "__default__: ./c.yml\n")
    write(tmp_path, "c.yml", "x: 1\n__default__: ./a.yml\n")
    with pytest.raises(ConfigError) as caught:
        resolve(tmp_path / "a.yml", cwd=tmp_path, environ={})
    assert str(caught.value) == (
        "c.yml:2: key '__default__': __default__ cycle: a.yml -> b.yml -> c.yml -> a.yml"
    )


def _chain(root: Path, files: int) -> Path:
    """c0.yml -> c1.yml -> ... : `files` files, each setting its own key."""
    for i in range(files):
        head = f"__default__: ./c{i + 1}.yml\n" if i < files - 1 else RUN
        write(root, f"c{i}.yml", head + f"k{i}: {i}\n")
    return root / "c0.yml"


def test_a_default_chain_of_the_most_files_merges(tmp_path: Path) -> None:
    config = resolve(_chain(tmp_path, MAX_CHAIN), cwd=tmp_path, environ={}).entry_config
    assert config == {f"k{i}": i for i in range(MAX_CHAIN)}


@pytest.mark.parametrize("files", [MAX_CHAIN + 1, 400])
def test_a_longer_default_chain_is_refused(tmp_path: Path, files: int) -> None:
    """Issue 11: a chain of 400 files ended in RecursionError (exit 70)."""
    with pytest.raises(ConfigError) as caught:
        resolve(_chain(tmp_path, files), cwd=tmp_path, environ={})
    assert str(caught.value) == (
        "c63.yml:1: key '__default__': a __default__ chain of more than 64 files "
        "(c0.yml -> c1.yml -> ... -> c63.yml -> c64.yml)"
    )


def test_missing_default_hints_at_the_path_rule(tmp_path: Path) -> None:
    write(tmp_path, "configs/base.yml", "b: 1\n")
    config = write(tmp_path, "configs/c.yml", RUN + "__default__: base.yml\n")
    with pytest.raises(ConfigError) as caught:
        resolve(config, cwd=tmp_path, environ={})
    assert caught.value.line == 5
    assert caught.value.key == "__default__"
    assert "base.yml: no such file" in caught.value.message
    assert caught.value.hint == (
        "other paths are relative to the launch directory: write ./base.yml"
    )


def test_origins_name_file_and_line_of_each_key(tmp_path: Path) -> None:
    write(tmp_path, "base.yml", "m:\n  x: 1\n  y: [a, b]\n")
    resolved = resolve_text(
        tmp_path,
        "__default__: ./base.yml\nm:\n  y: '{nope}'\n  z: 1\n",
    )
    assert warning_texts(resolved) == [
        "config.yml:8: key 'm.z': new key, absent from the defaults",
        "config.yml:7: key 'm.y': unresolved reference {nope}: replaced by ''",
    ]


def test_absolute_default_path(tmp_path: Path) -> None:
    base = write(tmp_path, "elsewhere/base.yml", "b: 1\n")
    assert resolve_text(tmp_path, f"__default__: {base}\n").entry_config == {"b": 1}


def test_the_original_example_folder(tmp_path: Path) -> None:
    """behaviour.md §12: list defaults, override order, variables, cross-file references."""
    write(tmp_path, "example/config/train.yml", "training: {lr: 0.001, batch_size: 64, epoch: 3}\n")
    write(tmp_path, "example/config/data.yml", "data: {location: $DATA_FOLDER, preprocess: True}\n")
    write(
        tmp_path,
        "example/config/scheduler.yml",
        'scheduler: {decay: [10, 10, 10], lr: "{training.lr}"}\n',
    )
    write(
        tmp_path,
        "example/config/example.yml",
        """
        __default__: [./scheduler.yml, ./data.yml, ./train.yml]
        __run__:
            __main__: src.hello:main
            __output_dir__: /tmp/expyrun-example
            __name__: "example-{training.batch_size}-{training.lr}"
        training:
            lr: 10.0
        """,
    )
    resolved = resolve(
        "config/example.yml", cwd=tmp_path / "example", environ={"DATA_FOLDER": "/some/dir"}
    )
    assert resolved.run.name == "example-64-10.0"
    assert resolved.entry_config == {
        "scheduler": {"decay": [10, 10, 10], "lr": 10.0},
        "data": {"location": "/some/dir", "preprocess": True},
        "training": {"lr": 10.0, "batch_size": 64, "epoch": 3},
    }
    assert resolved.warnings == ()


def test_pure_python_yaml_gives_the_same_results(tmp_path: Path) -> None:
    """Without libyaml, PyYAML's own parser and emitter are used: same config, same lines."""
    resolved = resolve_text(tmp_path, "a: [1, {b: '{a.0}'}]\nd: 2024-01-02\nn: '{nope}'\n")
    script = (
        "import json, sys, yaml\n"
        "del yaml.CSafeLoader, yaml.CSafeDumper\n"
        "from expyrun.config import resolve, dump_config\n"
        "r = resolve('config.yml', cwd=sys.argv[1], environ={})\n"
        "print(json.dumps([dump_config(r.config), [str(w) for w in r.warnings]]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(done.stdout) == [dump_config(resolved.config), warning_texts(resolved)]


def test_missing_dot_slash_default_hints_at_the_launch_directory(tmp_path: Path) -> None:
    write(tmp_path, "base.yml", "b: 1\n")
    config = write(tmp_path, "configs/c.yml", RUN + "__default__: ./base.yml\n")
    with pytest.raises(ConfigError) as caught:
        resolve(config, cwd=tmp_path, environ={})
    assert str(caught.value) == (
        "configs/c.yml:5: key '__default__': default config configs/base.yml: no such file "
        "(paths starting with ./ or ../ are relative to the file naming them)"
    )


def test_merge_key_lists_the_first_mapping_first(tmp_path: Path) -> None:
    resolved = resolve_text(
        tmp_path,
        "a: &a {x: a, y: a}\nb: &b {x: b, z: b}\nc:\n  <<: [*a, *b]\n  y: own\n",
    )
    assert resolved.entry_config["c"] == {"x": "a", "y": "own", "z": "b"}
