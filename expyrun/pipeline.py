"""A launch, in order: resolve, check the entry point, allocate, snapshot, supervise, record.

Everything that can be wrong with the input is checked before the run folder is created; a
failure while the folder is being prepared removes what was made. Slow recording work (the
frozen requirements, the git state) runs in a thread while the worker runs.
"""

from __future__ import annotations

import _thread
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from expyrun import __version__, console
from expyrun.errors import ExitCode
from expyrun.run import folder, record, snapshot, supervisor
from expyrun.run.entry import EntryLocation, locate_entry
from expyrun.run.record import RunRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from expyrun.config import Resolved

OUTPUTS_LOG = "outputs.log"
RUN_KEY = "__run__"
# Environment variables the worker gets.
CWD_VARIABLE = "EXPYRUN_CWD"
RUN_DIR_VARIABLE = "EXPYRUN_RUN_DIR"
DEFAULT_GRACE_SECONDS = 10.0
# How long the end of a run waits for the recording thread (git on a huge repository).
RECORDING_TIMEOUT_SECONDS = 60.0


class Interpreter(NamedTuple):
    """A Python interpreter for the worker, as run.json records it."""

    executable: str
    version: str


class Origin(NamedTuple):
    """The past run that `expyrun rerun` or `expyrun reproduce` launches again.

    Its run folder is the code folder of the new run: the new run copies the code copy the
    past run's record lists, and keeps its git state (the code is that copy, not a working
    tree). All three fields are in the new run's record, so a detached supervisor has them.
    """

    relation: str  # the run.json key naming it: "rerun_of" or "reproduces"
    run_dir: Path
    environment: Path | None = None  # `reproduce`: the virtual environment the run uses


class LaunchOptions(NamedTuple):
    """What the command line asked for."""

    config_path: str
    overrides: tuple[str, ...] = ()
    debug: bool = False
    strict: bool = False
    print_config: bool = False
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    detach: bool = False
    command: tuple[str, ...] = ()
    python: Interpreter | None = None  # the worker's interpreter (default: this one)
    origin: Origin | None = None  # the past run this launch runs again


class PreparedRun(NamedTuple):
    """A run folder ready to be run: the snapshot is written, the record says `prepared`."""

    run_dir: Path
    resolved: Resolved
    options: LaunchOptions
    cwd: Path
    record: RunRecord
    created: tuple[Path, ...] = ()


def stored_configs(resolved: Resolved, run_dir: Path, debug: bool) -> tuple[str, str]:
    """The texts of config.yml and raw_config.yml for a run in `run_dir`.

    `__output_dir__` becomes the absolute output dir and, outside debug mode, `__code__` the
    run folder, so that launching the stored file again runs the copied code.
    """
    from expyrun.config import dump_config, dump_raw

    texts = []
    for mapping in (resolved.config, resolved.raw):
        section = mapping.get(RUN_KEY)
        run_section = dict(section) if isinstance(section, dict) else {}
        run_section["__output_dir__"] = str(resolved.run.output_dir)
        if not debug:
            run_section["__code__"] = str(run_dir)
        elif "__code__" in run_section:
            run_section["__code__"] = str(resolved.run.code_dir)
        texts.append({**mapping, RUN_KEY: run_section})
    return dump_config(texts[0]), dump_raw(texts[1])


