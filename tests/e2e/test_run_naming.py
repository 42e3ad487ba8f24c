"""Naming runs through the real CLI: every command that takes RUN takes a name folder and `last`."""

from __future__ import annotations

import json

from support import Project, run


def _two_names(project: Project) -> None:
    entry = project.entry("print('run', config['i'])")
    config = project.config(entry, name="group/{i}", extra={"i": 0})
    for i in (0, 0, 1):
        assert run([config, "--i", str(i)], cwd=project.root).code == 0


def test_commands_take_a_name_folder_and_last(project: Project) -> None:
    _two_names(project)  # group/0/exp.0, group/0/exp.1, then group/1/exp.0 (the newest)
    status = run(["status", "outputs/group/0", "--json"], cwd=project.root)
    assert status.code == 0, status.describe()
    assert json.loads(status.stdout)["run_dir"] == str(project.output / "group" / "0" / "exp.1")
    assert "expyrun: outputs/group/0: outputs/group/0/exp.1" in status.stderr
    logs = run(["logs", "last"], cwd=project.root)
    assert (logs.code, logs.stdout) == (0, "run 1\n")
    assert f"last: {project.output / 'group' / '1' / 'exp.0'}" in logs.stderr
    again = run(["rerun", "outputs/group/0", "--i", "0"], cwd=project.root)
    assert again.code == 0, again.describe()
    assert again.record["rerun_of"] == str(project.output / "group" / "0" / "exp.1")
    assert run(["status", "last"], cwd=project.output / "group" / "1").code == 0


def test_bad_names_are_one_line_and_exit_2(project: Project) -> None:
    _two_names(project)
    for args, message in [
        (["status", "outputs/group/2"], "outputs/group/2: no such run folder or name folder"),
        (["logs", "outputs/group"], "ambiguous: it holds the runs of 2 names (0, 1)"),
        (["stop", "last"], "last: no run folder under the current folder"),
        (["rerun", "outputs/grop"], "did you mean outputs/group?"),
    ]:
        cwd = project.root / "pkg" if args[1] == "last" else project.root
        result = run(args, cwd=cwd)
        assert result.code == 2, result.describe()
        assert message in result.stderr, result.describe()
        assert len(result.stderr.strip().splitlines()) == 1
