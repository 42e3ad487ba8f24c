"""Write frozen_requirements.txt: the worker interpreter's installed distributions.

Read straight from the `*.dist-info` / `*.egg-info` folders on sys.path, in one process: a few
milliseconds, where `pip freeze` takes hundreds and may belong to another environment (the
first `pip` on PATH). Standard library only, so it also runs as a script in another
interpreter: `python freeze.py` prints the lines for that interpreter.

Lines are what `pip-sync` accepts: `name==version`, or a direct reference (`name @ url`,
`-e path`) for distributions installed from a VCS, a local folder or an archive (PEP 610
`direct_url.json`). pip, setuptools and wheel are left out, as `pip freeze` does.
"""

from __future__ import annotations

import os
import re
import sys

FROZEN_REQUIREMENTS_FILE = "frozen_requirements.txt"
_EXCLUDED = {"pip", "setuptools", "wheel", "distribute"}
_EGG_INFO = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-py\d.*)?\.egg-info$")


def normalize(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


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


def _direct_reference(dist_info: str, name: str, version: str) -> str | None:
    """The pip-sync line for a distribution installed by URL (PEP 610), else None."""
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
        return line + (f"#subdirectory={subdirectory}" if subdirectory else "")
    if data.get("dir_info", {}).get("editable"):
        return f"-e {url}"
    if "dir_info" in data or "archive_info" in data:
        return f"{name} @ {url}"
    return None


def installed_distributions(paths: list[str] | None = None) -> list[tuple[str, str, str]]:
    """(name, version, requirement line) of each distribution, first on sys.path wins."""
    seen: set[str] = set()
    found = []
    for entry in sys.path if paths is None else paths:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for folder in sorted(names):
            path = os.path.join(entry or ".", folder)
            if folder.endswith(".dist-info"):
                headers = _headers(os.path.join(path, "METADATA"))
            elif folder.endswith(".egg-info"):
                meta = os.path.join(path, "PKG-INFO") if os.path.isdir(path) else path
                headers = _headers(meta)
                match = _EGG_INFO.match(folder)
                if match and not headers:
                    headers = {"Name": match["name"], "Version": match["version"]}
            else:
                continue
            name, version = headers.get("Name"), headers.get("Version")
            if not name or not version or normalize(name) in seen:
                continue
            seen.add(normalize(name))
            line = _direct_reference(path, name, version) or f"{name}=={version}"
            found.append((name, version, line))
    return found


def frozen_requirements(paths: list[str] | None = None, own_code: set[str] | None = None) -> str:
    """The text of frozen_requirements.txt.

    Args:
        own_code: normalized names of distributions that are the run's own code (copied into
            the run folder): written as comments, so a sync does not reinstall them.
    """
    own = own_code or set()
    lines = []
    for name, version, line in sorted(installed_distributions(paths), key=lambda d: d[0].lower()):
        key = normalize(name)
        if key in _EXCLUDED:
            continue
        if key in own:
            lines.append(f"# {name}=={version}  (the run's own code, copied into the run folder)")
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(frozen_requirements(sys.path[1:]))
