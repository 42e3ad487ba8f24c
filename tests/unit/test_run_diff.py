"""`expyrun diff`'s comparisons, in-process: dotted keys, types, git state, code files."""

from __future__ import annotations

from pathlib import Path

import pytest

from expyrun.run.record import RunRecord
from expyrun.runs.diff import Change, diff_code, diff_runs, diff_values

BASE = RunRecord(
    status="succeeded",
    run_dir="/runs/a/exp.0",
    name="a",
    entry="pkg.main:main",
    debug=False,
    command=["expyrun", "c.yml"],
    cwd="/p",
    host="h",
    user="u",
    python={"executable": "/usr/bin/python3", "version": "3.11.2"},
    expyrun_version="0.0.0",
    code_copy={"copied": ["pkg"]},
)


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param({"a": 1}, {"a": 1}, [], id="same"),
        pytest.param({"a": {"b": 1}}, {"a": {"b": 2}}, [("changed", "a.b", 1, 2)], id="nested"),
        pytest.param({"a": 1}, {"a": 1.0}, [("changed", "a", 1, 1.0)], id="int-to-float"),
        pytest.param({"a": 1}, {"a": True}, [("changed", "a", 1, True)], id="int-to-bool"),
        pytest.param({"l": [1, 2]}, {"l": [1]}, [("removed", "l.1", 2, None)], id="list-shorter"),
        pytest.param(
            {"a": 1},
            {"a": 1, "m": {"x": 1, "y": [2]}},
            [("added", "m.x", None, 1), ("added", "m.y.0", None, 2)],
            id="mapping-added",
        ),
        pytest.param(
            {"e": {}},
            {"e": {"k": 1}},
            [("removed", "e", {}, None), ("added", "e.k", None, 1)],
            id="empty-filled",
        ),
        pytest.param({"a": None}, {"a": "x"}, [("changed", "a", None, "x")], id="null"),
    ],
)
def test_diff_values(before: dict, after: dict, expected: list[tuple]) -> None:
    assert diff_values(before, after) == [Change(*row) for row in expected]


def test_change_text() -> None:
    assert Change("changed", "lr", 0.1, 0.2).text() == "changed  lr: 0.1 -> 0.2"
    assert Change("added", "name", None, "x").text() == 'added    name: "x"'
    assert Change("removed", "n", 3).text() == "removed  n: 3"


def _run_folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_git_state_and_its_saved_diff(tmp_path: Path) -> None:
    a = _run_folder(tmp_path / "a", {"config.yml": b"x: 1\n", "git.diff": b"-old\n"})
    b = _run_folder(tmp_path / "b", {"config.yml": b"x: 1\n", "git.diff": b"+new\n"})
    git_a = {"commit": "c1", "branch": "main", "dirty": True, "diff": "git.diff"}
    found = diff_runs(
        a,
        BASE.replace(git=git_a),
        b,
        BASE.replace(git={**git_a, "commit": "c2"}),
        code=False,
    )
    assert found.config == []
    assert found.code is None
    assert [(c.key, c.before, c.after) for c in found.git] == [
        ("git.commit", "c1", "c2"),
        ("git.git.diff", "5 bytes", "5 bytes"),
    ]
    assert not found.same


def test_code_files_text_binary_and_links(tmp_path: Path) -> None:
    a = _run_folder(
        tmp_path / "a", {"pkg/m.py": b"x = 1\n", "pkg/w.bin": b"\0a", "pkg/same.py": b"s\n"}
    )
    b = _run_folder(
        tmp_path / "b", {"pkg/m.py": b"x = 2", "pkg/w.bin": b"\0b", "pkg/same.py": b"s\n"}
    )
    (b / "pkg" / "link").symlink_to("m.py")
    (b / "left_out.py").write_text("not in the code copy\n")
    found = {d.path: d for d in diff_code(a, BASE, b, BASE)}
    assert set(found) == {"pkg/m.py", "pkg/w.bin", "pkg/link"}
    assert found["pkg/m.py"].diff == (
        "--- a/pkg/m.py\n+++ b/pkg/m.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"
        "\\ No newline at end of file\n"
    )
    assert found["pkg/w.bin"].kind == "binary"
    assert found["pkg/link"].kind == "added"
    assert "+-> m.py" in found["pkg/link"].diff
