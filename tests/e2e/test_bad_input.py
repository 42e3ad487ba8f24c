"""The bad-input catalogue: each row is a mistake a user makes, through the real CLI.

Every row must give exit code 2, exactly one line on stderr that names the file, the key or
the entry point (matching `pattern`), no traceback, and no run folder. The `--slurm` rows
also leave no output dir and print nothing on stdout; they never reach a real Slurm (a fake
`sbatch`, or none, is the whole PATH). Rows after the tables check failures inside the user's
code: they get the child's exit code and the traceback lands in outputs.log instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from support import EXPYRUN, Project, Result, child_env, run

ENTRY = "def main(name, config):\n    print('ran')\n"


def _base(project: Project) -> dict:
    project.write("pkg/__init__.py", "")
    project.write("pkg/main.py", ENTRY)
    return {
        "__run__": {
            "__main__": "pkg.main:main",
            "__name__": "exp",
            "__output_dir__": str(project.output),
        },
        "lr": 0.1,
        "layers": [{"size": 3}],
    }


def _config(project: Project, data: object, name: str = "config.yml") -> Path:
    return project.write(name, yaml.safe_dump(data, sort_keys=False))


def _with(change: Callable[[dict], None]) -> Callable[[Project], list[str]]:
    def setup(project: Project) -> list[str]:
        data = _base(project)
        change(data)
        return [str(_config(project, data))]

    return setup


def _text(text: str, *extra: str) -> Callable[[Project], list[str]]:
    def setup(project: Project) -> list[str]:
        _base(project)
        return [str(project.write("config.yml", text)), *extra]

    return setup


def _args(*extra: str) -> Callable[[Project], list[str]]:
    def setup(project: Project) -> list[str]:
        return [str(_config(project, _base(project))), *extra]

    return setup


def _run_key(key: str, value: object) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        if value is None:
            del data["__run__"][key]
        else:
            data["__run__"][key] = value

    return change


def _entry_module(text: str) -> Callable[[Project], list[str]]:
    def setup(project: Project) -> list[str]:
        data = _base(project)
        project.write("pkg/main.py", text)
        return [str(_config(project, data))]

    return setup


def _missing_file(project: Project) -> list[str]:
    return [str(project.root / "nope.yml")]


def _directory(project: Project) -> list[str]:
    (project.root / "cfgdir").mkdir(parents=True)
    return [str(project.root / "cfgdir")]


def _default_cycle(project: Project) -> list[str]:
    data = _base(project)
    project.write("b.yml", "__default__: ./a.yml\nx: 1\n")
    data["__default__"] = "./b.yml"
    return [str(_config(project, data, "a.yml"))]


def _missing_default(project: Project) -> list[str]:
    data = _base(project)
    data["__default__"] = "./not-there.yml"
    return [str(_config(project, data))]


def _default_chain_of_400(project: Project) -> list[str]:
    data = _base(project)
    for i in range(1, 400):
        link = f"__default__: ./c{i + 1}.yml\n" if i < 399 else ""
        project.write(f"c{i}.yml", link + f"k{i}: {i}\n")
    data["__default__"] = "./c1.yml"
    return [str(_config(project, data, "c0.yml"))]


def _output_dir_is_a_file(project: Project) -> list[str]:
    data = _base(project)
    project.write("taken", "a file, not a folder")
    data["__run__"]["__output_dir__"] = str(project.root / "taken")
    return [str(_config(project, data))]


def _code_dir_missing(project: Project) -> list[str]:
    data = _base(project)
    data["__run__"]["__code__"] = str(project.root / "no-code-here")
    return [str(_config(project, data))]


def _with_args(change: Callable[[dict], None], *extra: str) -> Callable[[Project], list[str]]:
    def setup(project: Project) -> list[str]:
        data = _base(project)
        change(data)
        return [str(_config(project, data)), *extra]

    return setup


def _in_existing_output(change: Callable[[dict], None], *extra: str) -> Callable[..., list[str]]:
    """As `_with`, the output dir made first (os.listdir of a too-long name raised there)."""

    def setup(project: Project) -> list[str]:
        project.output.mkdir(parents=True)
        return _with_args(change, *extra)(project)

    return setup


# Issue 11: faults that ended in exit 70 and a traceback, or made a run folder first.
_BOMB = (
    "l0: &l0 ["
    + ", ".join(['"lol"'] * 10)
    + "]\n"
    + "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n" for i in range(1, 7))
)
_REFERENCE_BOMB = (
    "r0: ["
    + ", ".join(["lol"] * 10)
    + "]\n"
    + "".join(f"r{i}: [" + ", ".join([f"'{{r{i - 1}}}'"] * 10) + "]\n" for i in range(1, 8))
)
_TEXT_BOMB = "s0: xxxxxxxxxx\n" + "".join(
    f"s{i}: '" + f"{{s{i - 1}}}" * 10 + "'\n" for i in range(1, 9)
)
_DEEP = "a: " + "{a: " * 328 + '"{b}"' + "}" * 328 + "\nb: 1\n"
_CYCLE = "".join(f'c{i}: "{{c{(i + 1) % 200}}}"\n' for i in range(200))
_PLACED = "a: " + "{a: " * 127 + "1" + "}" * 127 + "\nx: {y: '{a}'}\n"
_APPLY = '[!!python/object/apply:os.system ["echo hi"]]'
_FLOW_BOMB = (
    "[&l0 [x, x, x, x, x, x, x, x, x, x]"
    + "".join(f", &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 8))
    + "]"
)
_LONG_PART = "n" * 300
_DEEP_NAME = "/".join(["n" * 200] * 20)


def _set(key: str, value: object) -> Callable[[dict], None]:
    return lambda data: data.update({key: value})


def _appended(text: str, *extra: str) -> Callable[[Project], list[str]]:
    """The base config with YAML `text` written after it, as a user would (unquoted braces)."""

    def setup(project: Project) -> list[str]:
        data = _base(project)
        base = yaml.safe_dump(data, sort_keys=False)
        return [str(project.write("config.yml", base + text)), *extra]

    return setup


_UNSET = "EXPYRUN_TEST_NEVER_SET_17"


def _unquoted_name(project: Project) -> list[str]:
    _base(project)
    text = (
        f"__run__:\n  __main__: pkg.main:main\n  __output_dir__: {project.output}\n"
        "  __name__: {model.name}\nmodel: {name: r}\n"
    )
    return [str(project.write("config.yml", text))]


CASES = [
    # --- the command line ---
    pytest.param(lambda p: [], r"missing the config file", id="no-arguments"),
    pytest.param(
        lambda p: ["--lr", "1", "c.yml"], r"config file first.*'--lr'", id="override-first"
    ),
    pytest.param(_args("--grace"), r"--grace needs a value", id="grace-without-value"),
    pytest.param(_args("--grace", "soon"), r"--grace.*'soon'", id="grace-not-a-number"),
    pytest.param(_args("--grace", "-1"), r"--grace.*'-1'", id="grace-negative"),
    pytest.param(_args("--lr"), r"lr", id="override-without-value"),
    pytest.param(_args("lr", "2"), r"lr", id="override-without-dashes"),
    pytest.param(_args("--lrr", "2"), r"lrr.*did you mean.*lr", id="override-unknown-key"),
    pytest.param(_args("--lr", "fast"), r"lr.*fast", id="override-untypable"),
    pytest.param(_args("--layers.5.size", "2"), r"layers", id="override-index-out-of-range"),
    # --- the config file ---
    pytest.param(_missing_file, r"nope\.yml", id="missing-file"),
    pytest.param(
        lambda p: ["/dev/zero"],
        r"^expyrun: error: /dev/zero: the config file is larger than 16 MiB",
        id="endless-config-file",  # issue 11: MemoryError, exit 70
    ),
    pytest.param(
        _with(lambda d: d.update(__default__="/dev/zero")),
        r"default config /dev/zero: not a regular file$",
        id="default-is-a-device",
    ),
    pytest.param(_directory, r"cfgdir", id="directory-not-file"),
    pytest.param(_text(""), r"config\.yml.*empty", id="empty-file"),
    pytest.param(_text("a: [1, 2\n"), r"config\.yml:\d+", id="yaml-syntax-error"),
    pytest.param(_text("- 1\n- 2\n"), r"config\.yml.*mapping", id="top-level-list"),
    pytest.param(_text("a: !!python/object:os.system {}\n"), r"config\.yml:1", id="python-tag"),
    pytest.param(_text("1: one\n__run__: {}\n"), r"config\.yml:1", id="non-string-key"),
    pytest.param(_text("a: 1\na: 2\n"), r"config\.yml:2.*a", id="duplicate-key"),
    pytest.param(_with(lambda d: d.pop("__run__")), r"__run__", id="missing-run-section"),
    pytest.param(_with(_run_key("__main__", None)), r"__main__", id="missing-main"),
    pytest.param(_with(_run_key("__name__", None)), r"__name__", id="missing-name"),
    pytest.param(_with(_run_key("__output_dir__", None)), r"__output_dir__", id="missing-output"),
    pytest.param(
        _with(_run_key("__main__", "pkg.main")), r"__main__.*pkg\.main", id="main-no-colon"
    ),
    pytest.param(_with(_run_key("__main__", "pkg main:f")), r"__main__", id="main-bad-name"),
    pytest.param(_with(_run_key("__name__", "../escape")), r"__name__|escape", id="name-dotdot"),
    pytest.param(_with(_run_key("__name__", "/abs/name")), r"__name__|/abs", id="name-absolute"),
    pytest.param(
        _args("--__run__.__name__", "a/../../up"), r"__name__|up", id="name-escape-by-override"
    ),
    pytest.param(_default_cycle, r"a\.yml.*b\.yml.*a\.yml", id="default-cycle"),
    pytest.param(_missing_default, r"not-there\.yml", id="missing-default"),
    pytest.param(_with(lambda d: d.update(x="{y}", y="{x}")), r"x.*y|y.*x", id="reference-cycle"),
    pytest.param(
        _with(lambda d: d.update(__new_key_policy__="maybe")), r"maybe", id="bad-key-policy"
    ),
    pytest.param(_args("--strict", "--lr", "{nothing}"), r"nothing", id="strict-warning"),
    # --- the entry point, found before anything is created ---
    pytest.param(_with(_run_key("__main__", "nopkg.main:main")), r"nopkg", id="missing-package"),
    pytest.param(_with(_run_key("__main__", "pkg.nomod:main")), r"nomod", id="missing-module"),
    pytest.param(_with(_run_key("__main__", "pkg.main:nofunc")), r"nofunc", id="missing-function"),
    pytest.param(
        _entry_module("def main():\n    pass\n"), r"pkg\.main:main.*\(name, config\)", id="no-args"
    ),
    pytest.param(
        _entry_module("def main(a, b, c):\n    pass\n"), r"\(name, config\)", id="three-args"
    ),
    pytest.param(
        _entry_module("async def main(name, config):\n    pass\n"), r"async", id="async-entry"
    ),
    pytest.param(_entry_module("def main(name, config)\n"), r"main\.py:1.*syntax", id="syntax"),
    pytest.param(_code_dir_missing, r"no-code-here|pkg", id="code-dir-missing"),
    # --- the output dir ---
    pytest.param(_output_dir_is_a_file, r"taken", id="output-dir-is-a-file"),
    # --- issue 11: limits of the config engine (exit 70 and a traceback before) ---
    pytest.param(
        _text(_BOMB),
        r"^expyrun: error: config\.yml:5: key 'l4[.0-9]*': YAML aliases expand to more than "
        r"100,000 values \(",
        id="alias-bomb-460-bytes",
    ),
    pytest.param(
        _text(_REFERENCE_BOMB),
        r"^expyrun: error: config\.yml:6: key 'r5\.\d': references copy more than 1,000,000 "
        r"values \(",
        id="reference-bomb-640-bytes",
    ),
    pytest.param(
        _text(_TEXT_BOMB),
        r"^expyrun: error: config\.yml:7: key 's6': references insert more than 10,000,000 "
        r"characters into text \(",
        id="reference-text-bomb-500-bytes",
    ),
    pytest.param(
        _text("n: " + "7" * 5000 + "\n"),
        r"^expyrun: error: config\.yml:1: key 'n': cannot read '7{40}'\.\.\. \(5000 characters\) "
        r"as !!int$",
        id="integer-past-pythons-digit-limit",
    ),
    pytest.param(
        _text(_DEEP), r"^expyrun: error: config\.yml:1: nested deeper than 128 levels$", id="deep"
    ),
    pytest.param(
        _text("a: " + "[" * 50_000 + "]" * 50_000 + "\n"),
        r"^expyrun: error: config\.yml:1: (nested deeper than 128|invalid YAML: .*nesting)",
        id="deep-enough-to-crash-libyaml",
    ),
    pytest.param(
        _text(_PLACED),
        r"^expyrun: error: config\.yml:2: key 'x\.y': nested deeper than 128 levels once \{a\}",
        id="reference-placed-too-deep",
    ),
    pytest.param(
        _default_chain_of_400,
        r"^expyrun: error: c63\.yml:1: key '__default__': a __default__ chain of more than 64 "
        r"files \(c0\.yml -> c1\.yml -> \.\.\. -> c63\.yml -> c64\.yml\)$",
        id="default-chain-of-400-files",
    ),
    pytest.param(
        _text(_CYCLE),
        r"^expyrun: error: config\.yml:1: key 'c0': reference cycle: c0 -> c1 -> c2 -> \.\.\. "
        r"-> c198 -> c199 -> c0 \(200 keys\)$",
        id="reference-cycle-of-200",
    ),
    pytest.param(
        _with_args(_set("n", None), "--n", _APPLY),
        r"^expyrun: error: command line: key 'n': cannot override with .*: unsupported YAML tag "
        r"!!python/object/apply:os\.system",
        id="python-tag-in-a-flow-list-override",
    ),
    pytest.param(
        _with_args(_set("n", None), "--n", _FLOW_BOMB),
        r"key 'n': cannot override with .*: YAML aliases expand to more than 100,000 values",
        id="alias-bomb-in-a-flow-list-override",
    ),
    pytest.param(
        _with_args(_set("n", None), "--n", "[" * 600 + "]" * 600),
        r"key 'n': cannot override with .*: nested deeper than 128 levels",
        id="override-nested-too-deep",
    ),
    # --- issue 11: run names and paths the run folder cannot have ---
    pytest.param(
        _in_existing_output(_run_key("__name__", _LONG_PART)),
        r"key '__run__\.__name__': a part of the path is 300 bytes, longer than the 255 the file "
        r"system allows",
        id="name-part-over-name-max",
    ),
    pytest.param(
        _in_existing_output(_run_key("__name__", _LONG_PART), "--print-config"),
        r"key '__run__\.__name__': a part of the path is 300 bytes",
        id="name-part-over-name-max-print-config",
    ),
    pytest.param(
        _with(_run_key("__name__", _DEEP_NAME)),
        r"key '__run__\.__name__': OUTPUT_DIR/NAME is \d+ bytes, longer than the \d+ that leave "
        r"room under PATH_MAX",
        id="run-folder-path-over-path-max",
    ),
    pytest.param(
        _with(_run_key("__output_dir__", "/tmp/" + "d" * 300)),
        r"key '__run__\.__output_dir__': a part of the path is 300 bytes",
        id="output-dir-part-over-name-max",
    ),
    pytest.param(
        _with(_run_key("__name__", "evil\nfake/exp.9")),
        r"key '__run__\.__name__': must not contain the control or invisible character U\+000A, "
        r"got 'evil\\nfake/exp\.9'$",
        id="name-with-a-newline",
    ),
    pytest.param(
        _with(_run_key("__name__", "nul\0byte")),
        r"key '__run__\.__name__': must not contain a NUL byte, got 'nul\\x00byte'$",
        id="name-with-a-nul",
    ),
    pytest.param(
        _with(_run_key("__name__", "r/exp.0")),
        r"key '__run__\.__name__': must not have a part named like a run folder \(exp\.N\)",
        id="name-inside-a-run-folder",
    ),
    # --- issue 17: pitfalls people hit, each with the suggestion in its line ---
    pytest.param(
        _args("--detatch"),
        r"key 'detatch': the override --detatch has no value \(did you mean expyrun's flag "
        r"--detach\?\)$",
        id="mistyped-flag",
    ),
    pytest.param(
        lambda p: ["--detatch", "c.yml"],
        r"expected the config file first, got '--detatch' \(did you mean --detach\?\)$",
        id="mistyped-flag-before-the-config",
    ),
    pytest.param(
        _args("--stric", "1"),
        r"key 'stric': no such key to override \(did you mean expyrun's flag --strict\?\)$",
        id="mistyped-flag-with-a-value",
    ),
    pytest.param(
        _args("--detach=true"),
        r"key 'detach': no such key to override \(--detach is expyrun's flag and takes no value: "
        r"write --detach; --detach=VALUE sets a config key named detach\)$",
        id="flag-with-equals",
    ),
    pytest.param(
        _with_args(_set("debug", False), "--debug", "false"),
        r"^expyrun: error: --debug is expyrun's flag and takes no value, got 'false' after it "
        r"\(to set a config key named debug, write --debug=false or -- --debug false\)$",
        id="key-named-like-a-flag",
    ),
    pytest.param(
        _args("training.lr=0.3"),
        r"got 'training\.lr=0\.3' \(did you mean --training\.lr=0\.3\?\)$",
        id="hydra-style-override",
    ),
    pytest.param(
        _with_args(_set("sizes", [8, 8]), "--sizes", "[8, 8.5]"),
        r"key 'sizes': cannot override with '\[8, 8\.5\]': item 1 \(8\.5\): expected an integer",
        id="list-item-of-the-wrong-type",
    ),
    pytest.param(
        _appended("kafka:\n  bootstrap\\.servers: h:1\n", "--kafka.bootstrap.servers", "x"),
        r"key 'kafka\.bootstrap\.servers': no such key to override \(did you mean "
        r"'kafka\.bootstrap\\\.servers'\?\)$",
        id="key-with-a-dot-unescaped",
    ),
    pytest.param(
        _with(_set("data", "${" + _UNSET + ":?set it to the dataset folder}")),
        rf"config\.yml:\d+: key 'data': environment variable {_UNSET} is not set: set it to the "
        r"dataset folder$",
        id="required-variable",
    ),
    pytest.param(
        _with_args(_set("data", "${" + _UNSET + ":/datasets}"), "--strict"),
        rf"key 'data': not a variable expression: \$\{{{_UNSET}:/datasets\}} is kept as text "
        rf"\(did you mean \$\{{{_UNSET}:-/datasets\}}\?\)$",
        id="invalid-variable-expression-strict",
    ),
    pytest.param(
        _unquoted_name,
        r"config\.yml:\d+: key '__run__\.__name__': write \"\{model\.name\}\" in quotes: YAML "
        r"reads \{model\.name\} as a mapping$",
        id="unquoted-reference-in-run",
    ),
    pytest.param(
        _appended("tag: {model}-{lr}\n"),
        r"config\.yml:\d+: invalid YAML: .*\(quote a value starting with \"\{\": YAML reads "
        r"\{\.\.\.\} as a mapping\)$",
        id="unquoted-references-then-text",
    ),
    pytest.param(
        _appended("seed: {seed}\n", "--strict"),
        r"config\.yml:\d+: key 'seed': write \"\{seed\}\" in quotes: YAML reads \{seed\} as a "
        r"mapping$",
        id="unquoted-reference-strict",
    ),
    pytest.param(
        _appended("tag: v1\n", "--strict", "--tag", "v2"),
        r"config\.yml:\d+: key 'tag': --tag on the command line is expyrun's flag and leaves this "
        r"key unchanged \(to set the key, write -- --tag VALUE at the end of the line\)$",
        id="value-flag-named-like-a-key-strict",
    ),
    pytest.param(
        _args("other.yml"),
        r"got 'other\.yml' \(one config file per launch: name the others in its __default__\)$",
        id="second-config-file",
    ),
    # --- issue 11: entry points that exist but are not functions (a run folder before) ---
    pytest.param(
        _entry_module("main = 5\n"),
        r"main\.py:1: entry point 'pkg\.main:main' is not a function: 'main' is the int 5$",
        id="entry-is-an-int",
    ),
    pytest.param(
        _entry_module("main = None\n"),
        r"entry point 'pkg\.main:main' is not a function: 'main' is None$",
        id="entry-is-none",
    ),
    pytest.param(
        _entry_module("main = lambda: None\n"),
        r"entry point 'pkg\.main:main' must accept \(name, config\): 'main' is a lambda",
        id="entry-lambda-without-parameters",
    ),
    pytest.param(
        _entry_module("def _impl(name):\n    pass\n\n\nmain = _impl\n"),
        r"main\.py:1: entry point 'pkg\.main:main' must accept \(name, config\)$",
        id="entry-alias-of-a-one-argument-function",
    ),
]


def _assert_one_clear_line(result: Result, pattern: str, project: Project, code: int = 2) -> None:
    assert result.code == code, result.describe()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.describe()
    assert lines[0].startswith("expyrun: error: "), result.describe()
    assert re.search(pattern, lines[0]), f"{pattern!r} not in {lines[0]!r}"
    assert "Traceback" not in result.stderr
    assert not (project.output / "exp").exists(), "a run folder was created"
    made = list(project.output.iterdir()) if project.output.is_dir() else []
    assert not made, f"the output dir holds {made}"


@pytest.mark.parametrize(("setup", "pattern"), CASES)
def test_bad_input_gets_one_clear_line_and_exit_2(
    project: Project, setup: Callable[[Project], list[str]], pattern: str
) -> None:
    args = setup(project)
    result = run(args, cwd=project.root)
    _assert_one_clear_line(result, pattern, project)


def test_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 55


# --- `--slurm` -------------------------------------------------------------------------------
# These rows run with a PATH of one folder holding only a fake `sbatch` (or nothing), so that
# a row never reaches a real Slurm. The fake writes its arguments to `sbatch-calls`: a row whose
# mistake must be found before the submission checks that sbatch was not called.

SBATCH_FAILS = (
    "echo 'sbatch: error: Batch job submission failed: Invalid partition name specified' >&2\n"
    "exit 1"
)


def _slurm(
    change: Callable[[dict], None] | None = None, *extra: str, sbatch: str | None = SBATCH_FAILS
) -> Callable[[Project], tuple[list[str], dict[str, str]]]:
    def setup(project: Project) -> tuple[list[str], dict[str, str]]:
        data = _base(project)
        if change is not None:
            change(data)
        bin_dir = project.root / "bin"
        bin_dir.mkdir()
        if sbatch is not None:
            fake = bin_dir / "sbatch"
            calls = project.root / "sbatch-calls"
            fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n{sbatch}\n')
            fake.chmod(0o755)
        return [str(_config(project, data)), "--slurm", *extra], {"PATH": str(bin_dir)}

    return setup


def _slurm_option(key: str, value: object) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        data["__run__"]["__slurm__"] = {"partition": "debug", key: value}

    return change


SLURM_CASES = [
    pytest.param(
        _slurm(_run_key("__slurm__", "gpu")),
        r"config\.yml:\d+: key '__run__\.__slurm__': expected a mapping of options, got a string",
        False,
        id="slurm-not-a-mapping",
    ),
    pytest.param(
        _slurm(_slurm_option("gres", ["gpu:1", "tmp:1G"])),
        r"key '__run__\.__slurm__\.gres': expected a single value, got a list",
        False,
        id="slurm-value-is-a-list",
    ),
    pytest.param(
        _slurm(_slurm_option("gres", {"gpu": 1})),
        r"key '__run__\.__slurm__\.gres': expected a single value, got a mapping",
        False,
        id="slurm-value-is-a-mapping",
    ),
    pytest.param(
        _slurm(None, "--__run__.__slurm__", "gpu"),
        r"__slurm__",
        False,
        id="slurm-mapping-overridden-by-a-string",
    ),
    pytest.param(
        _slurm(None, "--detach"), r"--slurm and --detach exclude each other", False, id="detach"
    ),
    pytest.param(
        _slurm(_slurm_option("wait", True)),
        r"key '__run__\.__slurm__\.wait': --wait cannot be given to a --slurm submission",
        False,
        id="slurm-refused-option",
    ),
    pytest.param(
        _slurm(_slurm_option("W", True)),
        r"key '__run__\.__slurm__\.W': --wait cannot be given to a --slurm submission",
        False,
        id="slurm-refused-short-option",
    ),
    pytest.param(
        _slurm(_slurm_option("1gpu", 1)),
        r"key '__run__\.__slurm__\.1gpu': not an sbatch option name",
        False,
        id="slurm-bad-option-name",
    ),
    pytest.param(
        _slurm(_slurm_option("comment", 'say "hi"')),
        r"__slurm__\.comment': an sbatch option value cannot hold quotes",
        False,
        id="slurm-quote-in-a-value",
    ),
    pytest.param(
        _slurm(_slurm_option("array", "3-1")),
        r"key '__run__\.__slurm__\.array': empty array range '3-1'",
        False,
        id="slurm-empty-array",
    ),
    pytest.param(
        _slurm(_slurm_option("array", "0-3x")),
        r"'0-3x' is not an array spec",
        False,
        id="slurm-bad-array",
    ),
    pytest.param(
        _slurm(sbatch=None),
        r"^expyrun: error: sbatch: command not found \(is Slurm installed on this machine\?\)$",
        False,
        id="slurm-no-sbatch",
    ),
    pytest.param(
        _slurm(),
        r"^expyrun: error: sbatch failed \(exit 1\): Batch job submission failed: "
        r"Invalid partition name specified$",
        True,
        id="slurm-sbatch-fails",
    ),
    pytest.param(
        _slurm(_slurm_option("array", "0-3")),
        r"sbatch failed \(exit 1\): Batch job submission failed",
        True,
        id="slurm-sbatch-fails-for-an-array",
    ),
]


# Not the input: sbatch is missing or refuses the job. One line too, but exit 69
# (EX_UNAVAILABLE), so that a script can tell a typo from a cluster that is down.
TOOL_FAILURES = {"slurm-no-sbatch", "slurm-sbatch-fails", "slurm-sbatch-fails-for-an-array"}


@pytest.mark.parametrize(("setup", "pattern", "submitted"), SLURM_CASES)
def test_bad_slurm_input_gets_one_clear_line_and_exit_2(
    project: Project,
    setup: Callable[[Project], tuple[list[str], dict[str, str]]],
    pattern: str,
    submitted: bool,
    request: pytest.FixtureRequest,
) -> None:
    args, env = setup(project)
    result = run(args, cwd=project.root, env=env)
    code = 69 if request.node.callspec.id in TOOL_FAILURES else 2
    _assert_one_clear_line(result, pattern, project, code)
    assert result.stdout == "", result.describe()
    assert not project.output.exists(), "the output dir made for the run folder was left"
    calls = project.root / "sbatch-calls"
    assert calls.exists() is submitted, "sbatch was called" if not submitted else "no sbatch call"
    if submitted:
        assert calls.read_text().startswith("--parsable --hold ")


def test_unreadable_config_and_unwritable_output_dir(project: Project) -> None:
    """Permission errors. Root reads and writes everything, so the command runs as root
    without the capabilities that bypass file permissions (CAP_DAC_*)."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to drop the permission-bypassing capabilities")
    data = _base(project)
    locked = project.root / "locked"
    locked.mkdir()
    data["__run__"]["__output_dir__"] = str(locked / "out")
    config = _config(project, data)
    secret = project.write("secret.yml", "a: 1\n")
    secret.chmod(0o000)
    locked.chmod(0o555)
    drop = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--", *EXPYRUN]
    try:
        for args, pattern in [([secret], r"secret\.yml.*ermission"), ([config], r"ermission")]:
            done = subprocess.run(
                [*drop, *map(str, args)],
                cwd=project.root,
                env=child_env(),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 2, done.stderr
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1, done.stderr
            assert re.search(pattern, lines[0]), lines[0]
    finally:
        locked.chmod(0o755)
    assert not (locked / "out").exists()


def test_an_entry_module_that_raises_at_import_is_the_users_failure(project: Project) -> None:
    data = _base(project)
    project.write(
        "pkg/main.py",
        "raise RuntimeError('broken at import')\n\ndef main(name, config):\n    pass\n",
    )
    result = run([_config(project, data)], cwd=project.root)
    assert result.code == 1
    log = result.log.decode()
    assert "RuntimeError: broken at import" in log
    assert "worker.py" not in log
    assert result.record["status"] == "failed"


@pytest.mark.parametrize(
    ("module", "code", "missing"),
    [
        pytest.param(
            "data_loader", "import pkg.data\n", "pkg.data", id="name-a-prefix-of-the-entry"
        ),
        pytest.param("other", "import p\n", "p", id="one-letter-third-party"),
        pytest.param("sub.mod", "import pkg.sub.missing\n", "pkg.sub.missing", id="in-a-package"),
    ],
)
def test_a_missing_import_inside_the_users_code_is_the_users_failure(
    project: Project, module: str, code: str, missing: str
) -> None:
    """Issue 11: a ModuleNotFoundError raised by the user's own import, for a module whose
    name is a prefix of the entry's (`pkg.data` / `pkg.data_loader`), was reported as a bad
    entry point (exit 2, no traceback). It must be what plain python shows: the traceback of
    the user's import, exit 1."""
    data = _base(project)
    project.write(f"pkg/{module.replace('.', '/')}.py", code + ENTRY)
    if "." in module:
        project.write(f"pkg/{module.split('.')[0]}/__init__.py", "")
    data["__run__"]["__main__"] = f"pkg.{module}:main"
    plain = subprocess.run(
        [sys.executable, "-c", f"import pkg.{module}"],
        cwd=project.root,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    last_line = f"ModuleNotFoundError: No module named '{missing}'"
    assert plain.returncode == 1
    assert plain.stderr.strip().splitlines()[-1] == last_line
    result = run([_config(project, data)], cwd=project.root)
    assert result.code == 1, result.describe()
    assert "entry point" not in result.stderr, result.describe()
    *_, traceback_end, closing = result.stderr.strip().splitlines()
    assert traceback_end == last_line, result.describe()
    assert closing.startswith("expyrun: failed in "), result.describe()
    log = result.log.decode()
    assert f'pkg/{module.replace(".", "/")}.py", line 1' in log
    assert "worker.py" not in log
    assert result.record["status"] == "failed"


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("main = lambda name, config: print('ran')\n", id="lambda"),
        pytest.param("def _impl(name, config):\n    print('ran')\n\n\nmain = _impl\n", id="alias"),
        pytest.param(
            "main = None\n\n\ndef _install():\n    global main\n"
            "    main = lambda name, config: print('ran')\n\n\n_install()\n",
            id="placeholder-rebound-by-global",
        ),
        pytest.param(
            "main = None\nglobals()['main'] = lambda name, config: print('ran')\n",
            id="placeholder-rebound-by-globals",
        ),
        pytest.param("main = 5\n\n\ndef main(name, config):\n    print('ran')\n", id="redefined"),
    ],
)
def test_an_entry_bound_by_assignment_that_works_still_runs(project: Project, code: str) -> None:
    """The static check refuses only what is certainly not a function of (name, config)."""
    data = _base(project)
    project.write("pkg/main.py", code)
    result = run([_config(project, data)], cwd=project.root)
    assert result.code == 0, result.describe()
    assert result.log == b"ran\n"


