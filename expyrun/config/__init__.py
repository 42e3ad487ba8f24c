"""The config engine: YAML files and command-line overrides in, a resolved config out.

Pure: it reads the config files and nothing else, writes nothing, starts no process, never
prints. Errors are `ConfigError`s; warnings are returned as `ConfigWarning`s (raised instead,
the first one, with `strict`).

    resolved = resolve("configs/first.yml", ["--training.lr", "0.01"])
    resolved.config        # resolved, with __run__ (config.yml)
    resolved.raw           # merged and overridden, $VAR and {ref} unresolved (raw_config.yml)
    resolved.run           # RunSpec: entry, name, output_dir, code_dir, slurm
    resolved.entry_config  # what the entry point receives: config without __run__
"""

import contextlib
import gc
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

from expyrun.config import paths
from expyrun.config.dumping import dump_config, dump_raw
from expyrun.config.interpolation import CWD_VARIABLE, interpolate
from expyrun.config.keys import ConfigMapping, ConfigValue, KeyPath
from expyrun.config.loading import load_config
from expyrun.config.overrides import apply_overrides, parse_overrides
from expyrun.config.report import COMMAND_LINE, Origin, Origins, Report
from expyrun.config.run_section import (
    OPTION_MAPS,
    RUN_KEY,
    TEXT_KEYS,
    RunSpec,
    read_run_section,
)
from expyrun.errors import ConfigWarning

__all__ = [
    "ConfigMapping",
    "ConfigValue",
    "Resolved",
    "RunSpec",
    "dump_config",
    "dump_raw",
    "relative_path_warnings",
    "resolve",
]


class Resolved(NamedTuple):
    """The outcome of resolving a config: both configs, the run section, the warnings."""

    config: ConfigMapping  # fully resolved, `__run__` included (config.yml)
    raw: ConfigMapping  # merged + overridden, variables and references unresolved
    run: RunSpec
    warnings: tuple[ConfigWarning, ...] = ()
    origins: Mapping[KeyPath, Origin] = MappingProxyType({})  # where each key was set

    @property
    def entry_config(self) -> ConfigMapping:
        """The config given to the entry point: `config` without `__run__`."""
        return {key: value for key, value in self.config.items() if key != RUN_KEY}


def resolve(
    path: str | Path,
    overrides: Sequence[str] = (),
    *,
    strict: bool = False,
    cwd: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Collection[str] = (),
    flags_with_values: Collection[str] = (),
) -> Resolved:
    """Load `path` with its defaults, apply `overrides`, resolve, validate `__run__`.

    Args:
        path: the config file as the user typed it (relative paths from `cwd`).
        overrides: argv tokens such as `("--a.b", "3", "--c=x")`.
        strict: raise the first warning (a `ConfigWarning`) instead of returning it.
        cwd: the launch directory (default: the current one): cwd-relative defaults, paths of
            `__run__`, `$EXPYRUN_CWD`.
        environ: the variables `$VAR` reads (default: `os.environ`, which is never changed).
        flags: the launch line's own flags (`--detach`), suggested for a mistyped override.
        flags_with_values: the flags given a value on the launch line (`--tag v2`): a top-level
            key named alike, which they leave unchanged, is warned about.
    """
    launch_dir = Path(os.path.abspath(os.getcwd() if cwd is None else cwd))
    variables = dict(os.environ if environ is None else environ)
    variables[CWD_VARIABLE] = str(launch_dir)
    report = Report(strict)
    parsed = parse_overrides(overrides, flags)
    with _cyclic_gc_paused():
        loaded = load_config(path, launch_dir, report)
        raw, origins = loaded.value, loaded.origins
        apply_overrides(raw, parsed, origins, TEXT_KEYS, OPTION_MAPS, flags)
        _warn_shadowed_keys(raw, origins, flags_with_values, report)
        config = interpolate(raw, variables, origins, report)
    run = read_run_section(config, origins, launch_dir, Origin(loaded.path))
    return Resolved(config, raw, run, tuple(report.warnings), origins)


def relative_path_warnings(
    resolved: Resolved, launch_dir: Path, run_dir: Path
) -> list[ConfigWarning]:
    """Warnings for values naming a path of `launch_dir` that `run_dir` lacks (`paths`).

    Called once the run folder (and its code copy) exists: the entry point runs there.
    """
    run = resolved.run
    return paths.relative_path_warnings(
        resolved.config, resolved.origins, run.no_path_warning, launch_dir, run_dir
    )


def _warn_shadowed_keys(
    raw: ConfigMapping, origins: Origins, flags: Collection[str], report: Report
) -> None:
    """Warn about a key `tag` of the config when `--tag v2` set expyrun's flag instead."""
    for flag in flags:
        key = flag.removeprefix("--")
        origin = origins.get((key,))
        if key in raw and origin is not COMMAND_LINE:
            report.warn(
                f"{flag} on the command line is expyrun's flag and leaves this key unchanged",
                origin,
                (key,),
                hint=f"to set the key, write -- {flag} VALUE at the end of the line",
            )


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a config is built.

    Building a config allocates ~10 objects per key and frees none: the collector, triggered
    by allocation counts, would scan the growing live set again and again (a quarter of the
    time on 10,000 keys, and more than linear). The engine makes no reference cycles, so
    nothing waits for the collector; reference counting frees as usual.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
