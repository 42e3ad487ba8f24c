"""A launch, in order: resolve, check the entry point, allocate, snapshot, supervise, record.

Everything that can be wrong with the input is checked before the run folder is created; a
failure while the folder is being prepared removes what was made. Slow recording work (the
frozen requirements, the git state) runs in a thread while the worker runs.
"""

from __future__ import annotations

import _thread
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from expyrun import __version__, console, slurm
from expyrun.errors import ExitCode, RunFolderError, UsageError
from expyrun.run import folder, record, snapshot, supervisor
from expyrun.run.entry import EntryLocation, locate_entry
from expyrun.run.record import RunRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from expyrun.config import Resolved, RunSpec

OUTPUTS_LOG = "outputs.log"
RUN_KEY = "__run__"
# Environment variables the worker gets.
CWD_VARIABLE = "EXPYRUN_CWD"
RUN_DIR_VARIABLE = "EXPYRUN_RUN_DIR"
# 1 for a run's first attempt, n for its n-th (a requeued Slurm job resumes its run folder).
ATTEMPT_VARIABLE = "EXPYRUN_ATTEMPT"
DEFAULT_GRACE_SECONDS = 10.0
# How long the end of a run waits for the recording thread (git on a huge repository), and,
# when Slurm is ending the job (SIGKILL after KillWait), how long it still waits.
RECORDING_TIMEOUT_SECONDS = 60.0
RECORDING_TIMEOUT_IN_ENDING_JOB_SECONDS = 0.5
# Statuses of a run folder that has not run yet.
NOT_STARTED = ("prepared", "pending")


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
    grace_seconds: float | None = None  # None: the default (capped below KillWait in a job)
    detach: bool = False
    slurm: bool = False
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


def resolve_and_check(
    options: LaunchOptions,
    cwd: Path,
    environ: Mapping[str, str] | None = None,
    quiet: bool = False,
) -> tuple[Resolved, EntryLocation]:
    """Resolve the config, print its warnings (unless `quiet`), check the entry point exists."""
    # Imported here, not at the top: PyYAML's import overlaps the worker's start-up.
    from expyrun.config import resolve

    resolved = resolve(
        options.config_path, options.overrides, strict=options.strict, cwd=cwd, environ=environ
    )
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
    options: LaunchOptions, cwd: Path, resolved: Resolved, location: EntryLocation
) -> PreparedRun:
    """Allocate the run folder of a checked config and snapshot it; the record: `prepared`."""
    spec = resolved.run
    past = _read_origin(options.origin) if options.origin else None
    run_dir, created = folder.allocate_run_folder(spec.output_dir, spec.name, options.debug)
    try:
        config_text, raw_text = stored_configs(resolved, run_dir, options.debug)
        snapshot.write_text_file(run_dir / snapshot.CONFIG_FILE, config_text)
        snapshot.write_text_file(run_dir / snapshot.RAW_CONFIG_FILE, raw_text)
        code_copy = None
        if not options.debug and location.in_code_dir:
            code_copy = _copy_code(spec, location, run_dir, _copied_names(past))
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
    spec: RunSpec, location: EntryLocation, run_dir: Path, only: tuple[str, ...] | None
) -> dict[str, Any]:
    """Copy the code into the run folder; print its notes and warnings; the record's entry."""
    copied = snapshot.copy_code(
        spec.code_dir, location.top_level, run_dir, only, spec.code_exclude, spec.output_dir
    )
    for note in copied.notes():
        console.info(note)
    for warning in copied.warnings():
        console.warning(warning)
    return copied.to_record()


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


def snapshot_environment(
    code_dir: Path, run_dirs: Sequence[Path], options: LaunchOptions, git: bool = True
) -> dict[str, Any]:
    """Write frozen_requirements.txt (not in debug mode) and the git state into the run folders.

    Computed once, written into each folder (the tasks of a Slurm array share them). Returns
    the record's `requirements` and `git` fields.
    """
    fields: dict[str, Any] = {}
    if not options.debug:
        from expyrun.run import freeze

        text = frozen_requirements(code_dir, options)
        for run_dir in run_dirs:
            snapshot.write_text_file(run_dir / freeze.FROZEN_REQUIREMENTS_FILE, text)
        fields["requirements"] = freeze.FROZEN_REQUIREMENTS_FILE
    if git:
        state = snapshot.git_state(code_dir, run_dirs[0])
        if state and state.get("diff"):
            diff = (run_dirs[0] / snapshot.GIT_DIFF_FILE).read_bytes()
            for run_dir in run_dirs[1:]:
                (run_dir / snapshot.GIT_DIFF_FILE).write_bytes(diff)
        fields["git"] = state
    return fields


