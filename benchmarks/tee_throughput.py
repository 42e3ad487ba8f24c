"""Output throughput: an entry writing 1 GB through expyrun against the same program piped.

    python benchmarks/tee_throughput.py [--megabytes 1000] [--repeat 3] [--before NAME=SRC ...]

Two modes: 64 KiB writes to sys.stdout, and 100-byte print() lines (10 million for 1 GB). The
chunks mode moves ~2 GB/s: with less than ~1 GB, its output time is too short to measure
against the noise of a shared machine (200 MB: ~0.05 s).
The baselines run the same entry function with plain python, in the same run: `| cat > file`
(the physical limit of capturing a child's output: it crosses a pipe) and `> file`. expyrun runs
it with --debug (no snapshot work), its own stdout to /dev/null (the terminal copy dropped) and
to a file (the terminal copy written too); `--before NAME=SRC` (repeatable) adds the same two
for another expyrun source tree (a `git archive` of an older commit), so before and after share
the run's noise.

Each command also runs the entry with 0 MB (untimed output, same start-up and end): its
*start-up* figure. Two ratios against `| cat > file`, higher is faster:
- `total`: wall time against wall time, start-up included (expyrun starts an interpreter,
  imports its config stack and records the run: a fixed cost that dominates small outputs);
- `output`: (time - start-up) against the pipe's (time - start-up): the throughput of moving
  the bytes, what the tee and the worker's streams cost (the target, >= 0.9x).
`expyrun > file` writes every byte twice (outputs.log and the copy): it is also compared with
`python | tee f > file`, the same work's pipe limit. Each run checks that outputs.log is
byte-identical to the baseline's file. Before each command,
untimed, the last run's outputs.log is checked and deleted and dirty pages are synced to disk.
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
from _common import EXPYRUN, clean_env, machine, make_project, median_times

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
PIPE = "python | cat > file"
# `expyrun > file` writes every byte twice (outputs.log, and its stdout's file): the same work's
# physical limit is a pipe into `tee` writing a file and its stdout into another.
TEE = "python | tee f > file"


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _commands(
    root: Path, scratch: Path, mode: str, megabytes: int, before: dict[str, Path]
) -> dict[str, dict]:
    """The commands of one mode and size, by name; `megabytes` 0 measures start-up."""
    config = f"{mode}-{megabytes}.yml"
    text = (root / "config.yml").read_text().replace("megabytes: 0", f"megabytes: {megabytes}")
    (root / config).write_text(text.replace("mode: x", f"mode: {mode}"))
    call = (
        f"from pkg.entry import main; main('bench', {{'mode': '{mode}', 'megabytes': {megabytes}}})"
    )
    pipe_file = shlex.quote(str(scratch / "pipe.out"))
    piped = f"{shlex.quote(sys.executable)} -c {shlex.quote(call)} | cat > {pipe_file}"
    expyrun = [*EXPYRUN, config, "--debug"]
    python = f"{shlex.quote(sys.executable)} -c {shlex.quote(call)}"
    # Files of its own: sharing pipe.out, the check run's tee would overwrite the pipe's file,
    # and the pipe's bytes would never be checked.
    tee_file = shlex.quote(str(scratch / "tee.out"))
    teed = f"{python} | tee {tee_file}.copy > {tee_file}"
    commands = {
        PIPE: dict(argv=["sh", "-c", piped], cwd=root),
        TEE: dict(argv=["sh", "-c", teed], cwd=root),
        "python > file": dict(argv=[sys.executable, "-c", call], cwd=root, stdout=f"{scratch}/b"),
        "expyrun > /dev/null": dict(argv=expyrun, cwd=root),
        "expyrun > file": dict(argv=expyrun, cwd=root, stdout=f"{scratch}/expyrun.out"),
    }
    for name, source in before.items():
        env = clean_env({"PYTHONPATH": str(source)})
        commands[f"{name} > /dev/null"] = dict(argv=expyrun, cwd=root, env=env)
        commands[f"{name} > file"] = dict(
            argv=expyrun, cwd=root, env=env, stdout=f"{scratch}/{name}.out"
        )
    return commands


def measure(mode: str, megabytes: int, repeat: int, before: dict[str, Path]) -> None:
    root = make_project(ENTRY, "mode: x\nmegabytes: 0\n")
    scratch = Path(tempfile.mkdtemp(prefix="expyrun-tee-"))
    digests: set[str] = set()

    def settle(keep_outputs: bool = False) -> None:
        # Check, then delete, the outputs.log of the last expyrun run, and write every dirty
        # page to disk: 200 MB files piling up in the page cache would slow the commands that
        # run after them (writeback), whichever they are. The commands' own output files go
        # too: `> file` truncating the last run's 1 GB file costs ~0.2 s, which would be timed.
        for log in (root / "outputs" / "DEBUG" / "bench").glob("exp.*/outputs.log"):
            if log.stat().st_size:
                digests.add(_digest(log))
            shutil.rmtree(log.parent)
        if not keep_outputs:
            for output in scratch.iterdir():
                output.unlink()
        os.sync()

    full = _commands(root, scratch, mode, megabytes, before)
    empty = _commands(root, scratch, mode, 0, before)
    both = {**full, **{f"{name} (start-up)": spec for name, spec in empty.items()}}
    medians = median_times(both, repeat, before=settle)
    # The 0 MB runs overwrite the output files: run each full command once more to check them.
    median_times(full, 1, before=lambda: settle(keep_outputs=True))
    settle(keep_outputs=True)
    expected = _digest(scratch / "b")
    outputs = [scratch / name for name in ("expyrun.out", "pipe.out", "tee.out", "tee.out.copy")]
    outputs += [scratch / f"{name}.out" for name in before]
    exact = digests == {expected} and all(_digest(path) == expected for path in outputs)
    size = (scratch / "b").stat().st_size
    pipe, pipe_start = medians[PIPE], medians[f"{PIPE} (start-up)"]
    print(f"{mode}: {size / 1e6:.0f} MB, median of {repeat}, outputs.log byte-exact: {exact}")
    print(
        f"  {'':22s} {'time':>8s}  {'start-up':>8s}  {'output rate':>11s}"
        f"  {'total':>6s}  {'output':>6s}  (vs {PIPE})"
    )
    for name in full:
        seconds, start = medians[name], medians[f"{name} (start-up)"]
        moving = max(seconds - start, 1e-6)
        print(
            f"  {name:22s} {seconds:6.3f} s  {start:6.3f} s  {size / moving / 1e6:6.0f} MB/s"
            f"  {pipe / seconds:5.2f}x  {(pipe - pipe_start) / moving:5.2f}x"
        )
    tee, tee_start = medians[TEE], medians[f"{TEE} (start-up)"]
    for name in (n for n in full if n.endswith("> file") and n.startswith(("expyrun", *before))):
        moving = max(medians[name] - medians[f"{name} (start-up)"], 1e-6)
        ratio = (tee - tee_start) / moving
        print(f"  {name} against {TEE} (both write the bytes twice): output {ratio:.2f}x")
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modes", default="chunks,lines")
    parser.add_argument(
        "--before",
        action="append",
        default=[],
        metavar="NAME=SRC",
        help="another expyrun source tree (holding expyrun/) to compare, named NAME",
    )
    args = parser.parse_args()
    before = {name: Path(src) for name, _, src in (b.partition("=") for b in args.before)}
    print(f"tee throughput ({machine()})")
    for mode in args.modes.split(","):
        measure(mode, args.megabytes, args.repeat, before)


if __name__ == "__main__":
    main()
