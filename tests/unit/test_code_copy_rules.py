"""The code copy's rules in-process: `__code_exclude__` checked, patterns matched, messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from config_support import RUN, resolve_text

from expyrun.errors import ConfigError
from expyrun.run import code_copy, code_exclusions


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("['*.ckpt', pkg/data/]", ("*.ckpt", "pkg/data/"), id="list"),
        pytest.param("[]", (), id="empty-list"),
        pytest.param("null", (), id="null"),
        pytest.param("['./pkg/*.npy']", ("./pkg/*.npy",), id="dot-slash"),
    ],
)
def test_code_exclude_is_read_into_the_run_spec(
    tmp_path: Path, value: str, expected: tuple[str, ...]
) -> None:
    text = RUN + f"  __code_exclude__: {value}\n"
    assert resolve_text(tmp_path, text, run=False).run.code_exclude == expected


def test_code_exclude_defaults_to_nothing(tmp_path: Path) -> None:
    assert resolve_text(tmp_path, "a: 1\n").run.code_exclude == ()


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        pytest.param(
            "'*.ckpt'",
            r"config\.yml:5: key '__run__\.__code_exclude__': expected a list of glob patterns, "
            r"got a string \(for instance __code_exclude__: \['\*\.ckpt', 'pkg/data'\]\)",
            id="a-string",
        ),
        pytest.param(
            "{a: 1}",
            r"config\.yml:5: key '__run__\.__code_exclude__': expected a list of glob patterns, "
            r"got a mapping .*",
            id="a-mapping",
        ),
        pytest.param(
            "['*.ckpt', 3]",
            r"config\.yml:5: key '__run__\.__code_exclude__\.1': expected a glob pattern "
            r"\(a string\), got an integer",
            id="an-integer-item",
        ),
        pytest.param(
            "[[a]]",
            r"config\.yml:5: key '__run__\.__code_exclude__\.0': expected a glob pattern "
            r"\(a string\), got a list",
            id="a-list-item",
        ),
        pytest.param(
            "['']",
            r"config\.yml:5: key '__run__\.__code_exclude__\.0': expected a glob pattern, got ''",
            id="empty",
        ),
        pytest.param(
            "['/']",
            r".*key '__run__\.__code_exclude__\.0': expected a glob pattern, got '/'",
            id="slash-only",
        ),
        pytest.param(
            "['/data/*']",
            r".*key '__run__\.__code_exclude__\.0': must be relative to the code folder, "
            r"got '/data/\*'",
            id="absolute",
        ),
        pytest.param(
            "['../x']",
            r".*key '__run__\.__code_exclude__\.0': must be relative to the code folder, "
            r"got '\.\./x'",
            id="dotdot",
        ),
        pytest.param(
            "['~/x']",
            r".*key '__run__\.__code_exclude__\.0': must be relative .*",
            id="tilde",
        ),
    ],
)
def test_bad_code_exclude_is_one_config_error(tmp_path: Path, value: str, pattern: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_text(tmp_path, RUN + f"  __code_exclude__: {value}\n", run=False)
    text = str(caught.value)
    assert "\n" not in text
    assert re.fullmatch(pattern, text), text


@pytest.mark.parametrize(
    ("pattern", "path", "is_dir", "left_out"),
    [
        pytest.param("*.ckpt", "pkg/a.ckpt", False, True, id="name-at-top"),
        pytest.param("*.ckpt", "pkg/deep/er/a.ckpt", False, True, id="name-deep"),
        pytest.param("*.ckpt", "pkg/a.ckpt.txt", False, False, id="name-whole"),
        pytest.param("data", "pkg/sub/data", True, True, id="folder-by-name"),
        pytest.param("data/", "pkg/sub/data", False, False, id="slash-folders-only"),
        pytest.param("data/", "pkg/sub/data", True, True, id="slash-folder"),
        pytest.param("pkg/data", "pkg/data", True, True, id="path"),
        pytest.param("pkg/data", "pkg/sub/pkg/data", True, False, id="path-from-the-top"),
        pytest.param("pkg/*.npy", "pkg/x/y.npy", False, True, id="star-crosses-slash"),
        pytest.param("./pkg/*.npy", "pkg/y.npy", False, True, id="dot-slash"),
        pytest.param("[ab].txt", "pkg/b.txt", False, True, id="brackets"),
        pytest.param("?.txt", "pkg/ab.txt", False, False, id="question-mark"),
    ],
)
def test_code_exclude_patterns(pattern: str, path: str, is_dir: bool, left_out: bool) -> None:
    exclusions = code_exclusions.Exclusions(set(), [pattern])
    reason = exclusions.reason(path, is_dir, "/real/" + path)
    assert reason == (f"__code_exclude__ {pattern!r}" if left_out else None)


def test_git_ignored_paths_and_the_output_dir_come_first() -> None:
    exclusions = code_exclusions.Exclusions({"pkg/out", "pkg/w.bin"}, ["*"], "/real/pkg/out", "/r")
    assert exclusions.reason("pkg/out", True, "/real/pkg/out") == code_exclusions.OUTPUT_DIR_REASON
    assert exclusions.reason("pkg/w.bin", False, "/x") == code_exclusions.GITIGNORE_REASON
    assert exclusions.reason("pkg/other", False, "/x") == "__code_exclude__ '*'"
    # The output dir is a folder: a file of that path is not it.
    assert code_exclusions.Exclusions(set(), [], "/o").reason("pkg/o", False, "/o") is None
    assert exclusions.reason("pkg/out/r/exp.0", True, "/r") == code_exclusions.RUN_FOLDER_REASON


def test_many_small_files_warn_like_a_large_copy() -> None:
    copy = code_copy.CodeCopy()
    for i in range(code_copy.CODE_COPY_WARNING_FILES):
        copy.add_file(f"pkg/node_modules/f{i}.js", 1)
    assert copy.warnings() == []
    copy.add_file("pkg/big.js", 2_500)
    (warning,) = copy.warnings()
    assert warning.startswith(
        "the code copy takes 12 kB in 10001 files (largest: pkg/big.js 2.5 kB, "
        "pkg/node_modules/f0.js 1 B, pkg/node_modules/f1.js 1 B)"
    )


@pytest.mark.parametrize(
    ("count", "text"),
    [
        pytest.param(0, "0 B", id="zero"),
        pytest.param(999, "999 B", id="bytes"),
        pytest.param(1_000, "1.0 kB", id="kilo"),
        pytest.param(52_428_800, "52 MB", id="mega"),
        pytest.param(1_073_741_824, "1.1 GB", id="gibibyte"),
    ],
)
def test_sizes_are_written_in_decimal_units(count: int, text: str) -> None:
    assert code_copy._size(count) == text


def test_the_record_caps_its_lists_and_counts_them_all() -> None:
    copy = code_copy.CodeCopy()
    copy.excluded = [{"path": f"p{i}", "reason": "x"} for i in range(250)]
    record = copy.to_record()
    assert len(record["excluded"]) == code_copy.RECORDED_PATHS
    assert record["excluded_count"] == 250
