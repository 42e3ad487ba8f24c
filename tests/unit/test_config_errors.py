"""The bad-config catalogue: each row a mistake, one `ConfigError` on one line that names it.

Every row checks the error type, that `str(error)` has no newline, that it names the file (and
the line, where there is one) or the key, and its text.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from expyrun.config import resolve
from expyrun.errors import ConfigError, ConfigWarning

RUN = "__run__:\n  __main__: pkg.mod:main\n  __output_dir__: out\n  __name__: exp\n"
OK = {"config.yml": RUN + "lr: 0.1\nlayers: [{size: 3}]\ntrainer: {lr: 1}\n"}


def _run(main: str = "pkg.mod:main", name: str = "exp", out: str = "out", extra: str = "") -> str:
    return f"__run__:\n  __main__: {main}\n  __output_dir__: {out}\n  __name__: {name}\n{extra}"


# Each row: files (None makes a directory), overrides, strict, the error type, and a regular
# expression the whole one-line message must match.
CATALOGUE = [
    pytest.param({}, (), ConfigError, r"config\.yml: no such config file", id="missing-file"),
    pytest.param(
        {"config.yml": None},
        (),
        ConfigError,
        r"config\.yml: is a directory, not a config file",
        id="directory",
    ),
    pytest.param(
        {"config.yml": ""},
        (),
        ConfigError,
        r"config\.yml: the config file is empty \(write \{\} for no keys\)",
        id="empty-file",
    ),
    pytest.param(
        {"config.yml": "# only a comment\n"},
        (),
        ConfigError,
        r"config\.yml: the config file is empty .*",
        id="comments-only",
    ),
    pytest.param(
        {"config.yml": RUN + "a: [1, 2\n"},
        (),
        ConfigError,
        # libyaml and PyYAML's own parser word it differently; both give the line and context
        r"config\.yml:6: invalid YAML: .*expected ',' or '\]'.* \(while parsing a flow sequence "
        r"at line 5\)",
        id="yaml-syntax-error",
    ),
    pytest.param(
        {"config.yml": RUN + "a: 1\n b: 2\n"},
        (),
        ConfigError,
        r"config\.yml:6: invalid YAML: mapping values are not allowed (here|in this context)",
        id="yaml-bad-indentation",
    ),
    pytest.param(
        {"config.yml": RUN + "a: 1\n---\nb: 2\n"},
        (),
        ConfigError,
        r"config\.yml:6: invalid YAML: a second document \(---\) in a config file",
        id="two-documents",
    ),
    pytest.param(
        {"config.yml": RUN + "a: caf\udcff\n"},
        (),
        ConfigError,
        r"config\.yml: invalid YAML: unacceptable character #x00ff: .*",
        id="not-utf8",
    ),
    pytest.param(
        {"config.yml": "- 1\n- 2\n"},
        (),
        ConfigError,
        r"config\.yml:1: the top level must be a mapping of keys, not a list",
        id="top-level-list",
    ),
    pytest.param(
        {"config.yml": "just text\n"},
        (),
        ConfigError,
        r"config\.yml:1: the top level must be a mapping of keys, not a single value",
        id="top-level-scalar",
    ),
    pytest.param(
        {"config.yml": "a: 1\n"},
        (),
        ConfigError,
        r"config\.yml: no __run__ section \(add __run__ with __main__, __name__, __output_dir__\)",
        id="missing-run",
    ),
    pytest.param(
        {"config.yml": "__run__: pkg.mod:main\n"},
        (),
        ConfigError,
        r"config\.yml:1: key '__run__': expected a mapping, got a string",
        id="run-not-a-mapping",
    ),
    pytest.param(
        {"config.yml": "__run__:\n  __output_dir__: o\n  __name__: n\n"},
        (),
        ConfigError,
        r"config\.yml:1: key '__run__\.__main__': __main__ is missing: it is mandatory",
        id="missing-main",
    ),
    pytest.param(
        {"config.yml": "__run__:\n  __main__: a:b\n  __output_dir__: o\n  __nmae__: n\n"},
        (),
        ConfigError,
        r"config\.yml:1: key '__run__\.__name__': __name__ is missing: it is mandatory "
        r"\(did you mean to write __name__ instead of __nmae__\?\)",
        id="missing-name-typo",
    ),
    pytest.param(
        {"config.yml": "__run__:\n  __main__: a:b\n  __name__: n\n"},
        (),
        ConfigError,
        r"config\.yml:1: key '__run__\.__output_dir__': __output_dir__ is missing: it is mandatory",
        id="missing-output-dir",
    ),
    pytest.param(
        {"config.yml": _run(name="null")},
        (),
        ConfigError,
        r"config\.yml:4: key '__run__\.__name__': __name__ is null: it is mandatory",
        id="null-name",
    ),
    pytest.param(
        {"config.yml": _run(main="pkg.mod")},
        (),
        ConfigError,
        r"config\.yml:2: key '__run__\.__main__': expected package\.module:function, got "
        r"'pkg\.mod' "
        r"\(for instance my_code\.experiments\.first_method:main\)",
        id="main-without-colon",
    ),
    pytest.param(
        {"config.yml": _run(main="my-pkg.mod:main")},
        (),
        ConfigError,
        r"config\.yml:2: key '__run__\.__main__': expected package\.module:function, got "
        r"'my-pkg\.mod:main' .*",
        id="main-not-identifiers",
    ),
    pytest.param(
        {"config.yml": _run(main="a:b:c")},
        (),
        ConfigError,
        r"config\.yml:2: key '__run__\.__main__': expected package\.module:function, got "
        r"'a:b:c' .*",
        id="main-two-colons",
    ),
    pytest.param(
        {"config.yml": _run(main="class.mod:main")},
        (),
        ConfigError,
        r"config\.yml:2: key '__run__\.__main__': expected .*, got 'class\.mod:main' .*",
        id="main-keyword",
    ),
    pytest.param(
        {"config.yml": _run(main="5")},
        (),
        ConfigError,
        r"config\.yml:2: key '__run__\.__main__': expected package\.module:function, got 5 .*",
        id="main-not-a-string",
    ),
    pytest.param(
        {"config.yml": RUN + "__default__: ./b.yml\n", "b.yml": "__default__: ./config.yml\n"},
        (),
        ConfigError,
        r"b\.yml:1: key '__default__': __default__ cycle: config\.yml -> b\.yml -> config\.yml",
        id="default-cycle",
    ),
    pytest.param(
        {"config.yml": RUN + "__default__: [./config.yml]\n"},
        (),
        ConfigError,
        r"config\.yml:5: key '__default__': __default__ cycle: config\.yml -> config\.yml",
        id="default-itself",
    ),
    pytest.param(
        {"config.yml": RUN + "__default__: ./nope.yml\n"},
        (),
        ConfigError,
        r"config\.yml:5: key '__default__': default config nope\.yml: no such file",
        id="missing-default",
    ),
    pytest.param(
        {"config.yml": RUN + "__default__: ./sub\n", "sub": None},
        (),
        ConfigError,
        r"config\.yml:5: key '__default__': default config sub: is a directory, not a config file",
        id="default-is-a-directory",
    ),
    pytest.param(
        {"config.yml": RUN + "__default__:\n  - ./a.yml\n  - 3\n", "a.yml": "a: 1\n"},
        (),
        ConfigError,
        r"config\.yml:7: key '__default__': expected a file path \(a string or a list of "
        r"strings\), got 3",
        id="default-not-a-path",
    ),
    pytest.param(
        {"config.yml": RUN + "__default__: ./a.yml\n", "a.yml": "a: [\n"},
        (),
        ConfigError,
        r"a\.yml:2: invalid YAML: .*",
        id="broken-default-names-its-file",
    ),
    pytest.param(
        {"config.yml": RUN + 'a: "{b}"\nb: "x{c}"\nc: "{a}"\n'},
        (),
        ConfigError,
        r"config\.yml:5: key 'a': reference cycle: a -> b -> c -> a",
        id="reference-cycle",
    ),
    pytest.param(
        {"config.yml": RUN + "__new_key_policy__: maybe\n"},
        (),
        ConfigError,
        r"config\.yml:5: key '__new_key_policy__': unknown policy 'maybe' \(expected one of "
        r"raise, warn, pass\)",
        id="bad-policy",
    ),
    pytest.param(
        {
            "config.yml": RUN + "__default__: ./b.yml\n__new_key_policy__: raise\nm: {lrr: 1}\n",
            "b.yml": "m: {lr: 1}\n",
        },
        (),
        ConfigError,
        r"config\.yml:7: key 'm\.lrr': new key, absent from the defaults \(__new_key_policy__ "
        r"is 'raise'\) "
        r"\(did you mean 'm\.lr'\?\)",
        id="raise-policy-hit",
    ),
    pytest.param(
        OK,
        ("--trainer.lrr", "1"),
        ConfigError,
        r"command line: key 'trainer\.lrr': no such key to override \(did you mean "
        r"'trainer\.lr'\?\)",
        id="override-unknown-key",
    ),
    pytest.param(
        OK,
        ("--lr", "fast"),
        ConfigError,
        r"command line: key 'lr': cannot override with 'fast': expected a number \(the "
        r"current value is float 0\.1\)",
        id="override-untypable",
    ),
    pytest.param(
        OK,
        ("--lr",),
        ConfigError,
        r"command line: key 'lr': the override --lr has no value \(write --lr VALUE, or "
        r"--lr=VALUE for a value starting with --\)",
        id="override-without-value",
    ),
    pytest.param(
        OK,
        ("lr", "1"),
        ConfigError,
        r"command line: expected an override --KEY VALUE or --KEY=VALUE, got 'lr' \(did you "
        r"mean --lr\?\)",
        id="override-without-dashes",
    ),
    pytest.param(
        OK,
        ("--trainer", "1"),
        ConfigError,
        r"command line: key 'trainer': is a mapping: override its keys one by one \(for "
        r"instance --trainer\.lr\)",
        id="override-a-mapping",
    ),
    pytest.param(
        OK,
        ("--layers.3.size", "1"),
        ConfigError,
        r"command line: key 'layers\.3\.size': no such key to override \(did you mean "
        r".*'layers\.0\.size'.*\)",
        id="override-list-index-out-of-range",
    ),
    pytest.param(
        {"config.yml": RUN + "a: !!python/object:os.system {}\n"},
        (),
        ConfigError,
        r"config\.yml:5: key 'a': unsupported YAML tag !!python/object:os\.system \(only "
        r"plain values, mappings, lists\)",
        id="python-object-tag",
    ),
    pytest.param(
        {"config.yml": RUN + "a: !!python/name:os.system\n"},
        (),
        ConfigError,
        r"config\.yml:5: key 'a': unsupported YAML tag !!python/name:os\.system .*",
        id="python-name-tag",
    ),
    pytest.param(
        {"config.yml": RUN + "a: !!binary aGVsbG8=\n"},
        (),
        ConfigError,
        r"config\.yml:5: key 'a': unsupported YAML tag !!binary .*",
        id="binary-tag",
    ),
    pytest.param(
        {"config.yml": RUN + "a: !custom x\n"},
        (),
        ConfigError,
        r"config\.yml:5: key 'a': unsupported YAML tag !custom .* \(quote a string that "
        r"starts with '!', like '!P\{a\}'\)",
        id="custom-tag",
    ),
    pytest.param(
        {"config.yml": RUN + "a: !P{lr}\n"},
        (),
        ConfigError,
        r"config\.yml:5: invalid YAML: .* \(a value starting with '!' is a YAML tag: quote "
        r"it, like '!P\{a\}'\)",
        id="unquoted-no-parse-prefix",
    ),
    # Defect 18: non-string keys and empty files crashed (AttributeError).
    pytest.param(
        {"config.yml": RUN + "1: one\n"},
        (),
        ConfigError,
        r"config\.yml:5: keys must be non-empty strings, got the non-string key 1 \(quote it: "
        r"'1'\)",
        id="int-key",
    ),
    pytest.param(
        {"config.yml": RUN + "m:\n  yes: 1\n"},
        (),
        ConfigError,
        r"config\.yml:6: key 'm': keys must be non-empty strings, got the non-string key yes "
        r"\(quote it: 'yes'\)",
        id="bool-key-nested",
    ),
    pytest.param(
        {"config.yml": RUN + "'': 1\n"},
        (),
        ConfigError,
        r"config\.yml:5: keys must be non-empty strings, got an empty key",
        id="empty-key",
    ),
    pytest.param(
        {"config.yml": RUN + "a: 1\nb: 2\na: 3\n"},
        (),
        ConfigError,
        r"config\.yml:7: key 'a': duplicate key \(first set at line 5\)",
        id="duplicate-key",
    ),
    pytest.param(
        {"config.yml": RUN + '"c.d": 1\nc: {d: 2}\n'},
        (),
        ConfigError,
        r"config\.yml:6: key 'c\.d': duplicate key \(first set at line 5\)",
        id="duplicate-dotted-key",
    ),
    pytest.param(
        {"config.yml": RUN + '"a..b": 1\n'},
        (),
        ConfigError,
        r"config\.yml:5: empty part in the key 'a\.\.b'",
        id="empty-key-part",
    ),
    pytest.param(
        {"config.yml": RUN + "a: &x [*x]\n"},
        (),
        ConfigError,
        r"config\.yml:5: key 'a\.0': a YAML alias contains itself",
        id="recursive-alias",
    ),
    pytest.param(
        {"config.yml": RUN + "a: " + "{a: " * 400 + "1" + "}" * 400 + "\n"},
        (),
        ConfigError,
        r"config\.yml:5: nested deeper than 128 levels",
        id="nested-too-deeply",
    ),
    # Defect 17: the run name could leave the output dir.
    pytest.param(
        OK,
        ("--__run__.__name__", "../../up"),
        ConfigError,
        r"command line: key '__run__\.__name__': must not contain '\.\.' .*, got '\.\./\.\./up'",
        id="name-escapes-with-dotdot",
    ),
    pytest.param(
        OK,
        ("--__run__.__name__", "/abs/elsewhere"),
        ConfigError,
        r"command line: key '__run__\.__name__': must be a relative path .*, got '/abs/elsewhere'",
        id="name-absolute",
    ),
    pytest.param(
        {"config.yml": _run(name="a/../../b")},
        (),
        ConfigError,
        r"config\.yml:4: key '__run__\.__name__': must not contain '\.\.' .*",
        id="name-dotdot-inside",
    ),
    pytest.param(
        {"config.yml": _run(name="$NOPE")},
        (),
        ConfigError,
        r"config\.yml:4: key '__run__\.__name__': must not be empty, got ''",
        id="name-empty-after-resolution",
    ),
    pytest.param(
        {"config.yml": _run(name="true")},
        (),
        ConfigError,
        r"config\.yml:4: key '__run__\.__name__': expected a string, got a boolean",
        id="name-bool",
    ),
    pytest.param(
        {"config.yml": _run(name="[a, b]")},
        (),
        ConfigError,
        r"config\.yml:4: key '__run__\.__name__': expected a string, got a list",
        id="name-list",
    ),
    pytest.param(
        {"config.yml": _run(out="$NOPE")},
        (),
        ConfigError,
        r"config\.yml:3: key '__run__\.__output_dir__': must not be empty \(is its "
        r"environment variable set\?\)",
        id="output-dir-empty",
    ),
    pytest.param(
        {"config.yml": _run(extra="  __slurm__: gpu\n")},
        (),
        ConfigError,
        r"config\.yml:5: key '__run__\.__slurm__': expected a mapping of options, got a string",
        id="slurm-not-a-mapping",
    ),
    pytest.param(
        {"config.yml": _run(extra="  __slurm__:\n    gres: [gpu]\n")},
        (),
        ConfigError,
        r"config\.yml:6: key '__run__\.__slurm__\.gres': expected a single value, got a list",
        id="slurm-nested-value",
    ),
    # Issue 17: unquoted braces in __run__ are an error; variables with defaults.
    pytest.param(
        {"config.yml": _run(name="{model.name}") + "model: {name: r}\n"},
        (),
        ConfigError,
        r"config\.yml:4: key '__run__\.__name__': write \"\{model\.name\}\" in quotes: YAML "
        r"reads \{model\.name\} as a mapping",
        id="unquoted-reference-in-run",
    ),
    pytest.param(
        {"config.yml": _run(name="{model.name}-{lr}") + "model: {name: r}\n"},
        (),
        ConfigError,
        r"config\.yml:4: invalid YAML: did not find expected key \(quote a value starting with "
        r"\"\{\": YAML reads \{\.\.\.\} as a mapping\)",
        id="unquoted-references-then-text",
    ),
    pytest.param(
        {"config.yml": RUN + "l:\n  - {a} b\n"},
        (),
        ConfigError,
        r"config\.yml:6: invalid YAML: .* \(quote a value starting with \"\{\": YAML reads "
        r"\{\.\.\.\} as a mapping\)",
        id="unquoted-reference-then-text-in-a-list",
    ),
    pytest.param(
        {"config.yml": _run(out="${OUT:?set OUT to the output dir}")},
        (),
        ConfigError,
        r"config\.yml:3: key '__run__\.__output_dir__': environment variable OUT is not set: "
        r"set OUT to the output dir",
        id="required-variable",
    ),
    pytest.param(
        {"config.yml": RUN + "a: ${DATA:/datasets}\n"},
        (),
        ConfigWarning,
        r"config\.yml:5: key 'a': not a variable expression: \$\{DATA:/datasets\} is kept as "
        r"text \(did you mean \$\{DATA:-/datasets\}\?\)",
        id="strict-invalid-variable-expression",
    ),
    pytest.param(
        {"config.yml": RUN + "seed: {seed}\n"},
        (),
        ConfigWarning,
        r"config\.yml:5: key 'seed': write \"\{seed\}\" in quotes: YAML reads \{seed\} as a "
        r"mapping",
        id="strict-unquoted-reference",
    ),
    pytest.param(
        {"config.yml": RUN + "a: $NOPE\n"},
        (),
        ConfigWarning,
        r"config\.yml:5: key 'a': environment variable NOPE is not set: replaced by ''",
        id="strict-missing-variable",
    ),
    pytest.param(
        {"config.yml": RUN + "a: '{nope}'\n"},
        (),
        ConfigWarning,
        r"config\.yml:5: key 'a': unresolved reference \{nope\}: replaced by ''",
        id="strict-unresolved-reference",
    ),
    pytest.param(
        {"config.yml": RUN + "__default__: ./b.yml\nb: x\n", "b.yml": "b: 1\n"},
        (),
        ConfigWarning,
        r"config\.yml:6: key 'b': overridden with a different type: integer -> string",
        id="strict-type-change",
    ),
]


@pytest.mark.parametrize(("files", "overrides", "error_type", "pattern"), CATALOGUE)
def test_bad_config(
    tmp_path: Path,
    files: dict[str, str | None],
    overrides: tuple[str, ...],
    error_type: type[ConfigError],
    pattern: str,
) -> None:
    for name, text in files.items():
        path = tmp_path / name
        if text is None:
            path.mkdir()
        else:
            path.write_bytes(text.encode("utf-8", "surrogateescape"))
    strict = error_type is ConfigWarning
    with pytest.raises(ConfigError) as caught:
        resolve("config.yml", overrides, cwd=tmp_path, environ={}, strict=strict)
    error = caught.value
    assert type(error) is error_type
    text = str(error)
    assert "\n" not in text
    assert re.fullmatch(pattern, text), text
    names_the_place = error.key is not None or (error.path is not None and str(error.path) in text)
    assert names_the_place
    if error.line is not None:
        assert f"{error.path}:{error.line}: " in text


def test_the_catalogue_is_long_enough() -> None:
    assert len(CATALOGUE) >= 30


def test_messages_stay_on_one_line_with_odd_keys(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text(RUN + '"a\\nb": "{nope}"\n')
    resolved = resolve("config.yml", cwd=tmp_path, environ={})
    assert str(resolved.warnings[0]) == (
        "config.yml:5: key 'a\\nb': unresolved reference {nope}: replaced by ''"
    )
    with pytest.raises(ConfigError) as caught:
        resolve("config.yml", ["--a\nb", "1"], cwd=tmp_path, environ={})
    assert "\n" not in str(caught.value)