def resolve_and_check(options: LaunchOptions, cwd: Path) -> tuple[Resolved, EntryLocation]:
    """Resolve the config, print its warnings, and check the entry point exists."""
    # Imported here, not at the top: PyYAML's import overlaps the worker's start-up.
    from expyrun.config import resolve

    resolved = resolve(options.config_path, options.overrides, strict=options.strict, cwd=cwd)
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
    spec = resolved.run
    past = _read_origin(options.origin) if options.origin else None
    run_dir, created = folder.allocate_run_folder(spec.output_dir, spec.name, options.debug)
    try:
        config_text, raw_text = stored_configs(resolved, run_dir, options.debug)
        snapshot.write_text_file(run_dir / snapshot.CONFIG_FILE, config_text)
        snapshot.write_text_file(run_dir / snapshot.RAW_CONFIG_FILE, raw_text)
        code_copy = None
        if not options.debug and location.in_code_dir:
            code_copy = _copy_code(spec.code_dir, location, run_dir, _copied_names(past))
        initial = RunRecord(
            status="prepared",
            run_dir=str(run_dir),
            name=spec.name,
            entry=spec.entry,
            debug=options.debug,
            command=list(options.command),
            cwd=str(cwd),
            host=os.uname().nodename,
            user=_user(),
            python=_worker_python(options)._asdict(),
            expyrun_version=__version__,
            code_copy=code_copy,
            grace_s=options.grace_seconds,
            **_origin_fields(options.origin),
        )
        if options.origin and past:
            git = snapshot.copy_git_state(past.git, options.origin.run_dir, run_dir)
            initial = initial.replace(git=git)
        record.write_record(run_dir, initial)
    except BaseException:
        folder.remove_created(created)
        raise
    return PreparedRun(run_dir, resolved, options, cwd, initial, tuple(created))


def _copy_code(
    code_dir: Path, location: EntryLocation, run_dir: Path, only: tuple[str, ...] | None
) -> dict[str, Any]:
    """Copy the code into the run folder; warn about what looks wrong; the record's entry."""
    copied = snapshot.copy_code(code_dir, location.top_level, run_dir, only)
    for link in copied.skipped_links:
        console.warning(f"{link}: symbolic link to outside the package, not copied")
    if copied.total_bytes > snapshot.LARGE_COPY_BYTES:
        size = copied.total_bytes / 1e6
        console.warning(f"the code copy takes {size:.0f} MB: data inside the package?")
    return {
        "copied": copied.copied,
        "bytes": copied.total_bytes,
        "skipped_links": copied.skipped_links,
    }


def _worker_python(options: LaunchOptions) -> Interpreter:
    return options.python or Interpreter(sys.executable, sys.version.split()[0])


def _origin_fields(origin: Origin | None) -> dict[str, Any]:
    if origin is None:
        return {}
    environment = str(origin.environment) if origin.environment else None
    return {origin.relation: str(origin.run_dir), "environment": environment}


def _origin_from_record(prepared: RunRecord) -> Origin | None:
    for relation in ("reproduces", "rerun_of"):
        past = getattr(prepared, relation)
        if past:
            environment = Path(prepared.environment) if prepared.environment else None
            return Origin(relation, Path(past), environment)
    return None


def _read_origin(origin: Origin) -> RunRecord:
    from expyrun.errors import RunFolderError

    try:
        return record.read_record(origin.run_dir)
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"not a run folder: {exc}", path=origin.run_dir) from exc


def _copied_names(origin: RunRecord | None) -> tuple[str, ...] | None:
    """The top-level names of a past run's code copy (None: copy what the folder holds)."""
    copied = (origin.code_copy or {}).get("copied") if origin else None
    return tuple(copied) if isinstance(copied, list) else None


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return os.environ.get("USER", str(os.getuid()))