def frozen_requirements(code_dir: Path, options: LaunchOptions) -> str:
    """The worker interpreter's distributions, the run's own code written as comments."""
    from expyrun.run import freeze

    # The code folder, and expyrun's own package: installed from a source tree, both are
    # code a sync must not reinstall.
    own_dirs = [str(code_dir), os.path.dirname(__file__)]
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


class _Recorder:
    """Frozen requirements and git state, gathered in a thread while the worker runs.

    Only for a run folder's first run when nothing took them yet: a `--slurm` submission takes
    them at submit time, and a resumed run keeps those of its first attempt. They describe
    what the run folder was prepared from.
    """

    def __init__(self, prepared: PreparedRun) -> None:
        self._prepared = prepared
        self.fields: dict[str, Any] = {}
        self._done = _thread.allocate_lock()
        self._needed = prepared.record.status == "prepared"

    def start(self) -> None:
        # Not threading.Thread: its start() waits for the thread to run (launch-path time).
        if self._needed:
            self._done.acquire()
            _thread.start_new_thread(self._record, ())

    def join(self, timeout: float = RECORDING_TIMEOUT_SECONDS) -> dict[str, Any]:
        if self._needed and self._done.acquire(timeout=timeout):
            self._done.release()
        return dict(self.fields)

    def _record(self) -> None:
        try:
            self._gather()
        finally:
            self._done.release()

    def _gather(self) -> None:
        prepared = self._prepared
        try:
            self.fields.update(
                snapshot_environment(
                    prepared.resolved.run.code_dir,
                    [prepared.run_dir],
                    prepared.options,
                    git=prepared.options.origin is None,  # else the past run's git state is kept
                )
            )
        except Exception as exc:
            console.warning(f"could not record the environment: {exc}")


def run_prepared(
    prepared: PreparedRun,
    worker: supervisor.Worker,
    terminal: bool = True,
    on_running: Callable[[], None] | None = None,
) -> int:
    """Run a prepared run folder with a started worker, and record how it ended.

    A folder that already ran (a requeued Slurm job) runs a new attempt: outputs.log is
    appended to after a separator line and run.json keeps every attempt. `on_running` is
    called once the record says `running` (a detached launch waits for it).
    """
    spec = prepared.resolved.run
    run_dir = prepared.run_dir
    job = slurm.job_fields(os.environ)
    earlier = record.earlier_attempts(prepared.record, NOT_STARTED)
    attempt = len(earlier) + 1
    grace = _grace_seconds(prepared.options.grace_seconds, job)
    env = {
        CWD_VARIABLE: str(prepared.cwd),
        RUN_DIR_VARIABLE: str(run_dir),
        ATTEMPT_VARIABLE: str(attempt),
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
        "argv": list(prepared.record.command),
        "unbuffered": bool(getattr(sys.__stdout__, "write_through", False)),  # python -u
    }
    if attempt > 1:
        _write_separator(run_dir / OUTPUTS_LOG, attempt, job)
    launch = supervisor.WorkerLaunch(
        payload=payload,
        env=env,
        run_dir=run_dir,
        log_path=run_dir / OUTPUTS_LOG,
        grace_seconds=grace,
        append_log=attempt > 1,
        terminal=terminal,
    )
    recorder = _Recorder(prepared)
    started_at = record.now_iso()
    running: list[RunRecord] = []
    slurm_fields = _slurm_fields(prepared.record.slurm, job)

    def on_started(child_pid: int) -> None:
        current = record.new_attempt(
            prepared.record,
            earlier,
            host=os.uname().nodename,
            pid=os.getpid(),
            pid_started_at=record.process_start_time(os.getpid()),
            child_pid=child_pid,
            started_at=started_at,
            grace_s=grace,
            slurm=slurm_fields,
        )
        record.write_record(run_dir, current)
        running.append(current)
        recorder.start()
        if on_running is not None:
            on_running()

    outcome = supervisor.run(worker, launch, on_started=on_started, say=console.info)
    stopped = outcome.signal in ("SIGTERM", "SIGINT")
    if job is not None and stopped and slurm_fields is not None:
        # Slurm's SIGKILL follows KillWait after its SIGTERM: record now, say why if Slurm knows.
        reason = slurm.end_reason(str(job["job_id"]), job["restart_count"])
        if reason is not None:
            slurm_fields = {**slurm_fields, "end_reason": reason}
    environment = recorder.join(
        RECORDING_TIMEOUT_IN_ENDING_JOB_SECONDS if job and stopped else RECORDING_TIMEOUT_SECONDS
    )
    final = record.end_attempt(
        running[0],
        status=outcome.status,
        ended_at=record.now_iso(),
        duration_s=round(outcome.duration_s, 3),
        exit_code=outcome.exit_code,
        signal=outcome.signal,
        killed_after_grace=outcome.killed_after_grace,
        peak_rss_bytes=outcome.peak_rss_bytes,
        cpu_user_s=round(outcome.cpu_user_s, 3),
        cpu_system_s=round(outcome.cpu_system_s, 3),
        output_bytes=outcome.bytes_logged,
        tracking=outcome.tracking,
        leftover_processes=outcome.leftovers,
        output_lost_bytes=outcome.bytes_lost or None,
        output_lost_since=record.iso_from_epoch(outcome.lost_since) if outcome.lost_since else None,
        slurm=slurm_fields,
        **environment,
    )
    try:
        record.write_record(run_dir, final)
    except record.RecordError as exc:
        console.warning(str(exc))  # the run itself ended as its exit code says
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


