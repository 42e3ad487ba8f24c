"""Helpers for the config engine's tests: write configs under tmp_path and resolve them."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

from expyrun.config import Resolved, resolve

RUN = "__run__:\n  __main__: pkg.mod:main\n  __output_dir__: out\n  __name__: exp\n"


def write(root: Path, name: str, text: str) -> Path:
    """Write `text` (dedented) to `root/name`, creating folders; return the path."""
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def resolve_text(
    root: Path,
    text: str,
    overrides: Sequence[str] = (),
    *,
    environ: Mapping[str, str] | None = None,
    strict: bool = False,
    run: bool = True,
) -> Resolved:
    """Resolve a config.yml holding `text` (and a valid `__run__` unless `run` is False)."""
    content = (RUN if run else "") + textwrap.dedent(text)
    path = write(root, "config.yml", content)
    return resolve(
        path, overrides, cwd=root, environ={} if environ is None else environ, strict=strict
    )


def warning_texts(resolved: Resolved) -> list[str]:
    """The warnings as the CLI prints them (without its prefix)."""
    return [str(warning) for warning in resolved.warnings]
