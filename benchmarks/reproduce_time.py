"""Reproduce time: a cold `expyrun reproduce` (environment built) and a cached one (reused).

    python benchmarks/reproduce_time.py [--repeat 3] [--packages 3]

Offline: tiny wheels are built here and served from a local folder (`--find-links DIR
--no-index`). A run is launched from a "user" environment holding them, then reproduced into
a fresh cache (cold: python -m venv, ensurepip, pip-sync) and again (cached: the environment
is listed and reused). Baselines measured in the same run: `python -m venv` alone, and the
plain launch of the same run from its user environment. Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from _common import EXPYRUN, clean_env, machine
from support import make_user_env, make_wheel


def _timed(argv: list[str], cwd: Path, env: dict[str, str], expect: str = "") -> tuple[float, str]:
    """Wall time of `argv` and its stderr; exits if it fails or `expect` is not in stderr."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or expect not in done.stderr:
        raise SystemExit(f"{' '.join(argv)} failed or did not say {expect!r}:\n{done.stderr}")
    return elapsed, done.stderr


def _project(root: Path, packages: list[str]) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    imports = "".join(f"    import {name}\n" for name in packages)
    (root / "pkg" / "entry.py").write_text(f"def main(name, config):\n{imports}    pass\n")
    (root / "config.yml").write_text(
        "__run__:\n  __main__: pkg.entry:main\n"
        f"  __output_dir__: {root / 'outputs'}\n  __name__: bench\n"
    )
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--packages", type=int, default=3)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="expyrun-bench-reproduce-"))
    try:
        wheels = root / "wheels"
        names = [f"benchpkg{i}" for i in range(args.packages)]
        for name in names:
            make_wheel(wheels, name, "1.0", {f"{name}/__init__.py": "VALUE = 1\n"})
        python = make_user_env(root / "user-env", wheels, [f"{n}==1.0" for n in names])
        project = _project(root / "project", names)
        env = clean_env({"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
        env = {k: v for k, v in env.items() if not k.startswith("PIP_FIND")}
        launch = [str(python), "-m", "expyrun", "config.yml"]
        _, stderr = _timed(launch, project, env)
        run_dir = next(line for line in stderr.splitlines() if "run folder:" in line).split(": ")[
            -1
        ]
        reproduce = [*EXPYRUN, "reproduce", run_dir, "--find-links", str(wheels), "--no-index"]

        samples: dict[str, list[float]] = {k: [] for k in ("venv", "launch", "cold", "cached")}
        for i in range(args.repeat):
            cache = root / f"cache{i}"
            run_env = {**env, "XDG_CACHE_HOME": str(cache)}
            venv_argv = [sys.executable, "-m", "venv", str(root / f"venv{i}")]
            samples["venv"].append(_timed(venv_argv, root, env)[0])
            samples["launch"].append(_timed(launch, project, env)[0])
            cold = _timed(reproduce, project, run_env, "building the environment")[0]
            samples["cold"].append(cold)
            for _ in range(3):
                cached = _timed(reproduce, project, run_env, "reusing the environment")[0]
                samples["cached"].append(cached)
        medians = {k: statistics.median(v) for k, v in samples.items()}
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"reproduce time, {args.packages} tiny wheels, medians ({machine()})")
    print(f"  python -m venv (with pip)      {medians['venv']:7.2f} s   baseline")
    cold_ratio = medians["cold"] / medians["venv"]
    print(f"  reproduce, cold (build + run)  {medians['cold']:7.2f} s   {cold_ratio:5.2f}x venv")
    print(f"  launch from the user env       {medians['launch']:7.2f} s   baseline")
    cached_ratio = medians["cached"] / medians["launch"]
    print(
        f"  reproduce, cached (reuse+run)  {medians['cached']:7.2f} s   {cached_ratio:5.2f}x launch"
    )


if __name__ == "__main__":
    main()