class _Recorder:
    """Frozen requirements and git state, gathered in a thread while the worker runs."""

    def __init__(self, prepared: PreparedRun) -> None:
        self._prepared = prepared
        self.fields: dict[str, Any] = {}
        self._done = _thread.allocate_lock()

    def start(self) -> None:
        # Not threading.Thread: its start() waits for the thread to run (launch-path time).
        self._done.acquire()
        _thread.start_new_thread(self._record, ())

    def join(self) -> dict[str, Any]:
        if self._done.acquire(timeout=RECORDING_TIMEOUT_SECONDS):
            self._done.release()
        return dict(self.fields)

    def _record(self) -> None:
        try:
            self._gather()
        finally:
            self._done.release()

    def _gather(self) -> None:
        prepared = self._prepared
        run_dir = prepared.run_dir
        origin = prepared.options.origin
        try:
            if not prepared.options.debug:
                from expyrun.run import freeze

                text = self._frozen_requirements()
                snapshot.write_text_file(run_dir / freeze.FROZEN_REQUIREMENTS_FILE, text)
                self.fields["requirements"] = freeze.FROZEN_REQUIREMENTS_FILE
            if origin is None:  # else the record has the past run's git state already
                self.fields["git"] = snapshot.git_state(prepared.resolved.run.code_dir, run_dir)
        except Exception as exc:
            console.warning(f"could not record the environment: {exc}")

    def _frozen_requirements(self) -> str:
        """The worker interpreter's distributions, the run's own code written as comments."""
        from expyrun.run import freeze

        options = self._prepared.options
        # The code folder, and expyrun's own package: installed from a source tree, both are
        # code a sync must not reinstall.
        own_dirs = [str(self._prepared.resolved.run.code_dir), os.path.dirname(__file__)]
        own_names = set()
        if options.origin:  # the past run's own code is this run's own code too
            past = options.origin.run_dir / freeze.FROZEN_REQUIREMENTS_FILE
            if past.is_file():
                requirements = freeze.parse_requirements(past.read_text(encoding="utf-8"))[0]
                own_names = {r.key for r in requirements if r.own_code}
        python = _worker_python(options).executable
        if python == sys.executable:
            return freeze.frozen_requirements(own_code=own_names, own_code_dirs=own_dirs)
        # Another interpreter (a reproduced run's environment): freeze.py runs in it.
        return freeze.frozen_requirements_of(python, own_dirs, own_names)


def run_prepared(
    prepared: PreparedRun,
    worker: supervisor.Worker,
    terminal: bool = True,
    on_running: Callable[[], None] | None = None,
) -> int:
    """Run a prepared run folder with a started worker, and record how it ended.

    `on_running` is called once the record says `running` (a detached launch waits for it).
    """
    spec = prepared.resolved.run
    run_dir = prepared.run_dir
    run_id = os.urandom(16).hex()
    env = {
        CWD_VARIABLE: str(prepared.cwd),
        RUN_DIR_VARIABLE: str(run_dir),
        supervisor.worker_module.RUN_ID_VARIABLE: run_id,
        **_environment_variables(prepared.options.origin),
    }
    code_path = spec.code_dir if prepared.options.debug else run_dir
    payload = {
        "entry": spec.entry,
        "module": spec.module,
        "function": spec.function,
        "name": spec.name,
        "config": prepared.resolved.entry_config,
        "sys_path": [str(code_path)],
        "run_dir": str(run_dir),
        "stdout_isatty": terminal and os.isatty(1),
        "stderr_isatty": terminal and os.isatty(2),
        "encoding": "utf-8",
    }
    launch = supervisor.WorkerLaunch(
        payload=payload,
        env=env,
        run_dir=run_dir,
        log_path=run_dir / OUTPUTS_LOG,
        run_id=run_id,
        grace_seconds=prepared.options.grace_seconds,
        terminal=terminal,
    )
    recorder = _Recorder(prepared)
    started_at = record.now_iso()
    started = time.monotonic()
    running: list[RunRecord] = []

    def on_started(child_pid: int) -> None:
        current = prepared.record.replace(
            status="running",
            pid=os.getpid(),
            pid_started_at=record.process_start_time(os.getpid()),
            child_pid=child_pid,
            started_at=started_at,
            slurm=_slurm_fields(),
        )
        record.write_record(run_dir, current)
        running.append(current)
        recorder.start()
        if on_running is not None:
            on_running()

    outcome = supervisor.run(worker, launch, on_started=on_started, say=console.info)
    final = running[0].replace(
        status=outcome.status,
        ended_at=record.now_iso(),
        duration_s=round(time.monotonic() - started, 3),
        exit_code=outcome.exit_code,
        signal=outcome.signal,
        killed_after_grace=outcome.killed_after_grace,
        peak_rss_bytes=outcome.peak_rss_bytes,
        cpu_user_s=round(outcome.cpu_user_s, 3),
        cpu_system_s=round(outcome.cpu_system_s, 3),
        output_bytes=outcome.bytes_logged,
        **recorder.join(),
    )
    record.write_record(run_dir, final)
    return outcome.exit_code


