"""`expyrun ls` over 10,000 run folders: plain, with config columns and a filter, and JSON.

    python benchmarks/ls_scale.py [--runs 10000] [--repeat 5]

Makes a realistic output tree (names nested two levels, each run folder with its run.json
holding a `result`, config.yml and config.json as a launch writes them, a code copy and a
log), then times, against `find ROOT -name run.json` (which only lists the files):
`expyrun ls`, `ls --keys training.lr,model.name,result.acc --where 'training.lr<0.05 and
status=succeeded'` (the target: within 3x of plain `ls`), `ls --json` (which carries every
config), `ls --status failed`, and the same --keys/--where on a copy of the tree without
config.json (runs made before it: config.yml read with the C YAML loader). Prints medians
and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import yaml
from _common import EXPYRUN, machine, median_times

DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


CONFIG = {
    "__run__": {
        "__main__": "my_code.experiments.train:main",
        "__name__": "",
        "__output_dir__": "/home/user/project/outputs",
        "__code__": "",
    },
    "seed": 666,
    "model": {"name": "resnet", "depth": 50, "width": 64, "dropout": 0.1, "layers": [64, 128]},
    "training": {
        "seed": 666,
        "lr": 0.05,
        "epochs": 15,
        "batch_size": 128,
        "optimizer": {"name": "sgd", "momentum": 0.9, "weight_decay": 0.0001},
        "scheduler": {"name": "cosine", "warmup": 5},
    },
    "data": {
        "n_samples": 400,
        "noise": 0.1,
        "cache": "/home/user/project/.cache",
        "augment": {"flip": True, "crop": 32, "mean": [0.5, 0.5, 0.5]},
    },
    "logging": {"every": 100, "wandb": False, "project": "demo"},
}
KEYS = ["--keys", "training.lr,model.name,result.acc"]
WHERE = ["--where", "training.lr<0.05 and status=succeeded"]


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
        record["result"] = {"acc": round(0.5 + (i % 50) / 100, 2), "loss": 0.1}
        (run_dir / "run.json").write_text(json.dumps(record, indent=2))
        config = json.loads(json.dumps(CONFIG))
        config["__run__"].update(__name__=name, __code__=str(run_dir))
        config["training"]["lr"] = [0.1, 0.05, 0.01, 0.001][i % 4]
        config["model"]["name"] = ["resnet", "vit"][i % 2]
        (run_dir / "config.yml").write_text(yaml.dump(config, Dumper=DUMPER, sort_keys=True))
        (run_dir / "config.json").write_text(json.dumps(config, separators=(",", ":")))
        for file in ("raw_config.yml", "outputs.log", "frozen_requirements.txt"):
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
        old = Path(tempfile.mkdtemp(prefix="expyrun-ls-old-"))
        shutil.copytree(root, old / "tree", symlinks=True)
        for path in (old / "tree").rglob("config.json"):
            path.unlink()

        def ls(*args: str, tree: Path = root) -> dict:
            return dict(argv=[*EXPYRUN, "ls", str(tree), *args], cwd=root)

        commands = {
            "find -name run.json": dict(argv=["find", str(root), "-name", "run.json"], cwd=root),
            "expyrun ls": ls(),
            "ls --keys --where": ls(*KEYS, *WHERE),
            "ls --json": ls("--json"),
            "ls --status failed": ls("--status", "failed"),
            "ls --keys --where, YAML": ls(*KEYS, *WHERE, tree=old / "tree"),
        }
        medians = median_times(commands, args.repeat)
        base = medians["find -name run.json"]
        plain = medians["expyrun ls"]
        print(f"ls over {args.runs} run folders, median of {args.repeat} ({machine()})")
        for name, seconds in medians.items():
            print(
                f"  {name:26s} {seconds * 1000:8.1f} ms  {seconds / base:5.2f}x find"
                f"  {seconds / plain:5.2f}x plain ls"
            )
        print(
            "  --keys/--where on runs with config.json: "
            f"{medians['ls --keys --where'] / plain:.2f}x plain ls (target: within 3x); "
            "YAML only (runs made before config.json): "
            f"{medians['ls --keys --where, YAML'] / plain:.2f}x"
        )
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
