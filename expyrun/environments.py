"""Virtual environments rebuilt from a run's frozen requirements, cached by what they hold.

An environment is keyed by the hash of its requirement set and Python version, and lives in
`$XDG_CACHE_HOME/expyrun/envs/<key>` (or where `--env` says). It is built in a temporary
sibling folder (`python -m venv`, then `pip-sync` of the frozen file), then renamed into place:
a build that fails or is interrupted leaves nothing under the final name, and a second
reproduce of the same requirements finds the environment ready, checked in milliseconds by
listing its distributions (no pip involved).

pip and pip-sync run through `_call`, the one door for those subprocesses: their output is
relayed line by line as progress, and a failure becomes one `ReproduceError` line.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from expyrun import console
from expyrun.errors import EnvironmentBuildError, ReproduceError
from expyrun.run import freeze
from expyrun.run.freeze import Requirement

# Written last into a built environment: what it was built from and what it holds.
MARKER_FILE = "expyrun-env.json"
VENV_TIMEOUT_SECONDS = 600
# pip may download gigabytes (CUDA wheels): a sync that takes longer is considered stuck.
SYNC_TIMEOUT_SECONDS = 3 * 3600
PROBE_TIMEOUT_SECONDS = 30
# Signs in pip's output that the index was not reachable, as opposed to a missing version.
_NETWORK_SIGNS = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "ConnectTimeoutError",
    "ProxyError",
)
_MAX_REASON_CHARS = 300


class Python(NamedTuple):
    """An interpreter: its path and its version (`3.11.7`)."""

    executable: str
    version: str


class Environment(NamedTuple):
    """A virtual environment ready to run a reproduced run."""

    path: Path
    python: Python


class Difference(NamedTuple):
    """One way two requirement sets differ."""

    kind: str  # "added", "removed" or "changed"
    name: str
    before: str  # in the frozen file ("" when added)
    after: str  # in the environment ("" when removed)

    def __str__(self) -> str:
        if self.kind == "changed":
            return f"changed  {self.name} {self.before} -> {self.after}"
        return f"{self.kind:8s} {self.name} {self.after or self.before}"


def cache_root() -> Path:
    """Where environments are cached: `$XDG_CACHE_HOME/expyrun/envs` (default ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "expyrun" / "envs"


def environment_key(requirements: Iterable[Requirement], python_version: str) -> str:
    """The cache key of an environment: the requirement set and the Python version."""
    lines = sorted({f"{r.key} {r.spec}" for r in requirements if not r.own_code})
    data = json.dumps({"python": python_version, "requirements": lines}, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def compare(frozen: Iterable[Requirement], current: Iterable[Requirement]) -> list[Difference]:
    """How `current` differs from `frozen`, own code ignored on both sides.

    Sorted changed, removed, added, then by name: what matters most comes first.
    """
    frozen, current = list(frozen), list(current)
    own = {r.key for r in (*frozen, *current) if r.own_code}
    before = {r.key: r for r in frozen if r.key not in own}
    after = {r.key: r for r in current if r.key not in own}
    found = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old is None and new is not None:
            found.append(Difference("added", new.name, "", new.spec))
        elif new is None and old is not None:
            found.append(Difference("removed", old.name, old.spec, ""))
        elif old is not None and new is not None and old.spec != new.spec:
            found.append(Difference("changed", old.name, old.spec, new.spec))
    order = {"changed": 0, "removed": 1, "added": 2}
    return sorted(found, key=lambda d: (order[d.kind], d.name.lower()))


def probe_python(executable: str) -> Python | None:
    """The version of the interpreter `executable`, or None if it does not run."""
    from expyrun import _command
    from expyrun.errors import ToolError

    argv = [executable, "-c", "import sys; print(sys.version.split()[0])"]
    try:
        done = _command.run(argv, timeout=PROBE_TIMEOUT_SECONDS, check=False)
    except ToolError:
        return None
    version = done.stdout.strip()
    return Python(executable, version) if done.code == 0 and version else None


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def choose_python(recorded: dict[str, str], explicit: str | None) -> Python:
    """The interpreter to build the environment with: the run's own Python version.

    Tries `explicit` (`--python`), else the run's interpreter, this one, then `pythonX.Y` on
    PATH; takes the first of the exact version, else of the same minor version (with a
    warning). A different minor version is an error unless asked for with `--python`.
    """
    wanted = recorded.get("version", "")
    if explicit is not None:
        found = probe_python(shutil.which(explicit) or explicit)
        if found is None:
            raise ReproduceError("not a Python interpreter", path=explicit)
        if wanted and found.version != wanted:
            console.warning(f"the run used Python {wanted}; building with {found.version}")
        return found
    candidates = [recorded.get("executable"), sys.executable]
    candidates += [shutil.which(f"python{_minor(wanted)}"), shutil.which("python3")]
    seen: set[str] = set()
    close: Python | None = None
    for candidate in candidates:
        if not candidate or candidate in seen or not os.access(candidate, os.X_OK):
            continue
        seen.add(candidate)
        found = (
            Python(sys.executable, sys.version.split()[0])
            if candidate == sys.executable
            else probe_python(candidate)
        )
        if found is None:
            continue
        if not wanted or found.version == wanted:
            return found
        if close is None and _minor(found.version) == _minor(wanted):
            close = found
    if close is None:
        raise ReproduceError(
            f"the run used Python {wanted} and no Python {_minor(wanted)} was found",
            hint="choose an interpreter with --python PATH",
        )
    console.warning(f"the run used Python {wanted}; building with {close.version} ({close[0]})")
    return close


def venv_python(path: Path) -> Path:
    """The interpreter of the virtual environment at `path`."""
    return path / "bin" / "python"


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
    return Environment(path, Python(str(venv_python(path)), python.version))


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
    return Environment(path, Python(str(python), version or ""))


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
    _pip_sync(path, requirements_file, pip_options)
    _report_extras(path, requirements)
    console.info(f"environment ready in {time.monotonic() - started:.1f} s")


def _build(
    path: Path,
    key: str,
    requirements_file: Path,
    requirements: list[Requirement],
    python: Python,
    pip_options: Sequence[str],
    replace_stale: bool = False,
) -> None:
    """Build the environment in a temporary sibling folder, then rename it to `path`.

    `replace_stale`: `path` holds an environment that changed since it was built; it is
    replaced. Otherwise an environment found at `path` was built meanwhile by another expyrun,
    and is kept.
    """
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
        _call(
            [python.executable, "-m", "venv", "--prompt", path.name, str(temporary)],
            "python -m venv",
            VENV_TIMEOUT_SECONDS,
        )
        _pip_sync(temporary, requirements_file, pip_options)
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
        os.chmod(temporary, 0o777 & ~_umask())
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
    import re

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


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: set it straight back
    os.umask(mask)
    return mask


def _pip_sync(path: Path, requirements_file: Path, pip_options: Sequence[str]) -> None:
    argv = [sys.executable, "-m", "piptools", "sync", "--python-executable"]
    argv += [str(venv_python(path)), *pip_options, str(requirements_file)]
    _call(argv, "pip-sync", SYNC_TIMEOUT_SECONDS)


def _call(argv: list[str], what: str, timeout: float) -> None:
    """Run a pip-side command, relaying its output as progress; one-line error on failure.

    stderr is merged into stdout so lines keep their order. From pip's first `ERROR:` line
    (or a traceback) on, lines are held back: they become the error's one line, and the full
    output is kept in a file named by the error's hint.
    """
    from expyrun import _command

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PIP_NO_INPUT": "1"}
    console.detail("$ " + " ".join(argv))
    lines: list[str] = []
    failing = False

    def relay(line: str) -> None:
        nonlocal failing
        lines.append(line)
        text = line.rstrip()
        failing = failing or text.startswith(("ERROR:", "Traceback ", "error:"))
        if text and not failing:
            console.detail(text)

    code, timed_out = _command.stream(
        argv, relay, timeout=timeout, what=what, error=EnvironmentBuildError, env=env
    )
    if code == 0:
        return
    if timed_out:
        reason = f"stopped after {timeout:.0f} s without finishing"
    else:
        reason = _failure_reason(lines, code)
    raise EnvironmentBuildError(f"{what} failed: {reason}", hint=_save_log(lines, what))


def _failure_reason(lines: list[str], code: int) -> str:
    """One line saying why pip (or pip-sync, or venv) failed."""
    text = "".join(lines)
    if any(sign in text for sign in _NETWORK_SIGNS):
        return "cannot reach the package index (no network, or a proxy or index setting?)"
    errors = [line.strip()[len("ERROR:") :].strip() for line in lines if line.startswith("ERROR:")]
    errors = [error for error in errors if error]
    if errors:
        reason = errors[0]
    else:
        plain = [line.strip() for line in lines if line.strip() and not line.startswith(" ")]
        plain = [line for line in plain if not line.startswith("Traceback ")]
        reason = plain[-1] if plain else f"exit code {code}"
    if len(reason) > _MAX_REASON_CHARS:
        reason = reason[: _MAX_REASON_CHARS - 3] + "..."
    return reason


def _save_log(lines: list[str], what: str) -> str:
    """Keep the full output of a failed command in a temporary file; the hint naming it."""
    try:
        handle, name = tempfile.mkstemp(prefix=f"expyrun-{what.split()[0]}-", suffix=".log")
        with os.fdopen(handle, "w", encoding="utf-8") as log:
            log.writelines(lines)
    except OSError:
        return "its output could not be saved"
    return f"full output in {name}"
