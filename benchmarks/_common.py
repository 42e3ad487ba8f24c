"""Shared helpers for the benchmarks: timing commands and making throwaway projects.

Benchmarks print figures, never assert on them. Every figure is a ratio against a baseline
measured in the same run, because the machines they run on are shared and noisy.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path

EXPYRUN = [sys.executable, "-m", "expyrun"]


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without PYTHON* variables (PYTHONUNBUFFERED would slow the baseline)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "EXPYRUN_"))}
    env.update(extra or {})
    return env


def time_command(
    argv: Sequence[str],
    cwd: Path,
    stdout: int | str = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
) -> float:
    """Wall time of one run of `argv`, in seconds; fails if the command fails."""
    out = open(stdout, "wb") if isinstance(stdout, str) else stdout  # noqa: SIM115
    try:
        start = time.perf_counter()
        done = subprocess.run(
            list(argv), cwd=cwd, stdout=out, stderr=subprocess.PIPE, env=env or clean_env()
        )
        elapsed = time.perf_counter() - start
    finally:
        if isinstance(stdout, str):
            out.close()  # type: ignore[union-attr]
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr.decode(errors='replace')}")
    return elapsed


def median_times(
    commands: dict[str, dict], repeat: int, before: Callable[[], None] | None = None
) -> dict[str, float]:
    """Run each command `repeat` times, interleaved (noise hits all alike); medians in s.

    `before` runs, untimed, before each command (to clean up and settle the machine).
    """
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, spec in commands.items():
            if before is not None:
                before()
            samples[name].append(time_command(**spec))
    return {name: statistics.median(values) for name, values in samples.items()}


def make_project(entry_body: str, config_extra: str = "", root: Path | None = None) -> Path:
    """A temporary project with `pkg/entry.py:main` and `config.yml`; returns its folder."""
    root = root or Path(tempfile.mkdtemp(prefix="expyrun-bench-"))
    (root / "pkg").mkdir(parents=True, exist_ok=True)
    (root / "pkg" / "__init__.py").write_text("")
    code = "import os, sys\n\n\ndef main(name, config):\n"
    code += textwrap.indent(textwrap.dedent(entry_body).strip() or "pass", "    ") + "\n"
    (root / "pkg" / "entry.py").write_text(code)
    (root / "config.yml").write_text(
        "__run__:\n"
        "  __main__: pkg.entry:main\n"
        f"  __output_dir__: {root / 'outputs'}\n"
        "  __name__: bench\n" + textwrap.dedent(config_extra)
    )
    return root


def machine() -> str:
    return f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {sys.executable}"
