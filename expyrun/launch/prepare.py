"""Prepare a run folder: resolve, check the entry point, allocate, snapshot; record `prepared`.

Everything that can be wrong with the input is checked before the run folder is created; a
failure while the folder is being prepared removes what was made.
"""

import json
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from expyrun import __version__, console
from expyrun.errors import STOP_SIGNALS, ExitCode, RunFolderError
from expyrun.launch.options import REPRODUCES, RERUN_OF, LaunchOptions, SourceRun, SweepInConfig
from expyrun.run import folder, record, snapshot
from expyrun.run.code_copy import copy_code
from expyrun.run.entry import EntryLocation, locate_entry
from expyrun.run.record import RunRecord, Status

if TYPE_CHECKING:
    from expyrun.config import Resolved, RunSpec


class PreparedRun(NamedTuple):
    """A run folder ready to be run: the snapshot is written, the record says `prepared`."""

    run_dir: Path
    resolved: "Resolved"
    options: LaunchOptions
    cwd: Path
    record: RunRecord
    created: tuple[Path, ...] = ()


def stored_configs(resolved: "Resolved", run_dir: Path, debug: bool) -> tuple[str, str]:
    """The texts of config.yml and raw_config.yml for a run in `run_dir`.

    `__output_dir__` becomes the absolute output dir and, outside debug mode, `__code__` the
    run folder, so that launching the stored file again runs the copied code.
    """
    from expyrun.config import dump_config, dump_raw

    config, raw = _stored_mappings(resolved, run_dir, debug)
    return dump_config(config), dump_raw(raw)


def stored_config_json(resolved: "Resolved", run_dir: Path, debug: bool) -> str:
    """The text of config.json: config.yml's values as JSON (dates as ISO text)."""
    config, _ = _stored_mappings(resolved, run_dir, debug)
    return json.dumps(config, default=str, ensure_ascii=False, separators=(",", ":"))


