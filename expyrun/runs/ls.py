"""`expyrun ls`: the runs under output folders, newest first, as a table or JSON.

Columns and filters come from `runs/fields.py` (what a key names) and `runs/query.py` (the
`--where` grammar). A run's config is read only when a key needs it (`--keys`, `--where`,
`--sort` on a config key, `--changed`, `--json`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from expyrun import console
from expyrun.errors import ExitCode, RunFolderError, UsageError
from expyrun.run.record import Status
from expyrun.runs.fields import (
    COMPUTED_FIELDS,
    RECORD_FIELDS,
    ListedRun,
    changed_keys,
    first_with,
    is_config_key,
    known_keys,
)
from expyrun.runs.query import MISSING, Where, parse_sort, parse_where, sort_key, value_text
from expyrun.runs.reading import (
    UNREADABLE,
    find_run_folders,
    load_json,
    load_json_checked,
    status_of_json,
)
from expyrun.runs.text import duration, short_time, size, timestamp
from expyrun.slurm import commands as slurm_commands

_SUMMARY_KEYS = (
    "name",
    "entry",
    "started_at",
    "ended_at",
    "duration_s",
    "exit_code",
    "signal",
    "error",
    "peak_rss_bytes",
    "host",
    "pid",
    "slurm",
    "attempts",
    "problem",
    "error",
    "tags",
    "note",
    "stop_request",
    "result",
)
_HEADER = ("RUN", "STATUS", "STARTED", "DURATION", "EXIT", "PEAK MEM")


@dataclass(frozen=True)
class View:
    """What `ls` shows of the runs it finds: extra columns, a filter, an order, a count."""

    keys: tuple[str, ...] = ()
    where: str | None = None
    sort: str | None = None  # KEY ascending, -KEY descending
    last: int | None = None  # the N newest (before --sort orders them)
    changed: bool = False  # add the config keys whose values differ between the runs


def list_runs(
    paths: Sequence[str],
    as_json: bool,
    statuses: Sequence[str] = (),
    view: View = View(),
    config: str | None = None,
) -> int:
    """Print the runs under `paths` (default: the current folder; with `config`, its output
    dir), newest first, shaped by `view` (only those with one of `statuses`, if any).

    Raises:
        RunFolderError: a path is not a folder.
        QueryError: `view.where` does not parse, or names a key no run has.
        UsageError: a key of --keys or --sort that no run has; bad --last.
        ConfigError: `config` does not resolve.
    """
    where = parse_where(view.where) if view.where else None
    sort = parse_sort(view.sort) if view.sort else None
    if view.last is not None and view.last < 1:
        raise UsageError(f"--last: expected a positive count, got {view.last}")
    roots = search_roots(paths, config, "ls")
    runs = find_runs(roots, missing_ok=config is not None)
    found_any = bool(runs)
    check_keys(
        runs, [*(("--keys", k) for k in view.keys), *([("--sort", sort[0])] if sort else [])], where
    )
    if statuses:
        runs = [run for run in runs if run.status in statuses]
    if where is not None:
        runs = [run for run in runs if where.matches(run.value)]
    if view.last is not None:
        runs = runs[: view.last]
    if sort is not None:
        key, descending = sort
        present = [run for run in runs if run.value(key) is not MISSING]
        present.sort(key=lambda run: sort_key(run.value(key)), reverse=descending)
        runs = present + [run for run in runs if run.value(key) is MISSING]
    keys = list(dict.fromkeys([*view.keys, *(changed_keys(runs) if view.changed else [])]))
    if as_json:
        console.out(json.dumps([_summary(run, keys) for run in runs], indent=2, default=str))
    else:
        console.out(_table(runs, keys))
    if not found_any and not paths:
        console.info(no_run_hint(roots[0], config))
    return ExitCode.OK


def search_roots(paths: Sequence[str], config: str | None, command: str) -> list[str]:
    """The folders to search: `paths`, the output dir of `config`, or the current folder.

    Raises:
        UsageError: both paths and a config.
        ConfigError: the config does not resolve.
    """
    if paths and config:
        raise UsageError("pass PATHs or --config, not both", hint=f"see expyrun {command} --help")
    return list(paths) or ([str(config_output_dir(config))] if config else ["."])


def config_output_dir(config: str) -> Path:
    """The output dir of a config, resolved as a launch of it from here would resolve it.

    Raises:
        ConfigError: the config does not resolve.
    """
    from expyrun.config import resolve

    return resolve(config).run.output_dir


def find_runs(paths: Sequence[str], missing_ok: bool = False) -> list[ListedRun]:
    """The runs under `paths`, newest first, their effective status (Slurm asked about the
    pending ones, once); an unreadable record is a run with status `unreadable`.

    Raises:
        RunFolderError: a path is not a folder (unless `missing_ok` and it does not exist).
    """
    here = os.getcwd() + os.sep
    runs = []
    for path in paths:
        if not os.path.isdir(path):
            if missing_ok and not os.path.exists(path):
                continue
            raise RunFolderError("no such folder", path=path)
        for run_dir in find_run_folders(os.path.abspath(path)):
            shown = run_dir[len(here) :] if run_dir.startswith(here) else run_dir
            data, problem = load_json_checked(run_dir)
            if problem is not None:
                console.warning(f"{run_dir}: unreadable record: {problem}")
                runs.append(ListedRun(run_dir, {"problem": problem}, UNREADABLE, shown))
                continue
            runs.append(ListedRun(run_dir, data, status_of_json(data), shown))
    ask_slurm_about_pending(runs)
    runs.sort(key=lambda run: timestamp(_start_or_submit_time(run.data)), reverse=True)
    return runs


def check_keys(runs: list[ListedRun], keys: Sequence[tuple[str, str]], where: Where | None) -> None:
    """Refuse a key that no run has (with the closest keys runs have as a hint).

    Record fields are always known; a config key is looked up run after run until one has
    it, so a known key costs one config read.

    Args:
        keys: (option, key) pairs: `("--keys", "training.lr")`, `("--sort", "result.acc")`.

    Raises:
        QueryError: a key of `where`.
        UsageError: a key of `keys`.
    """
    if not runs:
        return
    wanted = list(keys)
    if where is not None:
        wanted += [(where.option, key) for key in where.key_names()]
    for option, key in dict.fromkeys(wanted):
        if key in RECORD_FIELDS or key in COMPUTED_FIELDS or first_with(runs, key) is not None:
            continue
        candidates = known_keys(runs, config=is_config_key(key))
        if where is not None and option == where.option:
            raise where.unknown_key(key, candidates)
        import difflib

        close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.6)
        raise UsageError(
            f"{option}: unknown key '{key}': no run listed has it",
            hint="did you mean " + " or ".join(f"'{k}'" for k in close) + "?" if close else None,
        )


def no_run_hint(root: str, config: str | None) -> str:
    """The line `ls` prints when it finds no run: where runs may be instead."""
    if config is not None:
        return f"no run yet under {root}, the output dir of {config}"
    found = _output_dirs_of_configs_here()
    if found:
        shown = " or ".join(found[:3])
        return f"no run under {root}; the configs here write to {shown}: expyrun ls {found[0]}"
    return (
        f"no run under {root}: pass the folder of the runs (expyrun ls OUTPUT_DIR) or the "
        "config that made them (expyrun ls --config CONFIG)"
    )


# At most this many YAML files of the current folder are resolved to find their output dirs.
_HINT_CONFIGS = 40


def _output_dirs_of_configs_here() -> list[str]:
    """The output dirs (relative when below ..) of the configs in . and ./configs that hold
    runs: resolved as a launch from here would resolve them; broken configs are skipped."""
    from expyrun.config import resolve
    from expyrun.errors import ExpyrunError

    candidates = []
    for folder in (".", "configs", "config"):
        for top, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if not d.startswith(".")] if folder != "." else []
            yamls = [f for f in sorted(files) if f.endswith((".yml", ".yaml"))]
            candidates += [os.path.join(top, f) for f in yamls]
    found: dict[str, None] = {}
    for path in candidates[:_HINT_CONFIGS]:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                if "__run__" not in f.read(1 << 16):
                    continue
            output_dir = resolve(path).run.output_dir
        except (ExpyrunError, OSError):
            continue
        if next(find_run_folders(str(output_dir)), None) is not None:
            found[os.path.relpath(output_dir)] = None
    return list(found)


def ask_slurm_about_pending(runs: list[ListedRun]) -> None:
    """Set the status of each `pending` run to Slurm's word on its job, one squeue for all."""
    handles = {}
    for i, run in enumerate(runs):
        fields = run.data.get("slurm")
        if run.status == Status.PENDING and isinstance(fields, dict):
            handle = slurm_commands.job_handle(fields)
            if handle is not None:
                handles[i] = handle
    if not handles:
        return
    states = slurm_commands.job_states(sorted(set(handles.values())))
    if states is None:
        return  # Slurm cannot be asked from here: the records say pending
    for i, handle in handles.items():
        run = runs[i]
        status: str = slurm_commands.pending_status(states.get(handle)).value
        if status != Status.PENDING:
            # The job may have started and ended since the record was read: read it again.
            fresh = load_json(run.path)
            if fresh is not None and fresh.get("status") != Status.PENDING:
                run.data, status = fresh, status_of_json(fresh)
        run.status = status


