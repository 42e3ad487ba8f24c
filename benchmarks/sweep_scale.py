"""Sweep expansion at scale: 10,000 members expanded and previewed (target: under 1 s).

    python benchmarks/sweep_scale.py [--members 10000] [--repeat 3]

Prints the median wall time of `expyrun CFG --sweep ... --print-config` (the whole command,
interpreter start included) for a grid of 100 x 100 members on a config like the example's
(a `__default__` chain, references, a run name built from the swept keys), its `--json`
twin, the expansion alone in-process (resolving and checking every member), and a plain
`--print-config` of one run as the baseline.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import EXPYRUN, clean_env, machine, make_project, median_times

CONFIG = """
model:
  name: linear
  width: 64
  layers: [64, 64]
training:
  lr: 0.05
  seed: 0
  epochs: 15
  batch: "{model.width}"
data:
  path: $HOME/data
  split: 0.9
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    arguments = parser.parse_args()
    side = math.isqrt(arguments.members)
    root = make_project("pass", CONFIG)
    config = root / "config.yml"
    text = config.read_text().replace(
        "__name__: bench", "__name__: lr{training.lr}-s{training.seed}"
    )
    config.write_text(text)
    sweep = ["--sweep", "training.lr", f"range(0, {side})", "--sweep", "training.seed"]
    sweep.append(f"range(0, {side})")
    commands = {
        "one run --print-config": dict(argv=[*EXPYRUN, "config.yml", "--print-config"], cwd=root),
        f"{side * side} members --print-config": dict(
            argv=[*EXPYRUN, "config.yml", *sweep, "--print-config"], cwd=root
        ),
        f"{side * side} members --print-config --json": dict(
            argv=[*EXPYRUN, "config.yml", *sweep, "--print-config", "--json"], cwd=root
        ),
    }
    for spec in commands.values():  # warm the caches
        subprocess.run(spec["argv"], cwd=root, env=clean_env(), capture_output=True, check=True)
    medians = median_times(commands, arguments.repeat)
    print(f"sweep expansion, median of {arguments.repeat} ({machine()})")
    for name, seconds in medians.items():
        print(f"  {name:40s} {seconds * 1000:8.1f} ms")
    print(f"  expansion alone, in-process: {_expand_alone(root, sweep) * 1000:8.1f} ms")
    shutil.rmtree(root, ignore_errors=True)


def _expand_alone(root: Path, sweep: list[str]) -> float:
    from expyrun.launch.options import LaunchOptions
    from expyrun.sweep.expand import expand
    from expyrun.sweep.options import SweepOptions

    pairs = tuple(zip(sweep[1::3], sweep[2::3], strict=True))
    start = time.perf_counter()
    expand(LaunchOptions(str(root / "config.yml")), SweepOptions(dimensions=pairs), root)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
