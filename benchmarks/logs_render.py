"""`expyrun logs` rendering a big log through a pipe: MB/s against `cat`, and peak memory.

    python benchmarks/logs_render.py [--size-mb 1024] [--repeat 3] [--kind mixed|lines|bars]

Makes one real run folder, replaces its outputs.log by a generated log of the given size (a
training loop's lines, tqdm-like bars redrawn with `\\r` and erase-line, coloured lines), then
times, each through a pipe into `cat > /dev/null`:
  cat outputs.log               (the baseline: the pipe itself)
  expyrun logs --raw RUN        (the stored bytes, copied in blocks)
  expyrun logs RUN              (the rendered view: the pipe's default)
and measures the peak RSS of `expyrun logs RUN` with `/usr/bin/time -v` (when present).
Prints medians, MB/s and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import EXPYRUN, clean_env, machine, make_project, time_command

BLOCK = 4 << 20


def _pieces(kind: str) -> bytes:
    """About 1 MiB of log of this kind, repeated to the requested size."""
    out = bytearray()
    step = 0
    while len(out) < 1 << 20:
        if kind in ("lines", "mixed"):
            out += b"epoch 3 step %6d loss=0.%06d acc=0.9876 lr=0.001 time=12.3ms\n" % (step, step)
        if kind in ("bars", "mixed"):
            for i in range(0, 101, 5):
                filled = "█" * (i // 5) + " " * (20 - i // 5)
                out += f"\r\x1b[K{i:3d}%|{filled}| {i}/100 [00:01<00:02, 99.1it/s]".encode()
            out += b"\n"
        if kind == "mixed" and step % 50 == 0:
            out += b"\x1b[32mvalidation\x1b[0m: \x1b[1mbest so far\x1b[0m\n"
        step += 1
    return bytes(out)


def make_run(size_mb: int, kind: str) -> Path:
    root = make_project("print('hello')")
    done = subprocess.run(
        [*EXPYRUN, "config.yml"], cwd=root, capture_output=True, env=clean_env(), check=False
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr.decode(errors="replace"))
    run_dir = root / "outputs" / "bench" / "exp.0"
    piece = _pieces(kind)
    with open(run_dir / "outputs.log", "wb") as log:
        written = 0
        while written < size_mb << 20:
            log.write(piece)
            written += len(piece)
    return run_dir


def _piped(command: list[str]) -> list[str]:
    return ["sh", "-c", f"{shlex.join(command)} | cat > /dev/null"]


def median_cpu_and_wall(
    commands: dict[str, list[str]], repeat: int
) -> dict[str, tuple[float, float]]:
    """Median wall and CPU (user + sys of the whole pipeline) seconds of each command piped
    into `cat > /dev/null`, the commands interleaved so that noise hits all alike."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, argv in commands.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall = time_command(_piped(argv), cwd=Path.cwd())
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            samples[name].append((wall, cpu))
    return {
        name: (
            statistics.median(wall for wall, _ in values),
            statistics.median(cpu for _, cpu in values),
        )
        for name, values in samples.items()
    }


def peak_rss_mb(command: list[str]) -> float | None:
    """Peak RSS of `command` (its stdout a pipe) in MiB, from /usr/bin/time -v."""
    if not Path("/usr/bin/time").exists():
        return None
    done = subprocess.run(
        ["sh", "-c", f"/usr/bin/time -v {shlex.join(command)} 2>&1 >/dev/null | cat"],
        capture_output=True,
        env=clean_env(),
        check=False,
    )
    found = re.search(rb"Maximum resident set size \(kbytes\): (\d+)", done.stdout)
    return int(found.group(1)) / 1024 if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kind", choices=["mixed", "lines", "bars"], default="mixed")
    args = parser.parse_args()
    run_dir = make_run(args.size_mb, args.kind)
    log = run_dir / "outputs.log"
    size = log.stat().st_size
    try:
        commands = {
            "cat": ["cat", str(log)],
            "logs --raw": [*EXPYRUN, "logs", "--raw", str(run_dir)],
            "logs (rendered)": [*EXPYRUN, "logs", str(run_dir)],
        }
        times = median_cpu_and_wall(commands, args.repeat)
        print(f"{machine()}; log: {size / 2**20:.0f} MiB ({args.kind}), {args.repeat} runs each")
        print("  (wall: elapsed time, noisy on a shared machine; cpu: user+sys of the pipeline)")
        base_wall = times["cat"][0]
        for name, (wall, cpu) in times.items():
            print(
                f"  {name:16s} wall {wall:7.2f} s {size / wall / 2**20:8.1f} MiB/s "
                f"{base_wall / wall:6.3f}x cat | cpu {cpu:7.2f} s "
                f"{size / max(cpu, 1e-9) / 2**20:8.1f} MiB/s"
            )
        rendered_lines = subprocess.run(
            ["sh", "-c", f"{shlex.join(commands['logs (rendered)'])} | wc -l"],
            capture_output=True,
            env=clean_env(),
            check=False,
        ).stdout.strip()
        print(f"  rendered lines: {rendered_lines.decode()}")
        for name in ("logs --raw", "logs (rendered)"):
            rss = peak_rss_mb(commands[name])
            if rss is not None:
                print(f"  peak RSS of {name}: {rss:.1f} MiB (log: {size / 2**20:.0f} MiB)")
    finally:
        shutil.rmtree(run_dir.parents[2], ignore_errors=True)
        os.sync()


if __name__ == "__main__":
    main()