def _start_or_submit_time(data: dict[str, Any]) -> str | None:
    fields = data.get("slurm")
    submitted = fields.get("submitted_at") if isinstance(fields, dict) else None
    return data.get("started_at") or submitted


def _summary(run: ListedRun, keys: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {"run_dir": run.path, "status": run.status}
    summary.update({k: run.data.get(k) for k in _SUMMARY_KEYS})
    summary["config"] = run.config
    if keys:
        values = {key: run.value(key) for key in keys}
        summary["values"] = {k: None if v is MISSING else v for k, v in values.items()}
    return summary


def cell(key: str, value: object) -> str:
    """A value in a table cell, on one line: `-` when missing (or no tags), tags joined by
    commas, other values as `value_text` writes them."""
    if value is MISSING or (key in ("tags", "tag") and value == []):
        return "-"
    if key in ("tags", "tag") and isinstance(value, list):
        return ",".join(str(item) for item in value)
    return value_text(value).replace("\n", " ")


def _table(runs: list[ListedRun], keys: list[str]) -> str:
    cells: list[tuple[str, ...]] = [(*_HEADER, *keys)]
    for run in runs:
        data, status = run.data, run.status
        code = data.get("exit_code")
        cells.append(
            (
                run.shown,
                status,
                short_time(data.get("started_at")),
                duration(data.get("duration_s"), data.get("started_at"), status),
                "" if code is None else str(code),
                size(data.get("peak_rss_bytes")),
                *(cell(key, run.value(key)) for key in keys),
            )
        )
    return format_table(cells)


def format_table(cells: Sequence[Sequence[str]]) -> str:
    """Rows of cells as left-aligned columns two spaces apart (the first row: the header)."""
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )
