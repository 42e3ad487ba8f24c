"""Symbolic links inside an output dir, through the real CLI: `ls`, `clean` and `last` do not
follow a link below the PATH they are given (a link to another project's outputs, to `/`, to
an ancestor), except a name folder linked elsewhere whose runs were launched through it."""

from __future__ import annotations

import os
from pathlib import Path

from support import Project, run

# Exits with config['exit'].
ENTRY = 'sys.exit(config["exit"])\n'


def _make(project: Project, label: str, exit_code: int) -> Path:
    config = project.root / "config.yml"
    if not config.exists():
        project.config(project.entry(ENTRY), name="{label}", extra={"label": "x", "exit": 0})
    result = run([config, "--label", label, "--exit", str(exit_code)], project.root)
    assert result.code == exit_code, result.describe()
    return result.run_dir


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (links not followed) and its content."""
    found = {}
    for top, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(top, name)
            found[str(path.relative_to(folder))] = b"" if path.is_symlink() else path.read_bytes()
    return found


def _rows(result_stdout: str) -> list[str]:
    return sorted(line.split()[0] for line in result_stdout.splitlines()[1:])


def test_clean_never_removes_runs_of_another_project_behind_a_link(tmp_path: Path) -> None:
    """Links to another project's output dir and to one of its name folders: `clean` removes
    only the runs under PATH, `ls` lists only them. Before, both followed the links: `clean
    --status failed` trashed the other project's failed runs."""
    mine, theirs = Project(tmp_path / "mine"), Project(tmp_path / "theirs")
    my_ok = _make(mine, "ok", 0)
    my_failed = _make(mine, "bad", 1)
    _make(theirs, "bad", 1)
    _make(theirs, "other", 3)
    before = _tree(theirs.output)
    (mine.output / "their-outputs").symlink_to(theirs.output)
    (mine.output / "their-name-folder").symlink_to(theirs.output / "bad")

    cleaned = run(["clean", "outputs", "--status", "failed", "--yes"], cwd=mine.root)
    assert cleaned.code == 0, cleaned.describe()
    assert _rows(cleaned.stdout) == ["outputs/bad/exp.0"]
    assert cleaned.stderr.startswith("expyrun: removed 1 run, freed "), cleaned.describe()
    assert not my_failed.exists()
    assert my_ok.exists()
    assert _tree(theirs.output) == before
    listed = run(["ls", "outputs"], cwd=mine.root)
    assert listed.code == 0, listed.describe()
    assert _rows(listed.stdout) == ["outputs/ok/exp.0"]

    # A link given as PATH is followed, as `ls link/`.
    through = run(["ls", "outputs/their-outputs"], cwd=mine.root)
    assert through.code == 0, through.describe()
    assert _rows(through.stdout) == [
        "outputs/their-outputs/bad/exp.0",
        "outputs/their-outputs/other/exp.0",
    ]


def test_ls_and_last_end_on_loops_and_a_link_to_the_root(tmp_path: Path) -> None:
    """A loop (`a -> ..`, `b -> .`) and a link to `/` add nothing and the walk ends at once.
    Before, `ls` walked the whole file system through `/`, listing every run on the machine,
    and `last` took the newest of them."""
    mine, theirs = Project(tmp_path / "mine"), Project(tmp_path / "theirs")
    _make(mine, "ok", 0)
    my_failed = _make(mine, "bad", 1)
    _make(theirs, "newer", 0)  # reachable only through `/`
    (mine.output / "ok" / "up").symlink_to("..")
    (mine.output / "ok" / "here").symlink_to(".")
    (mine.output / "root").symlink_to("/")
    listed = run(["ls", "outputs"], cwd=mine.root, timeout=30)
    assert listed.code == 0, listed.describe()
    assert _rows(listed.stdout) == ["outputs/bad/exp.0", "outputs/ok/exp.0"]
    last = run(["status", "last"], cwd=mine.output, timeout=30)
    assert last.stderr == f"expyrun: last: {my_failed}\n", last.describe()


def test_a_name_folder_linked_to_another_disk_is_listed_and_cleaned(project: Project) -> None:
    """Runs launched through a linked name folder (`outputs/big -> /scratch/big`) belong to
    this output dir: `ls` lists them and `clean` removes them, in the link's own trash."""
    elsewhere = project.root / "scratch" / "big"
    elsewhere.mkdir(parents=True)
    project.output.mkdir(parents=True)
    (project.output / "big").symlink_to(elsewhere)
    kept = _make(project, "big", 0)
    failed = _make(project, "big", 1)
    assert failed.parent == project.output / "big"
    listed = run(["ls", "outputs"], cwd=project.root)
    assert _rows(listed.stdout) == ["outputs/big/exp.0", "outputs/big/exp.1"], listed.describe()
    cleaned = run(["clean", "outputs", "--status", "failed", "--yes"], cwd=project.root)
    assert cleaned.code == 0, cleaned.describe()
    assert not (elsewhere / "exp.1").exists()
    assert (elsewhere / kept.name / "run.json").is_file()
