"""Expand a sweep into its members: each one resolved and checked before anything is created.

The config files are loaded once; each member is the loaded config, copied, with the launch's
overrides and then the member's values applied as overrides (`--KEY=TEXT`, typed by
config/overrides.py exactly as on the command line), resolved and validated as a launch would
(`config.resolve` does the same four steps; doing them here saves loading the files again for
each of 10,000 members). Members are the cartesian product of the dimensions, the first
dimension slowest; `--sample K --seed S` draws K distinct members, kept in that order.

A member is known by the hash of its resolved config (`digest`): resume matches members by it.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import os
import random
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from expyrun.config import Resolved
from expyrun.config.interpolation import CWD_VARIABLE, interpolate
from expyrun.config.keys import ConfigMapping, ConfigValue, copy_value, get, normalize, split_key
from expyrun.config.loading import load_config
from expyrun.config.overrides import Override, apply_overrides, parse_overrides
from expyrun.config.report import Origin, Origins, Report
from expyrun.config.run_section import (
    NAME_KEY,
    OPTION_MAPS,
    RUN_KEY,
    SWEEP_KEY,
    TEXT_KEYS,
    read_run_section,
)
from expyrun.errors import ConfigError, ConfigWarning, UsageError
from expyrun.launch.options import LaunchOptions
from expyrun.run.entry import EntryLocation, locate_entry
from expyrun.sweep import dimensions as dimension_texts
from expyrun.sweep.dimensions import MAX_MEMBERS, Dimension, config_dimension, parse_dimension
from expyrun.sweep.options import SweepOptions

DIGEST_CHARS = 16


class Member(NamedTuple):
    """One run of a sweep, resolved and checked."""

    number: int  # 1-based, in the sweep's order (`index` is taken by tuple.index)
    texts: tuple[tuple[str, str], ...]  # (key, override text) per swept key, dimension order
    values: dict[str, ConfigValue]  # the swept keys' resolved values
    resolved: Resolved  # without __sweep__
    location: EntryLocation
    digest: str  # the hash of the resolved config

    @property
    def overrides(self) -> tuple[str, ...]:
        """The member's values as override tokens (`--training.lr=0.01`)."""
        return tuple(f"--{key}={text}" for key, text in self.texts)

    def describe(self) -> str:
        """`training.lr=0.01 seed=2`."""
        return " ".join(f"{key}={text}" for key, text in self.texts)


