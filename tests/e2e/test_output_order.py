"""The order of stdout and stderr in outputs.log, compared with `> log 2>&1`.

print() output is ordered across the two streams (the worker's switchboard). Output written
below Python (a subprocess, os.write) to the two streams alternately is ordered only with
--merge-output, which gives the run one pipe for both, as `> log 2>&1` does.
"""

from __future__ import annotations

import subprocess

import pytest
from support import Project, read_json, run

SHELL_LOOP = 'i=0; while [ $i -lt 2000 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done'
EXPECTED = [f"{kind} {i}" for i in range(2000) for kind in ("out", "err")]


def _shell_entry(project: Project) -> str:
    return project.entry(f"subprocess.run(['sh', '-c', {SHELL_LOOP!r}], check=True)")


def test_merged_output_keeps_the_order_of_a_subprocess_as_2_to_1_does(project: Project) -> None:
    plain = subprocess.run(
        ["sh", "-c", f"({SHELL_LOOP}) > plain.log 2>&1"], cwd=project.root, check=True
    )
    assert plain.returncode == 0
    assert (project.root / "plain.log").read_text().splitlines() == EXPECTED
    config = project.config(_shell_entry(project))
    result = run([config, "--merge-output"], cwd=project.root)
    assert result.code == 0, result.describe()
    assert result.log.decode().splitlines() == EXPECTED
    assert result.stdout.splitlines() == EXPECTED  # the terminal copy: stdout only
    assert read_json(result.run_dir / "run.json")["merged_output"] is True


def test_merged_output_holds_for_a_detached_run(project: Project) -> None:
    config = project.config(_shell_entry(project))
    result = run([config, "--merge-output", "--detach"], cwd=project.root)
    assert result.code == 0, result.describe()
    run_dir = project.output / "exp" / "exp.0"
    waited = run(["logs", str(run_dir), "--follow"], cwd=project.root, timeout=60)
    assert waited.code == 0, waited.describe()
    assert (run_dir / "outputs.log").read_text().splitlines() == EXPECTED


@pytest.mark.parametrize("merged", [False, True])
def test_print_to_both_streams_is_ordered_either_way(project: Project, merged: bool) -> None:
    body = """
for i in range(2000):
    print(f"out {i}")
    print(f"err {i}", file=sys.stderr)
"""
    config = project.config(project.entry(body))
    result = run([config, *(["--merge-output"] if merged else [])], cwd=project.root)
    assert result.code == 0, result.describe()
    assert result.log.decode().splitlines() == EXPECTED
