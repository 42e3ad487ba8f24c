"""Sweep overhead: 100 no-op members with --parallel 2 against 100 no-op launches / 2.

    python benchmarks/sweep_overhead.py [--members 100] [--repeat 10]

The baseline is the median wall time of one no-op launch (`expyrun config.yml`, measured
`--repeat` times) times the member count, divided by 2: what two terminals launching one run
after another would take if two launches ran side by side as fast as one. The sweep is
`expyrun config.yml --sweep seed range(0, N) --parallel 2` (target: within 1.3x of the
baseline: the per-member cost is a launch, no more). Also measured: two such streams of
launches really running at once (a launch keeps more than one CPU busy: on 2 CPUs, two cannot
run as fast as one), and with `--sequential` the sequential sweep against N launches.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import EXPYRUN, clean_env, machine, make_project, median_times, time_command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=10, help="launches per round")
    parser.add_argument("--rounds", type=int, default=3, help="baseline + sweep, interleaved")
    parser.add_argument("--sequential", action="store_true", help="also time --parallel 1")
    arguments = parser.parse_args()
    count = arguments.members
    root = make_project("pass", "seed: 0\n")
    config = root / "config.yml"
    config.write_text(config.read_text().replace("__name__: bench", "__name__: s{seed}"))

    def clean() -> None:
        shutil.rmtree(root / "outputs", ignore_errors=True)

    sweep = [*EXPYRUN, "config.yml", "--sweep", "seed", f"range(0, {count})"]
    print(f"sweep overhead, {count} no-op members ({machine()})")
    ratios, measured = [], []
    # Rounds interleave the baseline and the sweep: a shared machine's load hits both alike.
    for round_number in range(1, arguments.rounds + 1):
        launch = dict(argv=[*EXPYRUN, "config.yml"], cwd=root)
        one = median_times({"launch": launch}, arguments.repeat, clean)["launch"]
        clean()
        parallel = time_command([*sweep, "--parallel", "2"], root)
        baseline = one * count / 2
        ratios.append(parallel / baseline)
        print(
            f"  round {round_number}: one launch {one * 1000:6.1f} ms (median of "
            f"{arguments.repeat}); {count} launches / 2 = {baseline:5.2f} s; sweep --parallel 2 "
            f"{parallel:5.2f} s: {parallel / baseline:4.2f}x"
        )
        clean()
        two = _two_streams(root, count)
        measured.append(parallel / two)
        print(
            f"           two terminals launching {count // 2} runs each at once: {two:5.2f} s; "
            f"the sweep takes {parallel / two:4.2f}x of that"
        )
        if arguments.sequential:
            clean()
            sequential = time_command(sweep, root)
            ratio = sequential / (one * count)
            print(f"           sequential sweep {sequential:5.2f} s: {ratio:4.2f}x of the launches")
    print(f"  median ratio: {statistics.median(ratios):4.2f}x (target: within 1.3x)")
    print(f"  median ratio to two real streams of launches: {statistics.median(measured):4.2f}x")
    shutil.rmtree(root, ignore_errors=True)


def _two_streams(root: Path, count: int) -> float:
    """Wall time of two streams of `count // 2` no-op launches each, run at the same time:
    what launching one run after another in two terminals takes on this machine (a launch
    keeps more than one CPU busy: the worker starts while the supervisor prepares)."""
    loop = (
        "import subprocess, sys\n"
        f"for _ in range({count // 2}):\n"
        f"    subprocess.run({[*EXPYRUN, 'config.yml']!r}, check=True, "
        "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    )
    start = time.perf_counter()
    streams = [
        subprocess.Popen([sys.executable, "-c", loop], cwd=root, env=clean_env()) for _ in range(2)
    ]
    if any(stream.wait() for stream in streams):
        raise SystemExit("a launch failed")
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
