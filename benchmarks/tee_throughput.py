"""Output throughput: an entry writing 200 MB through expyrun against the same program `> file`.

    python benchmarks/tee_throughput.py [--megabytes 200] [--repeat 5]

Two modes: 64 KiB writes to sys.stdout, and 100-byte print() lines (2 million for 200 MB).
The baseline runs the same entry function with plain python, stdout redirected to a file.
expyrun runs it with --debug (no snapshot work), its own stdout to /dev/null (the terminal
copy dropped) and, second figure, to a file (the terminal copy written too). Throughput is
bytes / wall time; the ratio to the baseline is the figure (target >= 0.8x). Each run checks
that outputs.log is byte-identical to the baseline's file. Before each command, untimed, the
last run's outputs.log is checked and deleted and dirty pages are synced to disk. A bare pipe
(`python | cat > file`) is measured too: output that crosses a pipe cannot go faster than that
on the same machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import EXPYRUN, machine, make_project, median_times

ENTRY = """
mode, total = config["mode"], config["megabytes"] * 1024 * 1024
if mode == "chunks":
    chunk = ("0123456789abcdef" * 4096)[:65535] + "\\n"
    for _ in range(total // len(chunk)):
        sys.stdout.write(chunk)
else:
    line = "x" * 99
    for _ in range(total // 100):
        print(line)
"""


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def measure(mode: str, megabytes: int, repeat: int) -> None:
    root = make_project(ENTRY, f"mode: {mode}\nmegabytes: {megabytes}\n")
    scratch = Path(tempfile.mkdtemp(prefix="expyrun-tee-"))
    baseline_file = str(scratch / "baseline.out")
    expyrun_file = str(scratch / "expyrun.out")
    pipe_file = str(scratch / "pipe.out")
    call = (
        f"from pkg.entry import main; main('bench', {{'mode': '{mode}', 'megabytes': {megabytes}}})"
    )
    piped = f"{shlex.quote(sys.executable)} -c {shlex.quote(call)} | cat > {shlex.quote(pipe_file)}"
    commands = {
        "python > file": dict(argv=[sys.executable, "-c", call], cwd=root, stdout=baseline_file),
        "python | cat > file": dict(argv=["sh", "-c", piped], cwd=root),
        "expyrun > /dev/null": dict(argv=[*EXPYRUN, "config.yml", "--debug"], cwd=root),
        "expyrun > file": dict(
            argv=[*EXPYRUN, "config.yml", "--debug"], cwd=root, stdout=expyrun_file
        ),
    }
    digests: set[str] = set()

    def settle() -> None:
        # Check, then delete, the outputs.log of the last expyrun run, and write every dirty
        # page to disk: 200 MB files piling up in the page cache would slow the commands that
        # run after them (writeback), whichever they are.
        for log in (root / "outputs" / "DEBUG" / "bench").glob("exp.*/outputs.log"):
            digests.add(_digest(log))
            shutil.rmtree(log.parent)
        os.sync()

    medians = median_times(commands, repeat, before=settle)
    settle()
    expected = _digest(Path(baseline_file))
    exact = digests == {expected} and _digest(Path(expyrun_file)) == expected
    size = Path(baseline_file).stat().st_size
    base, pipe = medians["python > file"], medians["python | cat > file"]
    print(f"{mode}: {size / 1e6:.0f} MB, median of {repeat}, outputs.log byte-exact: {exact}")
    print(f"  {'':22s} {'time':>8s}  {'rate':>10s}  {'vs > file':>9s}  {'vs | cat':>8s}")
    for name, seconds in medians.items():
        rate = size / seconds / 1e6
        print(
            f"  {name:22s} {seconds:6.3f} s  {rate:5.0f} MB/s  {base / seconds:8.2f}x"
            f"  {pipe / seconds:7.2f}x"
        )
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"tee throughput ({machine()})")
    for mode in ("chunks", "lines"):
        measure(mode, args.megabytes, args.repeat)


if __name__ == "__main__":
    main()
