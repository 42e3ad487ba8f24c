"""`expyrun ls` over 10,000 run folders, against `find` listing the same run.json files.

    python benchmarks/ls_scale.py [--runs 10000] [--repeat 5]

Makes a realistic output tree (names nested two levels, each run folder with its run.json,
configs, a code copy and a log), then times `expyrun ls`, `expyrun ls --json` and
`expyrun ls --status failed` against `find ROOT -name run.json` (which only lists the files:
expyrun also reads and parses each one). Prints medians and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import EXPYRUN, machine, median_times


def make_tree(root: Path, runs: int) -> None:
    template = {
        "status": "succeeded",
        "run_dir": "",
        "name": "",
        "entry": "my_code.experiments.train:main",
        "debug": False,
        "command": ["expyrun", "configs/train.yml", "--training.lr", "0.1"],
        "cwd": "/home/user/project",
        "host": "node01",
        "user": "user",
        "python": {"executable": "/usr/bin/python3", "version": "3.11.7"},
        "expyrun_version": "0.3.0",
        "pid": 1234,
        "pid_started_at": 1700000000.0,
        "child_pid": 1235,
        "started_at": "",
        "ended_at": "",
        "duration_s": 3600.5,
        "exit_code": 0,
        "signal": None,
        "peak_rss_bytes": 2_000_000_000,
        "cpu_user_s": 3500.1,
        "cpu_system_s": 12.3,
        "git": {"commit": "0" * 40, "branch": "main", "dirty": False, "untracked_files": 0},
        "slurm": None,
    }
    for i in range(runs):
        name = f"sweep{i % 10}/lr{i % 100}"
        run_dir = root / name / f"exp.{i // 100}"
        (run_dir / "my_code").mkdir(parents=True)
        record = dict(
            template,
            run_dir=str(run_dir),
            name=name,
            started_at=f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:{i % 60:02d}+00:00",
            ended_at="2026-01-01T11:00:00+00:00",
            status="failed" if i % 17 == 0 else "succeeded",
            exit_code=1 if i % 17 == 0 else 0,
        )
        (run_dir / "run.json").write_text(json.dumps(record, indent=2))
        for file in ("config.yml", "raw_config.yml", "outputs.log", "frozen_requirements.txt"):
            (run_dir / file).write_text("x\n")
        (run_dir / "my_code" / "__init__.py").write_text("")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="expyrun-ls-"))
    try:
        make_tree(root, args.runs)
        commands = {
            "find -name run.json": dict(argv=["find", str(root), "-name", "run.json"], cwd=root),
            "expyrun ls": dict(argv=[*EXPYRUN, "ls", str(root)], cwd=root),
            "expyrun ls --json": dict(argv=[*EXPYRUN, "ls", str(root), "--json"], cwd=root),
            "expyrun ls --status failed": dict(
                argv=[*EXPYRUN, "ls", str(root), "--status", "failed"], cwd=root
            ),
        }
        medians = median_times(commands, args.repeat)
        base = medians["find -name run.json"]
        print(f"ls over {args.runs} run folders, median of {args.repeat} ({machine()})")
        for name, seconds in medians.items():
            print(f"  {name:28s} {seconds * 1000:8.1f} ms  {seconds / base:5.2f}x find")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
