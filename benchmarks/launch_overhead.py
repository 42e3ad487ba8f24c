"""Launch overhead: a no-op run through expyrun against bare `python -c` calling the same entry.

    python benchmarks/launch_overhead.py [--repeat 20] [--compare PYTHON] [--launch-only]

Prints the median wall time of each command and its ratio to bare python (targets: a full
snapshot <= 6x, stretch 4.5x; --debug <= 5x), then the time to write frozen_requirements.txt
against `pip freeze` (target <= 1/20).

`--compare PYTHON` also times `PYTHON -m expyrun config.yml`, interleaved with the others, for an
interpreter where another expyrun is installed (an earlier commit: `git archive REV | tar -x -C
DIR && python -m venv V && V/bin/pip install DIR`), so that both figures come from the same run.
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
from _common import EXPYRUN, clean_env, machine, make_project, median_times


def launch_figures(repeat: int, compare: str | None = None) -> None:
    root = make_project("pass")
    script = shutil.which("expyrun", path=str(Path(sys.executable).parent))
    commands = {
        "bare python -c": dict(
            argv=[sys.executable, "-c", "from pkg.entry import main; main('bench', {})"],
            cwd=root,
        ),
        "expyrun cfg.yml": dict(argv=[*EXPYRUN, "config.yml"], cwd=root),
        "expyrun cfg.yml --debug": dict(argv=[*EXPYRUN, "config.yml", "--debug"], cwd=root),
    }
    if script:
        commands["expyrun (console script)"] = dict(argv=[script, "config.yml"], cwd=root)
    if compare:
        commands["compared expyrun cfg.yml"] = dict(
            argv=[compare, "-m", "expyrun", "config.yml"], cwd=root
        )
    # The project above is in no git repository (expyrun then starts no git); in one, the run
    # also pays `git ls-files` for the ignored paths (before the code copy) and `git status`
    # (in a thread, but a no-op run ends before it does).
    repo = make_project("pass")
    if _git_init(repo):
        commands["expyrun cfg.yml (git repo)"] = dict(argv=[*EXPYRUN, "config.yml"], cwd=repo)
    for spec in commands.values():  # warm the page cache and bytecode caches
        subprocess.run(spec["argv"], cwd=root, env=clean_env(), capture_output=True, check=True)
    medians = median_times(commands, repeat)
    base = medians["bare python -c"]
    print(f"launch overhead, median of {repeat} ({machine()})")
    if compare:
        print(f"  compared: {compare}")
    for name, seconds in medians.items():
        print(f"  {name:28s} {seconds * 1000:7.1f} ms  {seconds / base:5.2f}x")
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(repo, ignore_errors=True)


def _git_init(folder: Path) -> bool:
    """A repository with one commit of the project and outputs/ ignored; False without git."""
    (folder / ".gitignore").write_text("outputs/\n")
    steps = [
        ["git", "init", "-q"],
        ["git", "add", "."],
        ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "bench"],
    ]
    try:
        for step in steps:
            subprocess.run(step, cwd=folder, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return False
    return True


def freeze_figures(repeat: int) -> None:
    from expyrun.run.freeze import frozen_requirements

    ours = []
    for _ in range(repeat):
        start = time.perf_counter()
        text = frozen_requirements()
        ours.append(time.perf_counter() - start)
    pip = []
    for _ in range(max(3, repeat // 4)):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "pip", "freeze"],
            capture_output=True,
            check=True,
            env=clean_env(),
        )
        pip.append(time.perf_counter() - start)
    count = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    mine, theirs = statistics.median(ours), statistics.median(pip)
    print(f"frozen requirements, {count} distributions")
    print(f"  expyrun (in process)   {mine * 1000:7.1f} ms")
    print(
        f"  pip freeze             {theirs * 1000:7.1f} ms  (expyrun takes 1/{theirs / mine:.0f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--compare", metavar="PYTHON", help="another expyrun's interpreter")
    parser.add_argument("--launch-only", action="store_true", help="skip the freeze figures")
    args = parser.parse_args()
    launch_figures(args.repeat, args.compare)
    if not args.launch_only:
        freeze_figures(args.repeat)


if __name__ == "__main__":
    main()