def _slurm_fields(
    recorded: dict[str, Any] | None, job: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The record's `slurm` fields for this attempt: the job's, over those taken at submit."""
    if job is None:
        return recorded
    kept = {k: v for k, v in (recorded or {}).items() if k != "end_reason"}
    if isinstance(kept.get("output"), str):
        kept["output"] = slurm.fill_job_id(kept["output"], job)
    return {**kept, **job}


def _grace_seconds(requested: float | None, job: dict[str, Any] | None) -> float:
    """The grace period: `--grace`, else the default, kept below Slurm's KillWait in a job.

    In a job, Slurm SIGKILLs every process KillWait seconds after its SIGTERM (time limit,
    scancel, requeue, preemption): the run must be recorded before that.
    """
    if job is None:
        return DEFAULT_GRACE_SECONDS if requested is None else requested
    kill_wait, problem = slurm.kill_wait_seconds()
    if problem is not None:
        console.warning(f"could not read Slurm's KillWait ({problem}): assuming {kill_wait:g} s")
    if requested is None:
        return slurm.grace_within_kill_wait(kill_wait, DEFAULT_GRACE_SECONDS)
    if requested > slurm.grace_within_kill_wait(kill_wait, requested):
        console.warning(
            f"--grace {requested:g} s does not end before Slurm's KillWait ({kill_wait:g} s): "
            "Slurm may kill the run before expyrun records how it ended"
        )
    return requested


def _write_separator(log_path: Path, attempt: int, job: dict[str, Any] | None) -> None:
    """Mark where a new attempt starts in outputs.log (on a line of its own)."""
    where = os.uname().nodename
    if job is not None:
        where = f"Slurm job {job['job_id']}, restart {job['restart_count']}, on {where}"
    line = f"===== expyrun: attempt {attempt} ({where}) at {record.now_iso()} =====\n"
    fd = os.open(log_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = "\n" + line
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    console.info(line.strip().strip("= ").removeprefix("expyrun: ") + f": {log_path.parent}")


def _check_runnable(run_dir: Path, found: RunRecord) -> None:
    """Refuse to run a folder that ran already, unless this is a requeue of its Slurm job."""
    recorded = found.slurm
    if found.status in NOT_STARTED:
        handle = slurm.job_handle(recorded or {})
        submitted = found.status == "pending" and handle is not None
        if submitted and not slurm.same_job(recorded, slurm.job_fields(os.environ)):
            raise RunFolderError(
                f"the run folder waits for Slurm job {handle}: it runs in that job only",
                path=run_dir,
            )
        return
    if slurm.is_requeue_of(recorded, os.environ):
        return
    raise RunFolderError(f"the run is already {found.status}: a run folder runs once", path=run_dir)


def supervise_run_folder(
    run_dir: Path, terminal: bool, on_running: Callable[[], None] | None = None
) -> int:
    """Run a run folder prepared earlier (by `--detach`, or at `--slurm` submission).

    What to run comes from the folder itself: the record says which entry point, from which
    cwd, in which mode; config.yml, resolved again, gives the same config (its round trip).
    A folder that already ran is run again only by a requeued start of its Slurm job: as a
    new attempt. `terminal`: copy the output to our stdout/stderr (the job's output file).
    """
    from expyrun.config import resolve

    try:
        prepared_record = record.read_record(run_dir)
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"not a prepared run folder: {exc}", path=run_dir) from exc
    _check_runnable(run_dir, prepared_record)
    python = Interpreter(
        prepared_record.python["executable"], prepared_record.python.get("version", "")
    )
    worker = supervisor.spawn_worker(python.executable, detached=not terminal)
    try:
        cwd = Path(prepared_record.cwd)
        resolved = resolve(run_dir / snapshot.CONFIG_FILE, cwd=cwd)
        options = LaunchOptions(
            config_path=str(run_dir / snapshot.CONFIG_FILE),
            debug=prepared_record.debug,
            grace_seconds=prepared_record.grace_s,
            command=tuple(prepared_record.command),
            python=python,
            origin=_origin_from_record(prepared_record),
        )
        prepared = PreparedRun(run_dir, resolved, options, cwd, prepared_record)
    except BaseException:
        supervisor.discard_worker(worker)
        raise
    if terminal:
        console.info(f"run folder: {run_dir}")
    return run_prepared(prepared, worker, terminal=terminal, on_running=on_running)


def _requeued_run_folder(options: LaunchOptions) -> Path | None:
    """In a requeued Slurm job: the run folder an earlier start of the job made, if any."""
    from expyrun.config import resolve

    cwd = Path.cwd()
    resolved = resolve(options.config_path, options.overrides, strict=options.strict, cwd=cwd)
    spec = resolved.run
    parent = folder.name_folder(spec.output_dir, spec.name, options.debug)
    run_dir = slurm.find_requeued_run(parent, os.environ)
    if run_dir is None:
        return None
    try:
        stored = (run_dir / snapshot.CONFIG_FILE).read_text(encoding="utf-8")
    except OSError:
        stored = None
    if stored != stored_configs(resolved, run_dir, options.debug)[0]:
        console.warning(
            f"{options.config_path} now resolves to another config than when the run started: "
            "the resumed run keeps its own config.yml and code copy"
        )
    return run_dir


def launch(options: LaunchOptions) -> int:
    """`expyrun CONFIG ...`: prepare the run folder, then run it here, in the background, or
    in a Slurm job; in a requeued Slurm job, resume the run folder of its earlier start."""
    if options.print_config:
        return print_config(options)
    if options.slurm:
        if options.detach:
            raise UsageError("--slurm and --detach exclude each other: a Slurm job runs apart")
        from expyrun import submit

        return submit.submit(options)
    if options.detach:
        from expyrun import detach

        prepared = prepare(options)
        pid = detach.start_in_background(prepared.run_dir)
        console.info(f"started in the background (supervisor pid {pid})")
        console.info(f"follow it with: expyrun logs -f {prepared.run_dir}")
        console.out(str(prepared.run_dir))
        return ExitCode.OK
    if slurm.restart_count(os.environ) > 0:
        resumed = _requeued_run_folder(options)
        if resumed is not None:
            return supervise_run_folder(resumed, terminal=True)
    # The worker's interpreter starts now and waits: its start-up overlaps the preparation.
    worker = supervisor.spawn_worker(_worker_python(options).executable)
    try:
        prepared = prepare(options)
    except BaseException:
        supervisor.discard_worker(worker)
        raise
    console.info(f"run folder: {prepared.run_dir}")
    return run_prepared(prepared, worker)