def _environment_variables(origin: Origin | None) -> dict[str, str]:
    """A reproduced run's virtual environment, as activated: `python` and its tools come first."""
    if origin is None or origin.environment is None:
        return {}
    bin_dir = str(origin.environment / "bin")
    path = os.environ.get("PATH")
    return {
        "VIRTUAL_ENV": str(origin.environment),
        "PATH": f"{bin_dir}{os.pathsep}{path}" if path else bin_dir,
    }


def _slurm_fields() -> dict[str, Any] | None:
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return None
    names = {
        "job_id": "SLURM_JOB_ID",
        "array_job_id": "SLURM_ARRAY_JOB_ID",
        "array_task_id": "SLURM_ARRAY_TASK_ID",
        "node_list": "SLURM_JOB_NODELIST",
        "partition": "SLURM_JOB_PARTITION",
        "restart_count": "SLURM_RESTART_COUNT",
    }
    return {key: os.environ.get(variable) for key, variable in names.items()}


def supervise_run_folder(
    run_dir: Path, detached: bool, on_running: Callable[[], None] | None = None
) -> int:
    """Run a run folder prepared earlier (by `--detach`, or at `--slurm` submission).

    What to run comes from the folder itself: the record says which entry point, from which
    cwd, in which mode; config.yml, resolved again, gives the same config (its round trip).
    """
    from expyrun.config import resolve
    from expyrun.errors import RunFolderError

    try:
        prepared_record = record.read_record(run_dir)
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"not a prepared run folder: {exc}", path=run_dir) from exc
    if prepared_record.status not in ("prepared", "pending"):
        raise RunFolderError(
            f"the run is already {prepared_record.status}: a run folder runs once",
            path=run_dir,
        )
    python = Interpreter(
        prepared_record.python["executable"], prepared_record.python.get("version", "")
    )
    worker = supervisor.spawn_worker(python.executable, detached=detached)
    try:
        cwd = Path(prepared_record.cwd)
        resolved = resolve(run_dir / snapshot.CONFIG_FILE, cwd=cwd)
        options = LaunchOptions(
            config_path=str(run_dir / snapshot.CONFIG_FILE),
            debug=prepared_record.debug,
            grace_seconds=prepared_record.grace_s or DEFAULT_GRACE_SECONDS,
            command=tuple(prepared_record.command),
            python=python,
            origin=_origin_from_record(prepared_record),
        )
        prepared = PreparedRun(run_dir, resolved, options, cwd, prepared_record)
    except BaseException:
        supervisor.discard_worker(worker)
        raise
    return run_prepared(prepared, worker, terminal=not detached, on_running=on_running)


def launch(options: LaunchOptions) -> int:
    """`expyrun CONFIG ...`: prepare the run folder, then run it here or in the background."""
    if options.print_config:
        return print_config(options)
    if options.detach:
        from expyrun import detach

        prepared = prepare(options)
        pid = detach.start_in_background(prepared.run_dir)
        console.info(f"started in the background (supervisor pid {pid})")
        console.info(f"follow it with: expyrun logs -f {prepared.run_dir}")
        console.out(str(prepared.run_dir))
        return ExitCode.OK
    # The worker's interpreter starts now and waits: its start-up overlaps the preparation.
    worker = supervisor.spawn_worker(_worker_python(options).executable)
    try:
        prepared = prepare(options)
    except BaseException:
        supervisor.discard_worker(worker)
        raise
    console.info(f"run folder: {prepared.run_dir}")
    return run_prepared(prepared, worker)