def test_the_deepest_config_and_a_long_reference_chain_reach_the_entry(project: Project) -> None:
    """128 levels of nesting and a chain of 2,000 references: resolved, written to config.yml,
    sent to the worker (pickle), received by the entry."""
    data = _base(project)
    project.write(
        "pkg/main.py",
        "def main(name, config):\n"
        "    value, depth = config['deep'], 1  # config is level 1\n"
        "    while isinstance(value, dict):\n"
        "        value, depth = value['a'], depth + 1\n"
        "    print(depth, value, config['c0'])\n",
    )
    text = yaml.safe_dump(data, sort_keys=False)
    text += "deep: " + "{a: " * 127 + "'{c0}'" + "}" * 127 + "\n"  # levels 2 to 128
    text += "".join(f"c{i}: '{{c{i + 1}}}'\n" for i in range(2000)) + "c2000: end\n"
    result = run([project.write("config.yml", text)], cwd=project.root)
    assert result.code == 0, result.describe()
    assert result.log == b"128 end end\n"
    stored = yaml.safe_load((result.run_dir / "config.yml").read_text())
    assert stored["c0"] == "end"


def test_an_entry_signature_only_visible_at_run_time_is_refused_by_the_worker(
    project: Project,
) -> None:
    data = _base(project)
    project.write(
        "pkg/main.py",
        "import functools\n\ndef _impl():\n    pass\n\nmain = functools.partial(_impl)\n",
    )
    result = run([_config(project, data)], cwd=project.root)
    assert result.code != 0
    assert "Traceback" not in result.stderr or "TypeError" in result.log.decode()


def test_a_submission_slurm_will_not_release_is_cancelled(project: Project) -> None:
    """sbatch queued the job held, `scontrol release` fails: the job is cancelled, the run
    folder removed, and the error is scontrol's."""
    args, env = _slurm(sbatch="echo 4242")(project)
    calls = project.root / "sbatch-calls"
    for name, body in [
        ("scontrol", "echo 'scontrol: error: Access/permission denied' >&2; exit 1"),
        ("scancel", ""),
    ]:
        fake = project.root / "bin" / name
        fake.write_text(f'#!/bin/sh\necho "{name} $@" >> {calls}\n{body}\n')
        fake.chmod(0o755)
    result = run(args, cwd=project.root, env=env)
    _assert_one_clear_line(
        result,
        r"^expyrun: error: scontrol failed \(exit 1\): Access/permission denied$",
        project,
        code=69,  # Slurm refused: EX_UNAVAILABLE, not bad input
    )
    assert not project.output.exists(), "the run folder of a cancelled job was left"
    lines = calls.read_text().splitlines()
    assert lines[0].startswith("--parsable --hold ")
    assert lines[1:] == ["scontrol release 4242", "scancel 4242"]
