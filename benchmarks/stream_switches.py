"""Stream switches: an entry alternating print() to stdout and to stderr, through expyrun.

    python benchmarks/stream_switches.py [--lines 20000] [--repeat 5]

expyrun keeps the order of writes across stdout and stderr in outputs.log (and on the
terminal), as a terminal shows it: at each switch the worker waits until the supervisor has
read the other pipe (docs/supervision.md). The pattern this costs most is the common one, a
line printed to stdout, then a line logged to stderr. The baseline is the same program under
`python -u ... 2>&1 | cat > file` (unbuffered, so its merged pipe has the same order), in the
same run; expyrun runs it with PYTHONUNBUFFERED=1 too, its own output to /dev/null (the
terminal copy dropped) and into a pipe (`2>&1 | cat`: the terminal copy on). Each expyrun
run's outputs.log is checked against the baseline's file.
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import EXPYRUN, clean_env, machine, make_project, median_times

ENTRY = """
for i in range(config["lines"] // 2):
    print("metrics step", i, "loss 0.123456")
    print("log step", i, "lr 0.001", file=sys.stderr)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    root = make_project(ENTRY, f"lines: {args.lines}\n")
    scratch = Path(tempfile.mkdtemp(prefix="expyrun-switches-"))
    env = clean_env({"PYTHONUNBUFFERED": "1"})
    python = shlex.quote(sys.executable)
    call = f"from pkg.entry import main; main('bench', {{'lines': {args.lines}}})"
    baseline = f"{python} -c {shlex.quote(call)} 2>&1 | cat > {shlex.quote(str(scratch / 'b'))}"
    expyrun = " ".join(shlex.quote(word) for word in [*EXPYRUN, "config.yml", "--debug"])
    commands = {
        "python -u 2>&1 | cat > file": dict(argv=["sh", "-c", baseline], cwd=root, env=env),
        "expyrun > /dev/null 2>&1": dict(
            argv=["sh", "-c", f"{expyrun} > /dev/null 2>&1"], cwd=root, env=env
        ),
        "expyrun 2>&1 | cat > /dev/null": dict(
            argv=["sh", "-c", f"{expyrun} 2>&1 | cat > /dev/null"], cwd=root, env=env
        ),
    }
    medians = median_times(commands, args.repeat)
    expected = hashlib.sha256((scratch / "b").read_bytes()).hexdigest()
    logs = list((root / "outputs" / "DEBUG" / "bench").glob("exp.*/outputs.log"))
    exact = all(hashlib.sha256(log.read_bytes()).hexdigest() == expected for log in logs)
    base = medians["python -u 2>&1 | cat > file"]
    print(f"stream switches ({machine()})")
    print(f"{args.lines} lines alternating stdout/stderr, median of {args.repeat}")
    print(f"outputs.log in the baseline's order: {exact} ({len(logs)} runs)")
    for name, seconds in medians.items():
        per_switch = (seconds - base) / args.lines * 1e6
        extra = f"  (+{per_switch:5.1f} us a line)" if name != "python -u 2>&1 | cat > file" else ""
        print(f"  {name:32s} {seconds:6.3f} s  {seconds / base:5.2f}x{extra}")
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
