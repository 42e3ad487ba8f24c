"""Write frozen_requirements.txt: the worker interpreter's installed distributions.

Read straight from the `*.dist-info` / `*.egg-info` folders on sys.path, in one process: a few
milliseconds, where `pip freeze` takes hundreds and may belong to another environment (the
first `pip` on PATH). Standard library only, so it also runs as a script in another
interpreter: `python freeze.py [--own-code-dir DIR ...]` prints the lines for that interpreter
(`frozen_requirements_of` does this for a reproduced run's environment).

Lines are what `pip-sync` accepts as they are: `name==version`, or a direct reference
(`name @ url`, `-e url`) for distributions installed from a VCS, a local folder or an archive
(PEP 610 `direct_url.json`). pip, setuptools and wheel are left out, as `pip freeze` does.
The run's own code (a distribution installed from the code folder or a folder holding it, and
expyrun itself when installed from its source tree) is written as a comment: the run imports
its copy from the run folder, and a sync must not try to install a working tree.
"""

from __future__ import annotations

import os
import re
import sys
from typing import NamedTuple

FROZEN_REQUIREMENTS_FILE = "frozen_requirements.txt"
_EXCLUDED = {"pip", "setuptools", "wheel", "distribute"}
_EGG_INFO = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-py\d.*)?\.egg-info$")
# The comment that marks the run's own code; `parse_requirements` reads it back.
OWN_CODE_MARK = "(own code from "
_OWN_CODE_LINE = re.compile(
    r"^#\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)\s+\(own code"
)
_PYTHON_LINE = re.compile(r"^#\s*python (?P<version>\S+)")
_SITE_FOLDERS = ("site-packages", "dist-packages")
FREEZE_TIMEOUT_SECONDS = 60


def normalize(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


class Distribution(NamedTuple):
    """An installed distribution and the requirement line that reinstalls it."""

    name: str
    version: str
    line: str
    local_path: str | None  # the folder it was installed from (editable or not), if any


def _headers(path: str) -> dict[str, str]:
    """The Name and Version headers of a METADATA/PKG-INFO file (read up to the first blank)."""
    found: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                if key in ("Name", "Version") and key not in found:
                    found[key] = value.strip()
                    if len(found) == 2:
                        break
    except OSError:
        pass
    return found


def file_url_path(url: str) -> str | None:
    """The local path of a file:// URL, else None."""
    if not url.startswith("file:"):
        return None
    from urllib.parse import unquote, urlsplit

    return unquote(urlsplit(url).path) or None


def _direct_reference(dist_info: str, name: str, version: str) -> tuple[str, str | None] | None:
    """The pip-sync line for a distribution installed by URL (PEP 610) and its local folder."""
    path = os.path.join(dist_info, "direct_url.json")
    if not os.path.exists(path):
        return None
    import json

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    url = data.get("url", "")
    if "vcs_info" in data:
        vcs = data["vcs_info"]
        ref = vcs.get("commit_id") or vcs.get("requested_revision")
        subdirectory = data.get("subdirectory")
        line = f"{name} @ {vcs.get('vcs', 'git')}+{url}" + (f"@{ref}" if ref else "")
        return line + (f"#subdirectory={subdirectory}" if subdirectory else ""), None
    if "dir_info" in data:
        local = file_url_path(url)
        if data["dir_info"].get("editable"):
            # `-e` lines carry no name: the comment keeps it for `expyrun reproduce --check`.
            return f"-e {url}  # {name}=={version}", local
        return f"{name} @ {url}", local
    if "archive_info" in data:
        info = data["archive_info"]
        hashes = info.get("hashes") or {}
        if "sha256" in hashes and "#" not in url:
            url += f"#sha256={hashes['sha256']}"  # pip then checks the archive is the same
        elif info.get("hash") and "#" not in url:
            url += "#" + info["hash"]  # the legacy form, already `algorithm=digest`
        return f"{name} @ {url}", None
    return None


def installed_distributions(paths: list[str] | None = None) -> list[Distribution]:
    """Each distribution on `paths` (default sys.path); the first on the path wins."""
    seen: set[str] = set()
    found = []
    for entry in sys.path if paths is None else paths:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for folder in sorted(names):
            path = os.path.join(entry or ".", folder)
            develop = None
            if folder.endswith(".dist-info"):
                headers = _headers(os.path.join(path, "METADATA"))
            elif folder.endswith(".egg-info"):
                meta = os.path.join(path, "PKG-INFO") if os.path.isdir(path) else path
                headers = _headers(meta)
                match = _EGG_INFO.match(folder)
                if match and not headers:
                    headers = {"Name": match["name"], "Version": match["version"]}
                if os.path.isdir(path) and os.path.basename(entry) not in _SITE_FOLDERS:
                    develop = os.path.abspath(entry or ".")  # `setup.py develop`: the source
            else:
                continue
            name, version = headers.get("Name"), headers.get("Version")
            if not name or not version or normalize(name) in seen:
                continue
            seen.add(normalize(name))
            reference = _direct_reference(path, name, version)
            if reference is not None:
                line, local = reference
            elif develop is not None:
                line, local = f"-e file://{develop}  # {name}=={version}", develop
            else:
                line, local = f"{name}=={version}", None
            found.append(Distribution(name, version, line, local))
    return found


def _is_own_code(local_path: str | None, own_code_dirs: list[str]) -> bool:
    """Installed from one of `own_code_dirs` or from a folder holding one (a src layout)."""
    if local_path is None:
        return False
    source = os.path.realpath(local_path)
    for own in own_code_dirs:
        own = os.path.realpath(own)
        if own == source or own.startswith(source.rstrip(os.sep) + os.sep):
            return True
    return False


def frozen_requirements(
    paths: list[str] | None = None,
    own_code: set[str] | None = None,
    own_code_dirs: list[str] | None = None,
) -> str:
    """The text of frozen_requirements.txt.

    Args:
        own_code: normalized names of distributions that are the run's own code.
        own_code_dirs: folders of the run's own code (the code folder, expyrun's package):
            a distribution installed from one of them, or from a folder holding one, is own
            code too. Own code is written as a comment, so a sync does not reinstall it.
    """
    own = own_code or set()
    dirs = own_code_dirs or []
    lines = [f"# python {sys.version.split()[0]}"]
    for dist in sorted(installed_distributions(paths), key=lambda d: d.name.lower()):
        key = normalize(dist.name)
        if key in _EXCLUDED:
            continue
        if key in own or _is_own_code(dist.local_path, dirs):
            where = dist.local_path or "the code folder"
            lines.append(f"# {dist.name}=={dist.version}  {OWN_CODE_MARK}{where}, not synced)")
        else:
            lines.append(dist.line)
    return "\n".join(lines) + "\n"


def frozen_requirements_of(
    python: str, own_code_dirs: list[str] | None = None, own_code: set[str] | None = None
) -> str:
    """The text of frozen_requirements.txt for another interpreter (this file as a script).

    Raises OSError when the interpreter cannot run it.
    """
    from expyrun import _command
    from expyrun.errors import ToolError

    argv = [python, os.path.abspath(__file__)]
    for folder in own_code_dirs or []:
        argv += ["--own-code-dir", folder]
    for name in sorted(own_code or ()):
        argv += ["--own-code", name]
    try:
        done = _command.run(argv, timeout=FREEZE_TIMEOUT_SECONDS, check=False)
    except ToolError as exc:
        raise OSError(f"{python} cannot list its distributions: {exc}") from exc
    if done.code != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.code}"])[-1]
        raise OSError(f"{python} cannot list its distributions: {last}")
    return done.stdout


