"""How the config engine scales: a generated config of 10,000 keys (issue 3, "Speed").

The config: 5 files chained by `__default__` (each level adds 2,000 keys and re-sets 200 of
the level below), 2,000 references (`{a.b}`, whole and inside text, some chained, some across
files, some into lists of mappings) and 500 environment variables. The x2 config doubles
everything but the number of levels.

Printed, never asserted (STYLE.md §7):
- the engine in-process, loading included (`expyrun.config.resolve`), median of several runs;
- the baseline measured in the same run: parsing the same files with libyaml alone
  (`yaml.load(text, yaml.CSafeLoader)`), and the engine / baseline ratio;
- the ratio x2 / x1 (linear growth: about 2);
- `cli_overhead()`: `python -m expyrun CONFIG --debug` with a no-op entry point, this config
  against a tiny one (prints "CLI not available" when `python -m expyrun` cannot run).

Run: python benchmarks/config_scale.py [--repeat N] [--no-cli]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

LEVELS = 5
SECTIONS, SUBS, GROUPS, LEAVES = 10, 10, 4, 5  # 2,000 keys per level
RESET_PER_LEVEL = 200
REFS_PER_LEVEL = 400
ENV_PER_LEVEL = 100
ENTRY_PACKAGE = "noop_bench_entry"


def _leaf(level: int, section: int, sub: int, group: int, leaf: int) -> str:
    return f"s{level}_{section}.sub{sub}.g{group}.k{leaf}"


def _plain_value(index: int) -> object:
    kind = index % 6
    if kind == 0:
        return index
    if kind == 1:
        return index / 7
    if kind == 2:
        return f"text-{index}"
    if kind == 3:
        return index % 2 == 0
    if kind == 4:
        return [index, index + 1, index + 2]
    return None


def _reset(value: object, level: int) -> object:
    """A new value of the same type, as a later level would set it (no type-change warning)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + level
    if isinstance(value, str):
        return f"{value}-{level}" if "{" not in value and "$" not in value else f"reset-{level}"
    if isinstance(value, list):
        return [*value, level]
    return value


def _level_keys(level: int, scale: int) -> list[str]:
    return [
        _leaf(level, section, sub, group, leaf)
        for section in range(SECTIONS * scale)
        for sub in range(SUBS)
        for group in range(GROUPS)
        for leaf in range(LEAVES)
    ]


def _values(level: int, scale: int, keys: list[str], below: list[str]) -> dict[str, object]:
    """Leaf values of one level: plain values, then references and variables spread in."""
    values: dict[str, object] = {key: _plain_value(i + level) for i, key in enumerate(keys)}
    plain_below = [key for key in below if not key.endswith("k4")]
    refs = REFS_PER_LEVEL * scale
    step = len(keys) // (refs + ENV_PER_LEVEL * scale)
    slots = keys[::step]
    for n, key in enumerate(slots[:refs]):
        target = plain_below[(n * 37) % len(plain_below)] if plain_below else keys[-1]
        if n % 4 == 0:
            values[key] = f"{{{target}}}"  # whole reference: keeps the type
        elif n % 4 == 1:
            values[key] = f"run-{{{target}}}-{{{keys[-1]}}}"  # inside text
        elif n % 4 == 2:
            values[key] = f"{{{slots[n - 2]}}}"  # a chain through another reference
        else:
            values[key] = f"{{layers{level}.{n % 3}.size}}"  # into a list of mappings
    for n, key in enumerate(slots[refs : refs + ENV_PER_LEVEL * scale]):
        var = f"EXPY_BENCH_{level}_{n}"
        values[key] = f"${var}" if n % 2 else f"${{{var}}}/data"
    return values


def _nest(flat: dict[str, object]) -> dict[str, object]:
    tree: dict[str, object] = {}
    for dotted, value in flat.items():
        node = tree
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})  # type: ignore[assignment]
        node[last] = value
    return tree


def generate(root: Path, scale: int = 1) -> tuple[Path, dict[str, str]]:
    """Write the chained config files under `root`; return the top file and its variables."""
    root.mkdir(parents=True, exist_ok=True)
    environ: dict[str, str] = {}
    below: list[str] = []
    values_below: dict[str, object] = {}
    for level in range(LEVELS):
        keys = _level_keys(level, scale)
        flat = _values(level, scale, keys, below)
        resets = {key: _reset(values_below[key], level) for key in below[: RESET_PER_LEVEL * scale]}
        values_below.update(flat)
        values_below.update(resets)
        flat.update(resets)
        content = _nest(flat)
        content[f"layers{level}"] = [{"size": i * 8, "act": "relu"} for i in range(3)]
        if level:
            content["__default__"] = f"./level{level - 1}.yml"
            content["__new_key_policy__"] = "pass"
        if level == LEVELS - 1:
            content["__run__"] = {
                "__main__": f"{ENTRY_PACKAGE}.main:main",
                "__output_dir__": str(root / "outputs"),
                "__name__": "bench-{s0_0.sub0.g0.k2}-{s1_0.sub0.g0.k0}",
            }
        text = yaml.dump(content, Dumper=yaml.CSafeDumper, sort_keys=False)
        (root / f"level{level}.yml").write_text(text)
        for n in range(ENV_PER_LEVEL * scale):
            environ[f"EXPY_BENCH_{level}_{n}"] = str(n) if n % 3 else f"/data/{n}"
        below.extend(keys)
    return root / f"level{LEVELS - 1}.yml", environ


