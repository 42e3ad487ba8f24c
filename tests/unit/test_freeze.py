"""frozen_requirements.txt: one line per kind of installed distribution, read back by --check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from expyrun.reproduce.cache import environment_key
from expyrun.reproduce.differences import compare
from expyrun.run import freeze


def install(site: Path, name: str, version: str, direct_url: dict | None = None) -> None:
    """A fake installed distribution: a dist-info folder with METADATA (and direct_url.json)."""
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    )
    if direct_url is not None:
        (dist_info / "direct_url.json").write_text(json.dumps(direct_url))


@pytest.mark.parametrize(
    ("direct_url", "expected"),
    [
        pytest.param(None, "demo==1.0", id="index-pin"),
        pytest.param(
            {"url": "https://github.com/o/demo", "vcs_info": {"vcs": "git", "commit_id": "abc123"}},
            "demo @ git+https://github.com/o/demo@abc123",
            id="vcs-commit",
        ),
        pytest.param(
            {
                "url": "https://github.com/o/mono",
                "vcs_info": {"vcs": "git", "commit_id": "abc"},
                "subdirectory": "pkgs/demo",
            },
            "demo @ git+https://github.com/o/mono@abc#subdirectory=pkgs/demo",
            id="vcs-subdirectory",
        ),
        pytest.param(
            {"url": "file:///wheels/demo-1.0-py3-none-any.whl", "archive_info": {}},
            "demo @ file:///wheels/demo-1.0-py3-none-any.whl",
            id="local-archive",
        ),
        pytest.param(
            {
                "url": "https://host/demo-1.0.tar.gz",
                "archive_info": {"hashes": {"sha256": "f00d"}},
            },
            "demo @ https://host/demo-1.0.tar.gz#sha256=f00d",
            id="archive-with-hash",
        ),
        pytest.param(
            {"url": "https://host/demo-1.0.tar.gz", "archive_info": {"hash": "sha256=f00d"}},
            "demo @ https://host/demo-1.0.tar.gz#sha256=f00d",
            id="archive-legacy-hash",
        ),
        pytest.param(
            {"url": "file:///elsewhere/demo", "dir_info": {}},
            "demo @ file:///elsewhere/demo",
            id="local-folder",
        ),
        pytest.param(
            {"url": "file:///elsewhere/demo", "dir_info": {"editable": True}},
            "-e file:///elsewhere/demo  # demo==1.0",
            id="editable-elsewhere",
        ),
    ],
)
def test_each_kind_of_install_has_its_line(
    tmp_path: Path, direct_url: dict | None, expected: str
) -> None:
    install(tmp_path, "demo", "1.0", direct_url)
    text = freeze.frozen_requirements([str(tmp_path)], own_code_dirs=["/project"])
    assert text.splitlines()[1:] == [expected]
    [requirement], _ = freeze.parse_requirements(text)
    assert requirement.key == "demo"
    assert requirement.own_code is False


@pytest.mark.parametrize(
    ("url", "editable"),
    [
        pytest.param("file:///project", True, id="editable-code-folder"),
        pytest.param("file:///project", False, id="installed-from-code-folder"),
        pytest.param("file:///", True, id="editable-folder-holding-the-code"),
    ],
)
def test_own_code_is_a_comment(tmp_path: Path, url: str, editable: bool) -> None:
    install(tmp_path, "my-code", "0.1", {"url": url, "dir_info": {"editable": editable}})
    text = freeze.frozen_requirements([str(tmp_path)], own_code_dirs=["/project/src"])
    line = text.splitlines()[1]
    assert line.startswith("# my-code==0.1  (own code from /")
    [requirement], _ = freeze.parse_requirements(text)
    assert requirement.own_code is True
    assert requirement.key == "my-code"


def test_a_folder_inside_the_code_folder_is_not_own_code(tmp_path: Path) -> None:
    install(tmp_path, "lib", "2.0", {"url": "file:///project/vendor/lib", "dir_info": {}})
    text = freeze.frozen_requirements([str(tmp_path)], own_code_dirs=["/project"])
    assert text.splitlines()[1] == "lib @ file:///project/vendor/lib"


def test_own_code_by_name_and_excluded_tools(tmp_path: Path) -> None:
    for name in ("pip", "setuptools", "wheel", "Mine", "other"):
        install(tmp_path, name, "1.0")
    text = freeze.frozen_requirements([str(tmp_path)], own_code={"mine"})
    assert text.splitlines()[1:] == [
        "# Mine==1.0  (own code from the code folder, not synced)",
        "other==1.0",
    ]


def test_the_header_names_the_python_version(tmp_path: Path) -> None:
    text = freeze.frozen_requirements([str(tmp_path)])
    assert text == f"# python {sys.version.split()[0]}\n"
    assert freeze.parse_requirements(text) == ([], sys.version.split()[0])


def test_the_script_freezes_another_interpreter_with_own_code(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", tmp_path / "env"], check=True)
    python = tmp_path / "env" / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    install(Path(site), "alpha", "3.0")
    install(Path(site), "beta", "1.0", {"url": "file:///code", "dir_info": {"editable": True}})
    install(Path(site), "gamma", "1.0")

    text = freeze.frozen_requirements_of(str(python), ["/code"], {"gamma"})

    assert text.splitlines()[1:] == [
        "alpha==3.0",
        "# beta==1.0  (own code from /code, not synced)",
        "# gamma==1.0  (own code from the code folder, not synced)",
    ]


def test_an_interpreter_that_fails_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="cannot list"):
        freeze.frozen_requirements_of("/bin/false")


def test_pip_sync_accepts_the_file_as_it_is(tmp_path: Path) -> None:
    """pip-sync parses every kind of line (a dry run: nothing is installed or fetched)."""
    project = tmp_path / "elsewhere"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "demo-e"\nversion = "1.0"\n')
    site = tmp_path / "site"
    install(site, "demo-pin", "1.0")
    install(site, "demo-vcs", "1.0", {"url": "https://h/o/r", "vcs_info": {"commit_id": "abc"}})
    install(site, "demo-e", "1.0", {"url": project.as_uri(), "dir_info": {"editable": True}})
    install(site, "mine", "1.0", {"url": "file:///code", "dir_info": {"editable": True}})
    requirements = tmp_path / "frozen_requirements.txt"
    requirements.write_text(freeze.frozen_requirements([str(site)], own_code_dirs=["/code"]))

    done = subprocess.run(
        [sys.executable, "-m", "piptools", "sync", "--dry-run", "--no-index", requirements],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode in (0, 1), done.stderr  # 1: a dry run that would change things
    assert "Would install:" in done.stdout
    would_install = done.stdout.split("Would install:")[1]
    for name in ("demo-pin==1.0", "demo-vcs", project.as_uri()):
        assert name in would_install
    assert "mine" not in would_install


def test_compare_and_the_environment_key() -> None:
    frozen, _ = freeze.parse_requirements(
        "# python 3.11.7\na==1.0\nb==2.0\nc @ git+https://h/c@1\n"
        "# mine==0.1  (own code from /x, not synced)\n"
    )
    current, _ = freeze.parse_requirements("a==1.1\nc @ git+https://h/c@2\nd==0.1\nmine==0.2\n")
    assert [str(d) for d in compare(frozen, current)] == [
        "changed  a 1.0 -> 1.1",
        "changed  c @ git+https://h/c@1 -> @ git+https://h/c@2",
        "removed  b 2.0",
        "added    d 0.1",
    ]
    assert compare(frozen, frozen) == []
    key = environment_key(frozen, "3.11.7")
    assert key == environment_key(list(reversed(frozen)), "3.11.7")
    assert key != environment_key(frozen, "3.12.1")
    assert key != environment_key(current, "3.11.7")
