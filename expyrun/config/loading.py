"""Load a config file and its `__default__` chain, merged, with the origin of every key.

`__default__` is a path or a list of paths, merged in order (later wins), then the file itself
is merged on top under its `__new_key_policy__`. A file reached twice (diamond inheritance) is
read once; a file reached again while loading its own defaults is a cycle, an error naming the
chain. `__default__` paths follow one rule, decided on the string as written: `~` is expanded; an
absolute path is used as is; a path starting with `./` or `../` is relative to the directory of
the file that names it; any other path is relative to the launch directory. A chain holds at
most `MAX_CHAIN` files, the file itself included (each level is a few stack frames: 400 files
ended in RecursionError).
"""

import os
from pathlib import Path
from typing import NamedTuple

from expyrun.config.keys import ConfigMapping
from expyrun.config.merging import (
    DEFAULT_POLICY,
    PASS,
    POLICY_KEY,
    check_policy,
    merge,
    merge_origins,
)
from expyrun.config.parsing import error_at, parse_file
from expyrun.config.report import Origin, Origins, Report, display_path
from expyrun.config.run_section import RUN_KEY

DEFAULT_KEY = "__default__"
MAX_CHAIN = 64  # configs written by hand chain 2 to 5 files


class Loaded(NamedTuple):
    """A config file merged with its defaults, and where each of its keys was set."""

    value: ConfigMapping
    origins: Origins
    path: str  # the file, as displayed in messages


def default_path(spec: str, including_file: Path, cwd: Path) -> Path:
    """Where a `__default__` entry points (see the module docstring for the rule)."""
    expanded = os.path.expanduser(spec)
    if os.path.isabs(expanded):
        return Path(expanded)
    if spec.startswith(("./", "../")) or spec in (".", ".."):
        return including_file.parent / expanded
    return cwd / expanded


class _Default(NamedTuple):
    """One entry of a `__default__`: as written, where it points, where it is written."""

    spec: str
    path: Path
    origin: Origin
    including: Path


class _Chain:
    """Load a file and its `__default__` chain, each file once, refusing cycles."""

    def __init__(self, cwd: Path, report: Report) -> None:
        self.cwd = cwd
        self.report = report
        self.done: dict[Path, Loaded] = {}  # diamond inheritance: a shared default loads once
        self.stack: list[tuple[Path, str]] = []

    def load(self, file: Path, display: str) -> Loaded:
        real = file.resolve()
        if real in self.done:
            return self.done[real]
        own, origins, unquoted = parse_file(file, display)
        for mistake in unquoted:
            if mistake.path[:1] == (RUN_KEY,):  # a run name or path: never a mapping
                raise error_at(mistake.message(), mistake.origin, mistake.path)
            self.report.warn(mistake.message(), mistake.origin, mistake.path)
        defaults = self.defaults(own, origins, file, display)
        policy = DEFAULT_POLICY
        if POLICY_KEY in own:
            policy = check_policy(own.pop(POLICY_KEY), origins.get((POLICY_KEY,)))
        if not defaults:
            loaded = Loaded(own, origins, display)
        else:
            self.stack.append((real, display))
            try:
                base = self.merged_defaults(defaults)
            finally:
                self.stack.pop()
            value = merge(base.value, own, policy=policy, top_origins=origins, report=self.report)
            loaded = Loaded(value, merge_origins(base.origins, origins), display)
        self.done[real] = loaded
        return loaded

    def merged_defaults(self, defaults: list[_Default]) -> Loaded:
        result: Loaded | None = None
        for default in defaults:
            loaded = self.load_default(default)
            if result is None:
                result = loaded
            else:
                value = merge(
                    result.value,
                    loaded.value,
                    policy=PASS,
                    top_origins=loaded.origins,
                    report=self.report,
                )
                result = Loaded(value, merge_origins(result.origins, loaded.origins), result.path)
        assert result is not None  # noqa: S101 - called with at least one default
        return result

    def load_default(self, default: _Default) -> Loaded:
        path, origin = default.path, default.origin
        real = path.resolve()
        display = display_path(Path(os.path.normpath(path)), self.cwd)
        chain = [shown for file, shown in self.stack]
        for index, (file, _) in enumerate(self.stack):
            if file == real:
                cycle = " -> ".join([*chain[index:], display])
                raise error_at(f"__default__ cycle: {cycle}", origin, DEFAULT_KEY)
        if len(self.stack) >= MAX_CHAIN:
            raise error_at(
                f"a __default__ chain of more than {MAX_CHAIN} files",
                origin,
                DEFAULT_KEY,
                f"{chain[0]} -> {chain[1]} -> ... -> {chain[-1]} -> {display}",
            )
        if not path.is_file():
            what = "no such file"
            if path.is_dir():
                what = "is a directory, not a config file"
            elif path.exists():
                what = "not a regular file"
            hint = _path_hint(default, self.cwd)
            raise error_at(f"default config {display}: {what}", origin, DEFAULT_KEY, hint)
        return self.load(path, display)

    def defaults(
        self, own: ConfigMapping, origins: Origins, file: Path, display: str
    ) -> list[_Default]:
        if DEFAULT_KEY not in own:
            return []
        value = own.pop(DEFAULT_KEY)
        origin = origins.get((DEFAULT_KEY,), Origin(display))
        if value is None:
            return []
        entries = value if isinstance(value, list) else [value]
        result = []
        for index, entry in enumerate(entries):
            entry_origin = (
                origins.get((DEFAULT_KEY, index), origin) if isinstance(value, list) else origin
            )
            if not isinstance(entry, str) or not entry:
                raise error_at(
                    f"expected a file path (a string or a list of strings), got {entry!r}",
                    entry_origin,
                    DEFAULT_KEY,
                )
            path = default_path(entry, file, self.cwd)
            result.append(_Default(entry, path, entry_origin, file))
        return result


def _path_hint(default: _Default, cwd: Path) -> str | None:
    """Point at the path rule when the file exists under the other reading of the path."""
    spec = default.spec
    if spec.startswith(("./", "../")) and (cwd / spec).is_file():
        return "paths starting with ./ or ../ are relative to the file naming them"
    local = default.including.parent / spec
    if not os.path.isabs(os.path.expanduser(spec)) and local.is_file():
        return f"other paths are relative to the launch directory: write ./{spec}"
    return None


def load_config(path: str | Path, cwd: Path, report: Report) -> Loaded:
    """Load the config file `path` (relative paths from `cwd`) merged with its defaults."""
    file = cwd / Path(os.path.expanduser(path))
    display = display_path(Path(os.path.normpath(file)), cwd)
    return _Chain(cwd, report).load(file, display)