class Expansion(NamedTuple):
    """A sweep's dimensions and members."""

    dimensions: tuple[Dimension, ...]
    members: tuple[Member, ...]
    total: int  # members of the full product (more than `members` under --sample)
    warnings: tuple[ConfigWarning, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        """Every swept key, in dimension order."""
        return tuple(key for dimension in self.dimensions for key in dimension.keys)


def expand(launch: LaunchOptions, sweep: SweepOptions, cwd: Path) -> Expansion:
    """Resolve every member of the sweep `launch` + `sweep` describe, launched from `cwd`.

    Raises:
        UsageError: no dimension, a key in two dimensions, a bad --sample.
        ConfigError: the config or a member's values (the error an override would give).
        EntryPointError: a member's entry point cannot be found.
    """
    enabled = gc.isenabled()
    gc.disable()  # as config.resolve does: the engine makes no cycles, the collector only slows
    try:
        return _expand(launch, sweep, cwd)
    finally:
        if enabled:
            gc.enable()


def _expand(launch: LaunchOptions, sweep: SweepOptions, cwd: Path) -> Expansion:
    launch_dir = Path(os.path.abspath(cwd))
    report = Report(launch.strict)
    base_overrides = parse_overrides(launch.overrides, launch.flags)
    for override in base_overrides:
        if override.parts[0] == SWEEP_KEY:
            raise UsageError(f"--{override.key}: write --sweep KEY VALUES to change a dimension")
    loaded = load_config(launch.config_path, launch_dir, report)
    base = dict(loaded.value)
    dimensions, written_at = _dimensions(
        base.pop(SWEEP_KEY, None), loaded.origins, sweep, loaded.path
    )
    total = math.prod(len(dimension.values) for dimension in dimensions)
    if total > MAX_MEMBERS:
        raise UsageError(f"the sweep has {total:,} members, more than {MAX_MEMBERS:,}")
    variables = dict(os.environ)
    variables[CWD_VARIABLE] = str(launch_dir)
    resolver = _MemberResolver(
        base, loaded.origins, Origin(loaded.path), launch_dir, variables, report, written_at
    )
    resolver.flags = launch.flags
    members = [
        resolver.member(number, base_overrides, texts)
        for number, texts in enumerate(_texts(dimensions, _positions(total, sweep)), start=1)
    ]
    _check_repeated(members)
    _check_shadowed(base_overrides, dimensions, report)
    _check_names(members, base, report)
    unique = {str(warning): warning for warning in report.warnings}
    return Expansion(dimensions, tuple(members), total, tuple(unique.values()))


class _MemberResolver:
    """Resolve and check one member: what `config.resolve` does after loading the files."""

    def __init__(
        self,
        base: ConfigMapping,
        origins: Origins,
        top: Origin,
        launch_dir: Path,
        variables: dict[str, str],
        report: Report,
        written_at: dict[str, Origin],
    ) -> None:
        self.base = base
        self.origins = origins
        self.top = top
        self.launch_dir = launch_dir
        self.variables = variables
        self.report = report
        self.written_at = written_at  # where the config's __sweep__ sets each key
        self.locations: dict[tuple[str, Path], EntryLocation] = {}
        self.flags: Collection[str] = ()  # the launch line's flags, suggested for a typo

    def member(
        self, number: int, base_overrides: Sequence[Override], texts: tuple[tuple[str, str], ...]
    ) -> Member:
        overrides = [*base_overrides, *(_override(key, text) for key, text in texts)]
        raw = _copied_along(self.base, overrides)
        origins = dict(self.origins)
        try:
            apply_overrides(raw, overrides, origins, TEXT_KEYS, OPTION_MAPS, self.flags)
        except ConfigError as exc:
            origin = self.written_at.get(exc.key or "")
            if origin is not None:  # a value of the config's __sweep__: say where it is
                exc.path, exc.line = origin.path, origin.line
            raise
        config = interpolate(raw, self.variables, origins, self.report)
        run = read_run_section(config, origins, self.launch_dir, self.top)
        where = (run.entry, run.code_dir)
        if where not in self.locations:
            self.locations[where] = locate_entry(run.entry, run.module, run.function, run.code_dir)
        values = {key: get(config, normalize(config, split_key(key) or ())) for key, _ in texts}
        resolved = Resolved(config, raw, run, (), origins)
        return Member(number, texts, values, resolved, self.locations[where], config_digest(config))


def _copied_along(base: ConfigMapping, overrides: Sequence[Override]) -> ConfigMapping:
    """A copy of `base` that overriding cannot alter: the containers on each override's path
    are copied, the rest is shared (interpolation leaves the raw config unchanged). Copying
    only these is most of the speed of expanding 10,000 members."""
    raw = dict(base)
    for override in overrides:
        node: ConfigValue = raw
        for part in override.parts[:-1]:
            if isinstance(node, dict) and part in node:
                child = node[part]
                key: str | int = part
            elif (
                isinstance(node, list)
                and part.lstrip("-").isdigit()
                and -len(node) <= int(part) < len(node)
            ):
                key = int(part)
                child = node[key]
            else:
                break
            if isinstance(child, dict | list):
                child = copy_value(child) if isinstance(child, list) else dict(child)
                node[key] = child  # type: ignore[index] # a dict takes str keys, a list ints
            node = child
    return raw


def config_digest(config: ConfigMapping) -> str:
    """The hash that identifies a member: its resolved config, keys sorted (hex, 16 chars)."""
    text = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]


def _override(key: str, text: str) -> Override:
    return Override(key, split_key(key) or (key,), text)


