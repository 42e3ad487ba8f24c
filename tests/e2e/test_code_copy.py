"""The code copy through the real CLI: links, what is left out, and what a large copy says.

Each case runs the same config twice: as a run (the code copy runs) and with --debug (the
original code runs), and compares what the entry saw. The entry reads paths relative to its
own file, so it reads the copy in a run and the original under --debug.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from support import Project, Result, run

# Prints, for each path of config["paths"] (relative to the entry's folder), what it finds:
# a folder's listing, a file's size and first bytes, or the error.
ENTRY = """\
import os
import re


def main(name, config):
    here = os.path.dirname(os.path.abspath(__file__))
    for relative in config["paths"]:
        path = os.path.join(here, relative)
        try:
            if os.path.isdir(path):
                shown = sorted(os.listdir(path))
            else:
                with open(path, "rb") as f:
                    shown = (os.fstat(f.fileno()).st_size, f.read(40))
        except OSError as exc:
            shown = type(exc).__name__ + ": " + os.strerror(exc.errno)
        print(relative, shown)
"""
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@e", "-c", "init.defaultBranch=main"]
GIB = 1024**3


def _package(project: Project) -> str:
    """pkg/main.py (ENTRY), pkg/data/v2.txt, a sibling module helpers.py; returns the entry."""
    project.write("pkg/__init__.py", "")
    project.write("pkg/main.py", ENTRY)
    project.write("pkg/data/v2.txt", "version 2\n")
    project.write("helpers.py", "HELP = 1\n")
    return "pkg.main:main"


def _config(project: Project, paths: list[str], **run_keys: object) -> Path:
    return project.config(_package(project), extra={"paths": paths}, **run_keys)


def _run_and_debug(project: Project, config: Path, *args: str) -> tuple[Result, Result]:
    """Run `config` (the copy runs), then with --debug (the original runs): both must succeed."""
    copied = run([config, *args], cwd=project.root)
    assert copied.code == 0, copied.describe()
    debug = run([config, "--debug", *args], cwd=project.root)
    assert debug.code == 0, debug.describe()
    return copied, debug


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(
        [*GIT, "-C", str(root), *args], check=True, capture_output=True, text=True
    )
    return done.stdout


def _git_init(root: Path) -> None:
    _git(root, "init", "-q")


def _files_in(folder: Path) -> list[str]:
    """The files and links under `folder`, but the bytecode caches that importing writes."""
    return sorted(
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if (path.is_file() or path.is_symlink()) and "__pycache__" not in path.parts
    )


# --- symbolic links: one row per kind of link --------------------------------------------
# setup(root, outside) makes links in the package (root: the project, outside: a folder next
# to it) and returns (paths the entry reads, {link: its target in the copy}, warning or "").


def _ancestor(root: Path, outside: Path) -> tuple[list[str], dict[str, str], str]:
    # reliability-f11: the copy followed `up` about 40 times, then failed.
    (root / "pkg/data/blob.bin").write_bytes(os.urandom(1_000_000))
    (root / "pkg/data/up").symlink_to("..")
    return ["data/up", "data/up/data/up/data/v2.txt"], {"pkg/data/up": ".."}, ""


def _file_outside_absolute(root: Path, outside: Path) -> tuple[list[str], dict[str, str], str]:
    (root / "pkg/data/ext.txt").symlink_to(outside / "f.txt")
    return ["data/ext.txt"], {"pkg/data/ext.txt": f"{outside}/f.txt"}, ""


def _file_outside_relative(root: Path, outside: Path) -> tuple[list[str], dict[str, str], str]:
    # From pkg/data: ../../.. is the folder holding the project and `outside`.
    (root / "pkg/data/rel.txt").symlink_to("../../../outside/f.txt")
    return ["data/rel.txt"], {"pkg/data/rel.txt": f"{outside}/f.txt"}, ""


def _folder_outside_relative(root: Path, outside: Path) -> tuple[list[str], dict[str, str], str]:
    (root / "pkg/dataset").symlink_to("../../outside/mnist")
    paths = ["dataset", "dataset/a.txt"]
    return paths, {"pkg/dataset": f"{outside}/mnist"}, ""


def _inside_relative(root: Path, outside: Path) -> tuple[list[str], dict[str, str], str]:
    (root / "pkg/latest.txt").symlink_to("data/v2.txt")
    return ["latest.txt"], {"pkg/latest.txt": "data/v2.txt"}, ""


def _inside_absolute(root: Path, outside: Path) -> tuple[list[str], dict[str, str], str]:
    # An absolute link into the package points into the copy, not into the working tree.
    (root / "pkg/alias.txt").symlink_to(root / "pkg/data/v2.txt")
    return ["alias.txt"], {"pkg/alias.txt": "data/v2.txt"}, ""


def _sibling_module(root: Path, outside: Path) -> tuple[list[str], dict[str, str], str]:
    (root / "pkg/h.py").symlink_to(root / "helpers.py")
    return ["h.py"], {"pkg/h.py": "../helpers.py"}, ""


def _dotdot_after_a_link(root: Path, outside: Path) -> tuple[list[str], dict[str, str], str]:
    # `up/..` is the project folder, not pkg/data: the kernel resolves `..` after the link.
    (root / "pkg/data/up").symlink_to("..")
    (root / "pkg/odd.py").symlink_to("data/up/../helpers.py")
    return ["odd.py"], {"pkg/odd.py": "../helpers.py", "pkg/data/up": ".."}, ""


def _broken(root: Path, outside: Path) -> tuple[list[str], dict[str, str], str]:
    (root / "pkg/data/gone.txt").symlink_to("nothing.txt")
    warning = "pkg/data/gone.txt -> nothing.txt: broken symbolic link, copied as a link"
    return ["data/gone.txt"], {"pkg/data/gone.txt": "nothing.txt"}, warning


def _broken_outside(root: Path, outside: Path) -> tuple[list[str], dict[str, str], str]:
    # Relative and leading out of the package: in the run folder it would name other files.
    (root / "pkg/old").symlink_to("../config.yml.gone")
    warning = "pkg/old -> ../config.yml.gone: broken symbolic link"
    return ["old"], {"pkg/old": f"{root}/config.yml.gone"}, warning


def _cycle(root: Path, outside: Path) -> tuple[list[str], dict[str, str], str]:
    (root / "pkg/a").symlink_to("b")
    (root / "pkg/b").symlink_to("a")
    warning = "pkg/a -> b: symbolic link in a cycle of links, copied as a link"
    return ["a", "b"], {"pkg/a": "b", "pkg/b": "a"}, warning


def _self_cycle(root: Path, outside: Path) -> tuple[list[str], dict[str, str], str]:
    (root / "pkg/loop").symlink_to("loop")
    return ["loop"], {"pkg/loop": "loop"}, "pkg/loop -> loop: symbolic link in a cycle"


def _to_a_left_out_file(root: Path, outside: Path) -> tuple[list[str], dict[str, str], str]:
    # The target is left out of the copy (__code_exclude__ below): the link keeps pointing at it.
    (root / "pkg/ckpts").mkdir()
    (root / "pkg/ckpts/epoch9.ckpt").write_text("weights\n")
    (root / "pkg/best.ckpt").symlink_to("ckpts/epoch9.ckpt")
    return ["best.ckpt"], {"pkg/best.ckpt": f"{root}/pkg/ckpts/epoch9.ckpt"}, ""


LINK_CASES = [
    pytest.param(_ancestor, id="ancestor-folder"),
    pytest.param(_file_outside_absolute, id="file-outside-absolute"),
    pytest.param(_file_outside_relative, id="file-outside-relative"),
    pytest.param(_folder_outside_relative, id="folder-outside-relative"),
    pytest.param(_inside_relative, id="inside-relative"),
    pytest.param(_inside_absolute, id="inside-absolute"),
    pytest.param(_sibling_module, id="to-a-sibling-module"),
    pytest.param(_dotdot_after_a_link, id="dotdot-after-a-link"),
    pytest.param(_broken, id="broken"),
    pytest.param(_broken_outside, id="broken-relative-outside"),
    pytest.param(_cycle, id="cycle"),
    pytest.param(_self_cycle, id="self-cycle"),
    pytest.param(_to_a_left_out_file, id="to-a-left-out-file"),
]


@pytest.mark.parametrize("setup", LINK_CASES)
def test_a_link_is_copied_as_a_link_and_the_copy_sees_what_debug_sees(
    project: Project,
    tmp_path: Path,
    setup: Callable[[Path, Path], tuple[list[str], dict[str, str], str]],
) -> None:
    outside = tmp_path / "outside"
    (outside / "mnist").mkdir(parents=True)
    (outside / "f.txt").write_text("outside the package\n")
    (outside / "mnist/a.txt").write_text("a digit\n")
    _package(project)
    paths, links, warning = setup(project.root, outside)
    config = _config(project, paths, __code_exclude__=["ckpts/"])

    copied, debug = _run_and_debug(project, config)

    assert copied.log == debug.log, f"{copied.log!r}\n!=\n{debug.log!r}"
    assert copied.log.count(b"\n") == len(paths)
    for link, target in links.items():
        assert os.readlink(copied.run_dir / link) == target, link
    warnings = [line for line in copied.stderr.splitlines() if "warning:" in line]
    if warning:
        assert any(warning in line for line in warnings), copied.describe()
    else:
        assert warnings == [], copied.describe()
    record = copied.record["code_copy"]
    assert record["links"] == len(links)
    absolute = {link: target for link, target in links.items() if target.startswith("/")}
    assert {item["path"]: item["target"] for item in record["outside_links"]} == absolute


def test_a_link_to_an_ancestor_copies_the_package_once(project: Project) -> None:
    """reliability-f11: 25 MB in the package and `data/up -> ..` wrote ~1 GB, then failed."""
    config = _config(project, ["data/up/data/blob.bin"])
    os.truncate(project.write("pkg/data/blob.bin", ""), 25_000_000)
    (project.root / "pkg/data/up").symlink_to("..")

    copied, debug = _run_and_debug(project, config)

    assert copied.log == debug.log
    record = copied.record["code_copy"]
    package = sum(
        path.stat().st_size
        for path in (project.root / "pkg").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts  # written by the --debug run
    )
    assert record["bytes"] == package + len("HELP = 1\n")
    assert _files_in(copied.run_dir / "pkg") == [
        "__init__.py",
        "data/blob.bin",
        "data/up",
        "data/v2.txt",
        "main.py",
    ]


def test_a_rerun_keeps_the_links_of_its_code_copy(project: Project, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f.txt").write_text("outside\n")
    config = _config(project, ["data/up/data/v2.txt", "ext.txt", "gone.txt"])
    (project.root / "pkg/data/up").symlink_to("..")
    (project.root / "pkg/ext.txt").symlink_to("../../outside/f.txt")
    (project.root / "pkg/gone.txt").symlink_to("nothing")
    first = run([config], cwd=project.root)
    assert first.code == 0, first.describe()

    rerun = run(["rerun", first.run_dir], cwd=project.root)

    assert rerun.code == 0, rerun.describe()
    assert rerun.log == first.log
    for link in ("pkg/data/up", "pkg/ext.txt", "pkg/gone.txt"):
        assert os.readlink(rerun.run_dir / link) == os.readlink(first.run_dir / link)


# --- the output dir inside the package ----------------------------------------------------


def test_an_output_dir_inside_the_package_is_left_out_of_the_copy(project: Project) -> None:
    """reliability-r6: `__output_dir__: pkg/outputs` failed with 'File name too long'."""
    config = _config(project, ["outputs"], __output_dir__="pkg/outputs")
    note = "expyrun: pkg/outputs: the output dir is inside the code, left out of the code copy"

    first, debug = _run_and_debug(project, config)
    second = run([config], cwd=project.root)  # the first run's folder is there now

    assert second.code == 0, second.describe()
    for result in (first, second):
        assert result.run_dir.parent.parent == project.root / "pkg/outputs"
        assert note in result.stderr.splitlines(), result.describe()
        assert not (result.run_dir / "pkg/outputs").exists()
        assert result.record["code_copy"]["excluded"] == [
            {"path": "pkg/outputs", "reason": "output dir"}
        ]
        assert result.log == b"outputs FileNotFoundError: No such file or directory\n"
    assert b"outputs ['DEBUG', 'exp']" in debug.log  # the original package holds it
    assert note not in debug.stderr


def test_an_output_dir_that_is_the_package_leaves_run_folders_out(project: Project) -> None:
    """The package cannot be left out: its run folders are (this one, and past ones)."""
    config = _config(project, ["r"], __output_dir__="pkg", __name__="r")

    first = run([config], cwd=project.root)
    second = run([config], cwd=project.root)

    assert (first.code, second.code) == (0, 0), second.describe()
    assert first.run_dir == project.root / "pkg/r/exp.0"
    assert first.record["code_copy"]["excluded"] == [
        {"path": "pkg/r/exp.0", "reason": "run folder"}
    ]
    assert second.record["code_copy"]["excluded"] == [
        {"path": "pkg/r/exp.0", "reason": "run folder"},
        {"path": "pkg/r/exp.1", "reason": "run folder"},
    ]
    note = "expyrun: pkg/r/exp.1: the run folder is inside the code, left out of the code copy"
    assert note in second.stderr.splitlines()
    assert second.log == b"r []\n"  # the name folder is copied, empty
    assert _files_in(second.run_dir / "pkg") == ["__init__.py", "data/v2.txt", "main.py"]


def test_a_run_name_leading_into_the_package_leaves_the_run_folder_out(project: Project) -> None:
    config = _config(project, [], __output_dir__=".", __name__="pkg/runs")

    result = run([config], cwd=project.root)

    assert result.code == 0, result.describe()
    assert result.run_dir == project.root / "pkg/runs/exp.0"
    assert _files_in(result.run_dir / "pkg/runs") == []  # the name folder, without its runs
    assert result.record["code_copy"]["excluded"] == [
        {"path": "pkg/runs/exp.0", "reason": "run folder"}
    ]


def test_an_output_dir_in_a_sibling_package_is_left_out(project: Project) -> None:
    config = _config(project, [], __output_dir__="runs/here")
    project.write("runs/__init__.py", "")
    project.write("runs/tool.py", "X = 1\n")

    result = run([config], cwd=project.root)

    assert result.code == 0, result.describe()
    assert _files_in(result.run_dir / "runs") == ["__init__.py", "tool.py"]
    assert result.record["code_copy"]["excluded"] == [{"path": "runs/here", "reason": "output dir"}]


# --- what is left out: .gitignore, __code_exclude__ --------------------------------------


def test_a_gitignored_sparse_gigabyte_file_is_left_out(project: Project) -> None:
    config = _config(project, ["weights.bin", "data/v2.txt"])
    os.truncate(project.write("pkg/weights.bin", ""), GIB)
    project.write(".gitignore", "outputs/\n*.bin\n")
    _git_init(project.root)

    copied, debug = _run_and_debug(project, config)

    assert not (copied.run_dir / "pkg/weights.bin").exists()
    record = copied.record["code_copy"]
    assert record["excluded"] == [{"path": "pkg/weights.bin", "reason": ".gitignore"}]
    assert record["excluded_count"] == 1
    assert record["bytes"] < 10_000
    assert "warning" not in copied.stderr
    # Left out means left out: the copy does not see it, the original code (--debug) does.
    assert b"weights.bin FileNotFoundError" in copied.log
    assert f"weights.bin ({GIB}, ".encode() in debug.log
    assert copied.log.splitlines()[1] == debug.log.splitlines()[1]


def test_code_exclude_leaves_out_a_sparse_gigabyte_file_outside_git(project: Project) -> None:
    config = _config(project, ["weights.bin"], __code_exclude__=["*.bin"])
    os.truncate(project.write("pkg/weights.bin", ""), GIB)

    result = run([config], cwd=project.root)

    assert result.code == 0, result.describe()
    assert not (result.run_dir / "pkg/weights.bin").exists()
    assert result.record["code_copy"]["excluded"] == [
        {"path": "pkg/weights.bin", "reason": "__code_exclude__ '*.bin'"}
    ]
    assert "warning" not in result.stderr


def test_code_exclude_patterns_name_names_paths_and_folders(project: Project) -> None:
    patterns = ["*.ckpt", "pkg/data/raw", "cache/", "scratch.py", "pkg"]
    config = _config(project, [], __code_exclude__=patterns)
    for path in (
        "pkg/a.ckpt",
        "pkg/sub/b.ckpt",
        "pkg/data/raw/x.npy",
        "pkg/data/rawer.txt",
        "pkg/cache/c.txt",
        "pkg/sub/cache",  # a file named cache: `cache/` names folders only
        "scratch.py",
    ):
        project.write(path, "x\n")

    result = run([config], cwd=project.root)

    assert result.code == 0, result.describe()
    # The entry's own package is never left out, even when a pattern names it.
    assert _files_in(result.run_dir / "pkg") == [
        "__init__.py",
        "data/rawer.txt",
        "data/v2.txt",
        "main.py",
        "sub/cache",
    ]
    assert not (result.run_dir / "scratch.py").exists()
    assert (result.run_dir / "helpers.py").exists()
    reasons = {item["path"]: item["reason"] for item in result.record["code_copy"]["excluded"]}
    assert reasons == {
        "scratch.py": "__code_exclude__ 'scratch.py'",
        "pkg/a.ckpt": "__code_exclude__ '*.ckpt'",
        "pkg/cache": "__code_exclude__ 'cache/'",
        "pkg/data/raw": "__code_exclude__ 'pkg/data/raw'",
        "pkg/sub/b.ckpt": "__code_exclude__ '*.ckpt'",
    }
    assert result.record["code_copy"]["copied"] == ["helpers.py", "pkg"]


def test_code_exclude_from_the_command_line(project: Project) -> None:
    config = _config(project, [])
    project.write("pkg/model.ckpt", "weights\n")

    override = ["--__run__.__code_exclude__", "['*.ckpt', '*.npy']"]

    result = run([config, *override], cwd=project.root)

    assert result.code == 0, result.describe()
    assert not (result.run_dir / "pkg/model.ckpt").exists()
    stored = yaml.safe_load((result.run_dir / "config.yml").read_text())
    assert stored["__run__"]["__code_exclude__"] == ["*.ckpt", "*.npy"]


def test_a_30000_file_node_modules_ignored_by_git_is_left_out(project: Project) -> None:
    """reliability-r5: 30,000 small files in the package were copied silently, every launch."""
    config = _config(project, ["web"])
    project.write("pkg/web/app.js", "app\n")
    modules = project.root / "pkg/web/node_modules"
    for i in range(30_000):
        folder = modules / f"p{i % 500}"
        if i < 500:
            folder.mkdir(parents=True)
        (folder / f"f{i}.js").write_bytes(b"x")
    project.write(".gitignore", "outputs/\nnode_modules/\n")
    _git_init(project.root)

    copied, debug = _run_and_debug(project, config)

    assert _files_in(copied.run_dir / "pkg/web") == ["app.js"]
    assert copied.record["code_copy"]["excluded"] == [
        {"path": "pkg/web/node_modules", "reason": ".gitignore"}
    ]
    assert copied.record["code_copy"]["files"] == 5  # __init__, main, v2.txt, app.js, helpers
    assert copied.log == b"web ['app.js']\n"
    assert debug.log == b"web ['app.js', 'node_modules']\n"


def test_git_rules_nested_gitignore_negation_info_exclude_and_tracked_files(
    project: Project,
) -> None:
    config = _config(project, [])
    for path in (
        "pkg/sub/run.log",  # *.log at the top
        "pkg/sub/keep.log",  # !keep.log in pkg/sub/.gitignore
        "pkg/sub/cache/x.bin",  # cache/ in pkg/sub/.gitignore
        "pkg/cache/y.txt",  # not under pkg/sub: kept
        "pkg/secret.txt",  # .git/info/exclude
        "pkg/tracked.log",  # ignored by name but tracked: git does not ignore it
        "pkg/notes.txt",
    ):
        project.write(path, "x\n")
    project.write(".gitignore", "outputs/\n*.log\n")
    project.write("pkg/sub/.gitignore", "cache/\n!keep.log\n")
    _git_init(project.root)
    project.write(".git/info/exclude", "secret.txt\n")
    _git(project.root, "add", "-f", "pkg/tracked.log")

    result = run([config], cwd=project.root)

    assert result.code == 0, result.describe()
    assert _files_in(result.run_dir / "pkg") == [
        "__init__.py",
        "cache/y.txt",
        "data/v2.txt",
        "main.py",
        "notes.txt",
        "sub/keep.log",
        "tracked.log",
    ]
    excluded = {item["path"] for item in result.record["code_copy"]["excluded"]}
    assert excluded == {"pkg/sub/run.log", "pkg/sub/cache", "pkg/secret.txt"}
    # git agrees, asked file by file.
    ignored = _git(
        project.root, "check-ignore", "--no-index", *sorted(excluded), "pkg/sub/keep.log"
    ).split()
    assert sorted(ignored) == sorted(excluded)


def test_git_ignored_python_code_is_copied_all_the_same(project: Project) -> None:
    """Generated modules are usually git-ignored, and imported: the copy must hold them."""
    config = _config(project, ["proto", "gen"])
    project.write(
        "pkg/__init__.py", "from pkg._version import VERSION\nfrom pkg.proto import x_pb2\n"
    )
    project.write("pkg/_version.py", "VERSION = '1.2'\n")
    project.write("pkg/proto/__init__.py", "")
    project.write("pkg/proto/x_pb2.py", "X = 1\n")
    project.write("pkg/gen/table.csv", "1,2\n")  # a folder, not a package: left out
    project.write(".gitignore", "outputs/\n_version.py\nproto/\ngen/\n")
    _git_init(project.root)

    copied, debug = _run_and_debug(project, config)

    assert _files_in(copied.run_dir / "pkg/proto") == ["__init__.py", "x_pb2.py"]
    assert (copied.run_dir / "pkg/_version.py").is_file()
    assert copied.record["code_copy"]["excluded"] == [{"path": "pkg/gen", "reason": ".gitignore"}]
    assert copied.log.splitlines()[0] == debug.log.splitlines()[0]


def _fake_git(folder: Path, log: Path) -> dict[str, str]:
    """A PATH whose `git` logs its arguments to `log`, then runs the real git."""
    real = shutil.which("git")
    assert real, "git is needed"
    folder.mkdir()
    script = folder / "git"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\nexec {real} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def test_outside_a_repository_gitignore_means_nothing_and_git_is_not_started(
    project: Project, tmp_path: Path
) -> None:
    if any((folder / ".git").exists() for folder in project.root.parents):
        pytest.skip("the test folder is inside a git repository")
    config = _config(project, [])
    project.write("pkg/weights.bin", "w\n")
    project.write(".gitignore", "*.bin\n")
    log = tmp_path / "git.log"

    result = run([config], cwd=project.root, env=_fake_git(tmp_path / "bin", log))

    assert result.code == 0, result.describe()
    assert (result.run_dir / "pkg/weights.bin").exists()
    assert result.record["code_copy"]["excluded"] == []
    assert result.record["git"] is None
    assert not log.exists(), log.read_text()


def test_in_a_repository_one_git_call_lists_the_ignored_paths(
    project: Project, tmp_path: Path
) -> None:
    config = _config(project, [])
    project.write("pkg/weights.bin", "w\n")
    project.write(".gitignore", "outputs/\n*.bin\n")
    _git_init(project.root)
    log = tmp_path / "git.log"

    result = run([config], cwd=project.root, env=_fake_git(tmp_path / "bin", log))

    assert result.code == 0, result.describe()
    assert not (result.run_dir / "pkg/weights.bin").exists()
    calls = [line for line in log.read_text().splitlines() if "ls-files" in line]
    assert calls == [
        f"-C {project.root} ls-files -z --others --ignored --exclude-standard --directory"
        " -- :(literal)helpers.py :(literal)pkg"
    ]


def test_a_rerun_copies_its_code_copy_though_git_ignores_the_output_dir(
    project: Project,
) -> None:
    """The past run folder is under outputs/, which git ignores: its copy is copied whole."""
    config = _config(project, ["data/v2.txt"])
    project.write("pkg/weights.bin", "w\n")
    project.write(".gitignore", "outputs/\n*.bin\n")
    _git_init(project.root)
    first = run([config], cwd=project.root)
    assert first.code == 0, first.describe()

    rerun = run(["rerun", first.run_dir], cwd=project.root)

    assert rerun.code == 0, rerun.describe()
    assert rerun.log == first.log == b"data/v2.txt (10, b'version 2\\n')\n"
    assert _files_in(rerun.run_dir / "pkg") == _files_in(first.run_dir / "pkg")
    assert rerun.record["code_copy"]["copied"] == ["helpers.py", "pkg"]
    assert rerun.record["code_copy"]["excluded"] == []


# --- a large copy -------------------------------------------------------------------------


def test_a_copy_past_50_mb_warns_with_its_size_and_largest_files(project: Project) -> None:
    config = _config(project, [])
    os.truncate(project.write("pkg/data/train.npy", ""), 40_000_000)
    os.truncate(project.write("pkg/model.pt", ""), 20_000_000)

    result = run([config], cwd=project.root)

    assert result.code == 0, result.describe()
    assert (result.run_dir / "pkg/model.pt").stat().st_size == 20_000_000
    warnings = [line for line in result.stderr.splitlines() if "warning:" in line]
    assert warnings == [
        "expyrun: warning: the code copy takes 60 MB in 6 files (largest: pkg/data/train.npy "
        f"40 MB, pkg/model.pt 20 MB, pkg/main.py {len(ENTRY)} B): data inside the package? "
        "(leave it out with .gitignore or __run__.__code_exclude__)"
    ]
    record = result.record["code_copy"]
    assert record["bytes"] > 60_000_000
    assert record["largest"][:2] == [
        {"path": "pkg/data/train.npy", "bytes": 40_000_000},
        {"path": "pkg/model.pt", "bytes": 20_000_000},
    ]


def test_a_copy_under_50_mb_says_nothing(project: Project) -> None:
    config = _config(project, [])
    os.truncate(project.write("pkg/data/train.npy", ""), 49_000_000)

    result = run([config], cwd=project.root)

    assert result.code == 0, result.describe()
    assert "warning" not in result.stderr


# --- bad __code_exclude__: checked before anything is created -----------------------------


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        pytest.param("*.ckpt", r"__code_exclude__': expected a list of glob patterns", id="text"),
        pytest.param(["*.ckpt", 3], r"__code_exclude__\.1': expected a glob pattern", id="int"),
        pytest.param(["../up"], r"__code_exclude__\.0': must be relative", id="dotdot"),
    ],
)
def test_a_bad_code_exclude_is_one_line_and_exit_2(
    project: Project, value: object, pattern: str
) -> None:
    config = _config(project, [], __code_exclude__=value)

    result = run([config], cwd=project.root)

    assert result.code == 2, result.describe()
    (line,) = result.stderr.splitlines()
    assert re.match(r"expyrun: error: config\.yml:\d+: key '__run__\.", line), line
    assert re.search(pattern, line), line
    assert not project.output.exists()