class Requirement(NamedTuple):
    """One line of a frozen requirements file, as `--check` and the env cache compare it."""

    key: str  # normalized name (or the URL of a nameless `-e` line)
    name: str
    spec: str  # the version, or `@ url` / `-e url` for a direct reference
    line: str
    own_code: bool


def parse_requirements(text: str) -> tuple[list[Requirement], str | None]:
    """The requirements of a frozen file, and the Python version its header names.

    Understands the lines this module writes (and plain `pip freeze` output); other lines
    (options, includes) are kept with their text as key so they are compared as they are.
    """
    found: list[Requirement] = []
    python = None
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            own = _OWN_CODE_LINE.match(stripped)
            header = _PYTHON_LINE.match(stripped)
            if own:
                name = own["name"]
                found.append(Requirement(normalize(name), name, own["version"], stripped, True))
            elif header and python is None:
                python = header["version"]
            continue
        found.append(_parse_line(stripped))
    return found, python


def _parse_line(line: str) -> Requirement:
    requirement, _, comment = line.partition(" #")
    requirement = requirement.strip()
    if requirement.startswith(("-e ", "--editable ")):
        url = requirement.split(None, 1)[1].strip()
        named = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", comment)
        name = named.group(1) if named else url
        return Requirement(normalize(name), name, f"-e {url}", line, False)
    if " @ " in requirement:
        name, _, url = requirement.partition(" @ ")
        return Requirement(normalize(name.strip()), name.strip(), f"@ {url.strip()}", line, False)
    name, equals, version = requirement.partition("==")
    if equals:
        name = name.split("[")[0].strip()
        return Requirement(normalize(name), name, version.strip(), line, False)
    return Requirement(requirement, requirement, "", line, False)


def _main(argv: list[str]) -> None:
    """`python freeze.py [--own-code-dir DIR ...] [--own-code NAME ...]`"""
    values: dict[str, list[str]] = {"--own-code-dir": [], "--own-code": []}
    for i in range(0, len(argv) - 1, 2):  # no zip(strict=): this runs on old Pythons too
        values[argv[i]].append(argv[i + 1])
    own = {normalize(name) for name in values["--own-code"]}
    text = frozen_requirements(sys.path[1:], own_code=own, own_code_dirs=values["--own-code-dir"])
    sys.stdout.write(text)


if __name__ == "__main__":
    _main(sys.argv[1:])