def _dimensions(
    section: ConfigValue,
    origins: dict[tuple[str | int, ...], Origin],
    sweep: SweepOptions,
    path: str,
) -> tuple[tuple[Dimension, ...], dict[str, Origin]]:
    """The config's dimensions, each replaced by a --sweep of the same keys; then the others.

    Also: where each key the config's `__sweep__` sweeps is written (for error messages).
    """
    found: dict[tuple[str, ...], Dimension] = {}
    written_at: dict[str, Origin] = {}
    if section is not None:
        origin = origins.get((SWEEP_KEY,), Origin(path))
        if not isinstance(section, dict):
            raise ConfigError(
                f"expected a mapping of KEY: [values], got {section!r}",
                path=origin.path,
                line=origin.line,
                key=SWEEP_KEY,
            )
        for parts, value in dimension_texts.sweep_entries(section):
            at = origins.get((SWEEP_KEY, *parts), origin)
            dimension = config_dimension(".".join(parts), value, at.path, at.line)
            found[dimension.keys] = dimension
            written_at.update((key, at) for key in dimension.keys)
    given: set[tuple[str, ...]] = set()
    for label, text in sweep.dimensions:
        dimension = parse_dimension(label, text)
        if dimension.keys in given:  # the second would silently replace the first
            raise UsageError(f"--sweep {dimension.label} is given twice", hint="one --sweep")
        given.add(dimension.keys)
        found[dimension.keys] = dimension
        for key in dimension.keys:
            written_at.pop(key, None)
    if not found:
        raise UsageError(
            "no sweep dimension: the sweep flags need --sweep KEY VALUES or a __sweep__ section",
            hint="for instance --sweep training.lr 0.1,0.01",
        )
    seen: dict[str, str] = {}
    for dimension in found.values():
        for key in dimension.keys:
            if key in seen:
                raise UsageError(
                    f"key '{key}' is swept by two dimensions: {seen[key]} and {dimension.label}"
                )
            seen[key] = dimension.label
    return tuple(found.values()), written_at


def _positions(total: int, sweep: SweepOptions) -> Sequence[int]:
    """The positions in the product to run: all, or `--sample K` of them (seeded), in order."""
    if sweep.sample is None:
        return range(total)
    if sweep.sample > total:
        raise UsageError(f"--sample {sweep.sample}: the sweep has {total} members only")
    draw = random.Random(sweep.seed)  # noqa: S311 - a reproducible draw, not a secret
    return sorted(draw.sample(range(total), sweep.sample))


def _texts(
    dimensions: Sequence[Dimension], positions: Sequence[int]
) -> Iterator[tuple[tuple[str, str], ...]]:
    """Each position's (key, text) pairs: mixed radix, the first dimension slowest."""
    sizes = [len(dimension.values) for dimension in dimensions]
    for position in positions:
        chosen = []
        rest = position
        for size in reversed(sizes):
            rest, digit = divmod(rest, size)
            chosen.append(digit)
        chosen.reverse()
        yield tuple(
            pair
            for dimension, digit in zip(dimensions, chosen, strict=True)
            for pair in zip(dimension.keys, dimension.values[digit], strict=True)
        )


def _check_repeated(members: Sequence[Member]) -> None:
    """Refuse two members with one resolved config: resume, which knows a member by its
    config's hash, could not tell them apart (Hydra's multirun would run both)."""
    first: dict[str, Member] = {}
    for member in members:
        twin = first.setdefault(member.digest, member)
        if twin is not member:
            raise UsageError(
                f"members {twin.number} and {member.number} are the same run "
                f"({twin.describe()}): a value is repeated in a dimension",
                hint="give each value once",
            )


def _check_shadowed(
    overrides: Sequence[Override], dimensions: Sequence[Dimension], report: Report
) -> None:
    """Warn about an override of a swept key: each member's value replaces it."""
    swept = {key for dimension in dimensions for key in dimension.keys}
    for override in overrides:
        if override.key in swept:
            report.warn(
                "the override is replaced by the sweep's value in every member",
                None,
                override.parts,
                hint=f"drop --{override.key}, or --sweep {override.key} VALUES",
            )


def _check_names(members: Sequence[Member], base: ConfigMapping, report: Report) -> None:
    """Warn (strict: raise) when two members resolve to the same run name."""
    first: dict[str, int] = {}
    clashes: list[tuple[int, int, str]] = []
    for member in members:
        name = member.resolved.run.name
        if name in first:
            clashes.append((first[name], member.number, name))
        else:
            first.setdefault(name, member.number)
    if not clashes:
        return
    section = base.get(RUN_KEY)
    template = str(section.get(NAME_KEY, "")) if isinstance(section, dict) else ""
    keys = [key for key, _ in members[0].texts]
    missing = [key for key in keys if "{" + key + "}" not in template]
    one, other, name = clashes[0]
    message = (
        f"{len(clashes)} members share another member's run name (members {one} and {other}: "
        f"'{name}')"
    )
    if missing:
        message += f": __name__ does not use the swept keys {', '.join(missing)}"
    hint = "add {" + missing[0] + "} to __run__.__name__" if missing else None
    report.warn(message, None, (RUN_KEY, NAME_KEY), hint)