def _stored_mappings(
    resolved: "Resolved", run_dir: Path, debug: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    from expyrun.config.run_section import CODE_KEY, OUTPUT_DIR_KEY, RUN_KEY

    texts = []
    for mapping in (resolved.config, resolved.raw):
        section = mapping.get(RUN_KEY)
        run_section = dict(section) if isinstance(section, dict) else {}
        run_section[OUTPUT_DIR_KEY] = str(resolved.run.output_dir)
        if not debug:
            run_section[CODE_KEY] = str(run_dir)
        elif CODE_KEY in run_section:
            run_section[CODE_KEY] = str(resolved.run.code_dir)
        texts.append({**mapping, RUN_KEY: run_section})
    return texts[0], texts[1]


def resolve_and_check(
    options: LaunchOptions,
    cwd: Path,
    environ: Mapping[str, str] | None = None,
    quiet: bool = False,
) -> "tuple[Resolved, EntryLocation]":
    """Resolve the config, print its warnings (unless `quiet`), check the entry point exists."""
    # Imported here, not at the top: PyYAML's import overlaps the worker's start-up.
    from expyrun.config import resolve
    from expyrun.config.run_section import SWEEP_KEY

    resolved = resolve(
        options.config_path,
        options.overrides,
        strict=options.strict,
        cwd=cwd,
        environ=environ,
        flags=options.flags,
        flags_with_values=options.flags_with_values,
    )
    if SWEEP_KEY in resolved.raw:
        raise SweepInConfig(options.config_path)
    if not quiet:
        for warning in resolved.warnings:
            console.warning(warning)
    spec = resolved.run
    return resolved, locate_entry(spec.entry, spec.module, spec.function, spec.code_dir)


def print_config(options: LaunchOptions) -> int:
    """`--print-config`: the resolved YAML and the run folder it would get; creates nothing."""
    cwd = Path.cwd()
    resolved, _ = resolve_and_check(options, cwd)
    spec = resolved.run
    run_dir = folder.peek_run_folder(spec.output_dir, spec.name, options.debug)
    config_text, _ = stored_configs(resolved, run_dir, options.debug)
    console.out(config_text + f"# run folder: {run_dir}")
    return ExitCode.OK


def prepare(options: LaunchOptions) -> PreparedRun:
    """Resolve, check, allocate and snapshot. Leaves nothing behind when it fails."""
    cwd = Path.cwd()
    resolved, location = resolve_and_check(options, cwd)
    return allocate_and_snapshot(options, cwd, resolved, location)


def allocate_and_snapshot(
    options: LaunchOptions,
    cwd: Path,
    resolved: "Resolved",
    location: EntryLocation,
    warn_paths: bool = True,
) -> PreparedRun:
    """Allocate the run folder of a checked config and snapshot it; the record: `prepared`.

    `warn_paths`: warn about relative paths the run folder lacks (a sweep warns for its
    first member only: the others would repeat it).
    """
    spec = resolved.run
    past = read_source_record(options.source) if options.source else None
    created: list[Path] = []
    # Held back while the folder is made: taken as mkdir returns, a stop signal left a folder
    # without a record that nobody removed. Here it is raised in the try that removes it.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        try:
            run_dir, created = folder.allocate_run_folder(spec.output_dir, spec.name, options.debug)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        config_text, raw_text = stored_configs(resolved, run_dir, options.debug)
        snapshot.write_text_file(run_dir / snapshot.CONFIG_FILE, config_text)
        snapshot.write_text_file(run_dir / snapshot.RAW_CONFIG_FILE, raw_text)
        snapshot.write_text_file(
            run_dir / snapshot.CONFIG_JSON_FILE,
            stored_config_json(resolved, run_dir, options.debug),
        )
        code_copy = None
        if not options.debug and location.in_code_dir:
            code_copy = _copy_code(spec, location, run_dir, _copied_names(past))
        if warn_paths:
            _warn_relative_paths(resolved, cwd, run_dir)
        initial = RunRecord(
            status=Status.PREPARED.value,
            run_dir=str(run_dir),
            name=spec.name,
            entry=spec.entry,
            debug=options.debug,
            command=list(options.command),
            cwd=str(cwd),
            host=os.uname().nodename,
            user=_user(),
            python=options.worker_python._asdict(),
            expyrun_version=__version__,
            code_copy=code_copy,
            grace_s=options.grace_seconds,
            merged_output=options.merged_output,
            tags=options.tags,
            note=options.note or None,
            **_source_fields(options.source),
        )
        if options.source and past:
            git = snapshot.copy_git_state(past.git, options.source.run_dir, run_dir)
            initial = initial.replace(git=git)
        record.write_record(run_dir, initial)
        # In the try: a stop signal can be taken at any call, this one included.
        return PreparedRun(run_dir, resolved, options, cwd, initial, tuple(created))
    except BaseException:
        folder.remove_created(created)
        raise


def _copy_code(
    spec: "RunSpec", location: EntryLocation, run_dir: Path, only: tuple[str, ...] | None
) -> dict[str, Any]:
    """Copy the code into the run folder; print its notes and warnings; the record's entry."""
    copied = copy_code(
        spec.code_dir, location.top_level, run_dir, only, spec.code_exclude, spec.output_dir
    )
    for note in copied.notes():
        console.info(note)
    for warning in copied.warnings():
        console.warning(warning)
    return copied.to_record()


def _warn_relative_paths(resolved: "Resolved", cwd: Path, run_dir: Path) -> None:
    """Warn about values naming a file of the launch directory the run folder lacks."""
    from expyrun.config import relative_path_warnings

    for warning in relative_path_warnings(resolved, cwd, run_dir):
        console.warning(warning)


def _source_fields(source: SourceRun | None) -> dict[str, Any]:
    if source is None:
        return {}
    environment = str(source.environment) if source.environment else None
    return {source.relation: str(source.run_dir), "environment": environment}


def source_from_record(prepared: RunRecord) -> SourceRun | None:
    """The source run a prepared record names (`rerun_of`, `reproduces`), if any."""
    for relation in (REPRODUCES, RERUN_OF):
        past = getattr(prepared, relation)
        if past:
            environment = Path(prepared.environment) if prepared.environment else None
            return SourceRun(relation, Path(past), environment)
    return None


def read_source_record(source: SourceRun) -> RunRecord:
    """The record of the past run a launch comes from."""
    try:
        return record.read_record(source.run_dir)
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"not a run folder: {exc}", path=source.run_dir) from exc


def _copied_names(source: RunRecord | None) -> tuple[str, ...] | None:
    """The top-level names of a past run's code copy (None: copy what the folder holds)."""
    copied = (source.code_copy or {}).get("copied") if source else None
    return tuple(copied) if isinstance(copied, list) else None


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return os.environ.get("USER", str(os.getuid()))