def median_seconds(function: Callable[[], object], repeat: int) -> float:
    """The median wall time of `repeat` calls of `function`, in seconds (after one warm-up)."""
    function()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def parse_only(files: list[Path]) -> None:
    """The baseline: read and parse the same files with libyaml alone, nothing else."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for file in files:
        yaml.load(file.read_text(), Loader=loader)  # noqa: S506 - a safe loader


def engine_figures(root: Path, scale: int, repeat: int) -> tuple[float, float, int]:
    """(engine median s, parse-only median s, resolved leaf count) for the config xscale."""
    from expyrun.config import resolve
    from expyrun.config.keys import walk

    top, variables = generate(root / f"x{scale}", scale)
    environ = {**os.environ, **variables}
    files = sorted(top.parent.glob("level*.yml"))
    resolved = resolve(top, cwd=root, environ=environ)
    leaves = sum(  # keys holding a value, not list items
        1
        for path, value in walk(resolved.entry_config)
        if isinstance(path[-1], str) and not isinstance(value, dict)
    )
    engine = median_seconds(lambda: resolve(top, cwd=root, environ=environ), repeat)
    baseline = median_seconds(lambda: parse_only(files), repeat)
    return engine, baseline, leaves


def _write_entry(project: Path) -> None:
    package = project / ENTRY_PACKAGE
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "main.py").write_text("def main(name, config):\n    pass\n")


def _tiny_config(project: Path) -> Path:
    config = project / "tiny.yml"
    config.write_text(
        "__run__:\n"
        f"  __main__: {ENTRY_PACKAGE}.main:main\n"
        f"  __output_dir__: {project / 'outputs'}\n"
        "  __name__: tiny\n"
        "seed: 1\n"
    )
    return config


def _time_cli(config: Path, project: Path, environ: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "expyrun", str(config), "--debug"],
        cwd=project,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
        timeout=120,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode(errors="replace").strip()[-500:])
    return elapsed


def cli_overhead(root: Path, repeat: int) -> None:
    """Print the CLI's time on the x1 config minus its time on a tiny config."""
    project = root / "cli"
    _write_entry(project)
    top, variables = generate(project / "configs", 1)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "EXPYRUN_"))}
    environ.update(variables)
    environ["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    tiny = _tiny_config(project)
    try:
        _time_cli(tiny, project, environ)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"CLI not available ({str(exc).splitlines()[-1] if str(exc) else exc!r})")
        return
    samples: dict[str, list[float]] = {"tiny": [], "big": []}
    for _ in range(repeat):  # interleaved, so that noise hits both alike
        samples["tiny"].append(_time_cli(tiny, project, environ))
        samples["big"].append(_time_cli(top, project, environ))
    tiny_s, big_s = (statistics.median(samples[name]) for name in ("tiny", "big"))
    print(f"CLI --debug, tiny config:        {tiny_s * 1000:7.1f} ms")
    print(f"CLI --debug, 10,000-key config:  {big_s * 1000:7.1f} ms")
    print(f"CLI overhead of the big config:  {(big_s - tiny_s) * 1000:+7.1f} ms (target <= +300)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per figure (median)")
    parser.add_argument("--no-cli", action="store_true", help="skip the CLI figures")
    args = parser.parse_args()
    print(
        f"python {sys.version.split()[0]}, PyYAML {yaml.__version__}, "
        f"libyaml: {getattr(yaml, '__with_libyaml__', False)}"
    )
    with tempfile.TemporaryDirectory(prefix="expyrun-bench-") as tmp:
        root = Path(tmp)
        engine1, parse1, leaves1 = engine_figures(root, 1, args.repeat)
        engine2, parse2, leaves2 = engine_figures(root, 2, max(3, args.repeat // 2))
        print(f"config x1: {leaves1} keys; x2: {leaves2} keys")
        print(f"engine x1 (resolve, in-process):  {engine1 * 1000:7.1f} ms (target <= 150)")
        print(f"parse-only x1 (libyaml alone):    {parse1 * 1000:7.1f} ms")
        print(f"engine / parse-only x1:           {engine1 / parse1:7.2f}")
        print(f"engine x2:                        {engine2 * 1000:7.1f} ms")
        print(f"parse-only x2:                    {parse2 * 1000:7.1f} ms")
        print(f"growth engine x2 / x1:            {engine2 / engine1:7.2f} (target <= 2.2)")
        print(f"growth parse-only x2 / x1:        {parse2 / parse1:7.2f}")
        if not args.no_cli:
            cli_overhead(root, args.repeat)


if __name__ == "__main__":
    main()
