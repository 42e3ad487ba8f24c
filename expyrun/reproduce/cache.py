"""Virtual environments rebuilt from a run's frozen requirements, cached by what they hold.

An environment is keyed by the hash of its requirement set and Python version, and lives in
`$XDG_CACHE_HOME/expyrun/envs/<key>` (or where `--env` says). It is built in a temporary
sibling folder (`python -m venv`, then `pip-sync` of the frozen file), then renamed into place:
a build that fails or is interrupted leaves nothing under the final name, and a second
reproduce of the same requirements finds the environment ready, checked in milliseconds by
listing its distributions (no pip involved).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from expyrun import console
from expyrun import started as start_up_over
from expyrun.errors import EnvironmentBuildError, ReproduceError
from expyrun.launch.options import Interpreter
from expyrun.reproduce.differences import compare
from expyrun.reproduce.interpreters import choose_python, probe_python
from expyrun.reproduce.pip import create_venv, pip_sync, venv_python
from expyrun.run import freeze
from expyrun.run.folder import current_umask
from expyrun.run.freeze import Requirement

# Written last into a built environment: what it was built from and what it holds.
MARKER_FILE = "expyrun-env.json"


class Environment(NamedTuple):
    """A virtual environment ready to run a reproduced run."""

    path: Path
    python: Interpreter


def cache_root() -> Path:
    """Where environments are cached: `$XDG_CACHE_HOME/expyrun/envs` (default ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "expyrun" / "envs"


def environment_key(requirements: Iterable[Requirement], python_version: str) -> str:
    """The cache key of an environment: the requirement set and the Python version."""
    lines = sorted({f"{r.key} {r.spec}" for r in requirements if not r.own_code})
    data = json.dumps({"python": python_version, "requirements": lines}, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def installed_requirements(python: Path | str, own_code_dirs: Sequence[str] = ()) -> str:
    """frozen_requirements.txt text of an interpreter's environment; ReproduceError if it fails."""
    try:
        return freeze.frozen_requirements_of(str(python), list(own_code_dirs))
    except OSError as exc:
        raise EnvironmentBuildError(f"cannot list the installed distributions: {exc}") from exc


def prepare_environment(
    requirements_file: Path,
    recorded_python: dict[str, str],
    explicit_python: str | None = None,
    target: Path | None = None,
    pip_options: Sequence[str] = (),
) -> Environment:
    """A virtual environment holding exactly the requirements: reused, synced or built.

    The fast path, a ready environment of the run's own Python version, starts no
    interpreter but the environment's own (to list what it holds).
    """
    text = requirements_file.read_text(encoding="utf-8")
    requirements = freeze.parse_requirements(text)[0]
    _check_local_paths(requirements_file, text)
    wanted = recorded_python.get("version", "")
    checked: set[Path] = set()
    if wanted and explicit_python is None:
        key = environment_key(requirements, wanted)
        path = _location(target, key)
        checked.add(path)
        ready = _ready(path, requirements, key)
        if ready is not None:
            return ready
    python = choose_python(recorded_python, explicit_python)
    key = environment_key(requirements, python.version)
    path = _location(target, key)
    if path not in checked:
        ready = _ready(path, requirements, key)
        if ready is not None:
            return ready
    if target is not None and path.exists() and not _is_empty_folder(path):
        _sync_in_place(path, requirements_file, requirements, pip_options)
        found = probe_python(str(venv_python(path)))
        if found is None:
            raise EnvironmentBuildError(
                "the environment's python does not run", path=venv_python(path)
            )
        if found.version != python.version:
            console.warning(f"the environment {path} has Python {found.version}")
        return Environment(path, found)
    stale = target is None and path.exists()
    if stale:
        console.info(f"the cached environment {path} has changed: building it again")
    _build(path, key, requirements_file, requirements, python, pip_options, stale)
    return Environment(path, Interpreter(str(venv_python(path)), python.version))


def _location(target: Path | None, key: str) -> Path:
    return Path(os.path.abspath(cache_root() / key if target is None else target))


def _ready(path: Path, requirements: list[Requirement], key: str) -> Environment | None:
    """The environment at `path` if it holds the requirement set (as it was built), else None."""
    python = venv_python(path)
    if not python.exists():
        return None
    try:
        text = freeze.frozen_requirements_of(str(python))
    except OSError:
        return None
    current, version = freeze.parse_requirements(text)
    expected = requirements
    marker = _read_marker(path)
    if marker is not None and marker.get("key") == key:
        # What the build left, extra dependencies pip pulled in included (reported then).
        expected = freeze.parse_requirements(str(marker.get("installed", "")))[0]
    if compare(expected, current):
        return None
    console.info(f"reusing the environment {path}")
    return Environment(path, Interpreter(str(python), version or ""))


def _is_empty_folder(path: Path) -> bool:
    try:
        return path.is_dir() and not any(path.iterdir())
    except OSError:
        return False


def _check_local_paths(requirements_file: Path, text: str) -> None:
    """Refuse, before building anything, a requirement on a local path that is gone."""
    for number, line in enumerate(text.splitlines(), 1):
        parsed = freeze.parse_requirements(line)[0]
        if not parsed or parsed[0].own_code:
            continue
        requirement = parsed[0]
        spec = requirement.spec
        url = spec.split(" ", 1)[1] if spec.startswith(("-e ", "@ ")) else ""
        local = freeze.file_url_path(url.split("#", 1)[0]) if url else None
        if local is not None and not os.path.exists(local):
            raise ReproduceError(
                f"{requirement.name} was installed from {local}, which no longer exists",
                path=requirements_file,
                line=number,
                hint="edit a copy of the file and sync it by hand",
            )


def _read_marker(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads((path / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _sync_in_place(
    path: Path, requirements_file: Path, requirements: list[Requirement], pip_options: Sequence[str]
) -> None:
    """Sync a virtual environment the user named with `--env` (not atomic: it is theirs)."""
    if not (path / "pyvenv.cfg").is_file():
        raise ReproduceError(
            "exists and is not a virtual environment", path=path, hint="--env takes a venv folder"
        )
    if os.path.realpath(path) == os.path.realpath(sys.prefix):
        raise ReproduceError("refusing to sync the environment expyrun itself runs in", path=path)
    console.info(f"syncing the environment {path} to {requirements_file}")
    started = time.monotonic()
    pip_sync(path, requirements_file, pip_options)
    _report_extras(path, requirements)
    console.info(f"environment ready in {time.monotonic() - started:.1f} s")


def _build(
    path: Path,
    key: str,
    requirements_file: Path,
    requirements: list[Requirement],
    python: Interpreter,
    pip_options: Sequence[str],
    replace_stale: bool = False,
) -> None:
    """Build the environment in a temporary sibling folder, then rename it to `path`.

    `replace_stale`: `path` holds an environment that changed since it was built; it is
    replaced. Otherwise an environment found at `path` was built meanwhile by another expyrun,
    and is kept.
    """
    start_up_over()  # a build lasts minutes: not with the collector off (expyrun/__main__.py)
    count = sum(1 for r in requirements if not r.own_code)
    console.info(f"building the environment {path} (Python {python.version}, {count} packages)")
    started = time.monotonic()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReproduceError(f"cannot create folder: {exc.strerror}", path=path.parent) from exc
    _remove_abandoned_builds(path.parent)
    temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent))
    try:
        create_venv(python.executable, temporary, prompt=path.name)
        pip_sync(temporary, requirements_file, pip_options)
        installed = _report_extras(temporary, requirements)
        marker = {
            "key": key,
            "python": python._asdict(),
            "built_from": str(requirements_file),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "installed": installed,
        }
        (temporary / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", "utf-8")
        _relocate(temporary, path)
        os.chmod(temporary, 0o777 & ~current_umask())
        _move_into_place(temporary, path, replace_stale)
    except ReproduceError as exc:
        shutil.rmtree(temporary, ignore_errors=True)
        exc.hint = "; ".join(filter(None, [exc.hint, f"nothing was left in {path.parent}"]))
        raise
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    console.info(f"environment ready in {time.monotonic() - started:.1f} s")


def _report_extras(path: Path, requirements: list[Requirement]) -> str:
    """Warn about what the environment holds beyond (or short of) the frozen set; its list."""
    installed = installed_requirements(venv_python(path))
    for difference in compare(requirements, freeze.parse_requirements(installed)[0]):
        console.warning(f"the environment differs from the run's: {difference}")
    return installed


def _move_into_place(temporary: Path, path: Path, replace_stale: bool) -> None:
    """Rename the built environment to `path` (replacing a stale one there if asked)."""
    old = None
    if replace_stale and path.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-{os.getpid()}-", dir=path.parent))
        os.rename(path, old)  # onto an empty folder: allowed, and atomic
    try:
        os.rename(temporary, path)
    except OSError as exc:
        if not (path / MARKER_FILE).is_file():
            raise ReproduceError(f"cannot move the environment: {exc}", path=path) from exc
        # Another expyrun built the same environment at the same time: keep theirs.
        shutil.rmtree(temporary, ignore_errors=True)
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _relocate(temporary: Path, path: Path) -> None:
    """Rewrite the temporary folder's path in bin/ scripts and pyvenv.cfg (venvs hard-code it).

    Console scripts start with `#!<env>/bin/python`, activate scripts set VIRTUAL_ENV; only
    text files are touched (a compiled executable would break if its bytes moved).
    """
    old, new = os.fsencode(temporary), os.fsencode(path)
    files = [temporary / "pyvenv.cfg"]
    files += [p for p in (temporary / "bin").iterdir() if p.is_file() and not p.is_symlink()]
    for file in files:
        try:
            data = file.read_bytes()
        except OSError:
            continue
        is_text = data.startswith(b"#!") or file.name.lower().startswith("activate")
        if (is_text or file.name == "pyvenv.cfg") and old in data:
            mode = file.stat().st_mode
            file.write_bytes(data.replace(old, new))
            os.chmod(file, mode)


def _remove_abandoned_builds(parent: Path) -> None:
    """Remove the hidden folders of builds whose expyrun is gone (killed mid-build)."""
    for entry in parent.glob(".*"):
        match = re.match(r"^\..+\.(tmp|old)-(\d+)-", entry.name)
        if match and not _pid_alive(int(match.group(2))):
            shutil.rmtree(entry, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
