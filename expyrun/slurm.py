"""Slurm: a job's environment as record fields, sbatch scripts, and calls to Slurm's commands.

expyrun fits Slurm, it never replaces it: inside a job it records where it runs and resumes a
requeued job in its run folder; `expyrun CONFIG --slurm` renders a batch script that runs a
run folder prepared at submit time. Every Slurm command goes through `call`, which uses the
`_command` door: an argument list, no shell, a timeout, and a one-line `SlurmError` (exit 69)
when it fails.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from expyrun.errors import ConfigError, SlurmError

JOB_ID_VARIABLE = "SLURM_JOB_ID"
RESTART_COUNT_VARIABLE = "SLURM_RESTART_COUNT"
ARRAY_JOB_ID_VARIABLE = "SLURM_ARRAY_JOB_ID"
ARRAY_TASK_ID_VARIABLE = "SLURM_ARRAY_TASK_ID"
# Record field -> the variable Slurm sets in a job's environment (sbatch(1), OUTPUT ENVIRONMENT).
JOB_VARIABLES = {
    "job_id": JOB_ID_VARIABLE,
    "job_name": "SLURM_JOB_NAME",
    "array_job_id": ARRAY_JOB_ID_VARIABLE,
    "array_task_id": ARRAY_TASK_ID_VARIABLE,
    "node_list": "SLURM_JOB_NODELIST",
    "partition": "SLURM_JOB_PARTITION",
    "restart_count": RESTART_COUNT_VARIABLE,
}
# The config key whose mapping gives sbatch options, inside `__run__`.
SLURM_KEY = "__slurm__"
SCRIPT_FILE = "slurm.sbatch"
# How long a Slurm command may take. slurmctld answers in milliseconds; a busy one in seconds.
COMMAND_TIMEOUT_SECONDS = 30.0
# Slurm's own default KillWait (slurm.conf(5)), assumed when `scontrol show config` fails.
DEFAULT_KILL_WAIT_SECONDS = 30.0
# Inside a job, the grace period ends this long before Slurm's SIGKILL: enough to kill the
# run's processes, read the pipes to their end and write run.json (well under a second), and
# to ask Slurm why the job is ending (bounded by REASON_TIMEOUT_SECONDS).
KILL_WAIT_MARGIN_SECONDS = 2.0
MIN_GRACE_SECONDS = 0.5
REASON_TIMEOUT_SECONDS = 1.0
# The record's `end_reason` for an attempt ended by a requeue (Slurm's Reason says nothing).
REQUEUED_REASON = "Requeued"
# sbatch options a submission cannot take: they would break it or the run folder. Why, and
# what to do instead.
REFUSED_OPTIONS = {
    "parsable": "expyrun reads the job id itself",
    "wait": "the submission returns once the job is queued; follow it with `expyrun logs -f`",
    "test-only": "with hold: true the job waits; its script is slurm.sbatch in the run folder",
    "wrap": "the job runs the run folder prepared at submit time",
}
# The one-letter names of refused options (sbatch(1): -W is --wait).
_SHORT_NAMES = {"W": "wait"}
# `key: false` leaves an option out, except where expyrun sets the option by default: there
# it says the opposite (`requeue: false` is --no-requeue, not expyrun's --requeue).
NEGATED_FLAGS = {"requeue": "no-requeue"}
_OPTION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_ARRAY_RANGE = re.compile(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$")


# --- inside a job -----------------------------------------------------------------------------


def job_fields(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """The record's `slurm` fields from a job's environment; None outside a job."""
    if not environ.get(JOB_ID_VARIABLE):
        return None
    fields: dict[str, Any] = {key: environ.get(name) for key, name in JOB_VARIABLES.items()}
    fields["restart_count"] = restart_count(environ)
    return fields


def restart_count(environ: Mapping[str, str]) -> int:
    """How many times Slurm requeued this job (0 outside a job or on its first start)."""
    try:
        return int(environ.get(RESTART_COUNT_VARIABLE) or 0)
    except ValueError:
        return 0


def recorded_restart_count(fields: Mapping[str, Any] | None) -> int:
    """The restart count a record's `slurm` fields hold (0 when absent)."""
    try:
        return int((fields or {}).get("restart_count") or 0)
    except (TypeError, ValueError):
        return 0


def same_job(recorded: Mapping[str, Any] | None, current: Mapping[str, Any] | None) -> bool:
    """Whether two `slurm` field sets name the same job (for an array: the same task)."""
    if not recorded or not current:
        return False
    if recorded.get("array_task_id") is not None or current.get("array_task_id") is not None:
        return _text(recorded.get("array_job_id")) == _text(current.get("array_job_id")) and (
            _text(recorded.get("array_task_id")) == _text(current.get("array_task_id"))
        )
    return _text(recorded.get("job_id")) == _text(current.get("job_id"))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def is_requeue_of(recorded: Mapping[str, Any] | None, environ: Mapping[str, str]) -> bool:
    """Whether this process is a later start of the job that wrote the record (a requeue)."""
    current = job_fields(environ)
    return same_job(recorded, current) and restart_count(environ) > recorded_restart_count(recorded)


def fill_job_id(output: str, fields: Mapping[str, Any]) -> str:
    """The job's output file: `%j` of the path recorded at submit is this job's id (an array
    task's own id is only known once it runs)."""
    return output.replace("%j", str(fields.get("job_id")))


def grace_within_kill_wait(kill_wait: float, requested: float) -> float:
    """The grace period that ends `KILL_WAIT_MARGIN_SECONDS` before Slurm's SIGKILL."""
    return max(MIN_GRACE_SECONDS, min(requested, kill_wait - KILL_WAIT_MARGIN_SECONDS))


_kill_wait: float | None = None


def kill_wait_seconds() -> tuple[float, str | None]:
    """Slurm's KillWait (SIGTERM -> SIGKILL) from `scontrol show config`, read once.

    Returns the value and, when it could not be read, why (the default is then assumed).
    """
    global _kill_wait
    if _kill_wait is not None:
        return _kill_wait, None
    try:
        text = call(["scontrol", "show", "config"], timeout=5)
    except SlurmError as exc:
        return DEFAULT_KILL_WAIT_SECONDS, str(exc)
    value = parse_kill_wait(text)
    if value is None:
        return DEFAULT_KILL_WAIT_SECONDS, "no KillWait in `scontrol show config`"
    _kill_wait = value
    return value, None


def parse_kill_wait(config_text: str) -> float | None:
    """KillWait in seconds from `scontrol show config` output (`KillWait = 30 sec`)."""
    match = re.search(r"^KillWait\s*=\s*(\d+)", config_text, re.MULTILINE)
    return float(match.group(1)) if match else None


def end_reason(job_id: str, restart_count: int = 0) -> str | None:
    """Why Slurm is ending a job, asked while it ends; None when it does not say."""
    try:
        text = call(["scontrol", "show", "job", "-o", job_id], timeout=REASON_TIMEOUT_SECONDS)
    except SlurmError:
        return None
    return parse_end_reason(text, restart_count)


def parse_end_reason(job_text: str, restart_count: int) -> str | None:
    """Why a job ends, from `scontrol show job -o` while it ends; None when it does not say.

    Its Reason (`TimeLimit`, ...), else `Requeued` when its restart count is already above
    this start's (`restart_count`): a requeue (`scontrol requeue`, preemption) says nothing in
    Reason, but Slurm counts the restart before it signals the job. `scancel` leaves no trace.
    """
    match = re.search(r"(?:^|\s)Reason=(\S+)", job_text)
    if match is not None and match.group(1) != "None":
        return match.group(1)
    restarts = re.search(r"(?:^|\s)Restarts=(\d+)", job_text)
    if restarts is not None and int(restarts.group(1)) > restart_count:
        return REQUEUED_REASON
    return None


# --- commands ---------------------------------------------------------------------------------


def call(argv: Sequence[str], timeout: float = COMMAND_TIMEOUT_SECONDS) -> str:
    """Run one Slurm command (no shell, stdin closed) and return its stdout.

    Raises SlurmError with one line: the command is missing, timed out, or failed (then what it
    said last on stderr, e.g. `Batch job submission failed: Invalid partition name specified`).
    """
    from expyrun import _command

    done = _command.run(
        argv, timeout=timeout, error=SlurmError, missing_hint="is Slurm installed on this machine?"
    )
    return done.stdout


def submit(script: Path, hold: bool) -> str:
    """`sbatch --parsable [--hold] SCRIPT` (options are in the script); return the job id."""
    argv = ["sbatch", "--parsable"]
    if hold:
        argv.append("--hold")
    out = call([*argv, str(script)])
    job_id = out.strip().splitlines()[0].split(";")[0].strip() if out.strip() else ""
    if not job_id.isdigit():
        raise SlurmError(f"sbatch printed no job id: {out.strip()!r}")
    return job_id


def release(job_id: str) -> None:
    """`scontrol release JOB`: let a held job start."""
    call(["scontrol", "release", job_id])


def cancel(job: str, signal_name: str | None = None, batch: bool = False) -> None:
    """`scancel [--signal=S] [--batch] JOB` (JOB: an id, or ARRAY_TASK for one array task)."""
    argv = ["scancel"]
    if signal_name is not None:
        argv.append(f"--signal={signal_name}")
    if batch:
        argv.append("--batch")
    call([*argv, job])


def job_states(jobs: Sequence[str], timeout: float = 10.0) -> dict[str, str] | None:
    """Slurm's state of each job (`PENDING`, `CANCELLED`, ...), one `squeue` for all.

    JOB is an id, or ARRAY_TASK for an array task. A job Slurm no longer knows (it forgets
    ended jobs after MinJobAge) is absent from the answer. None: Slurm could not be asked.
    """
    if not jobs:
        return {}
    argv = ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T"]
    try:
        out = call([*argv, "--jobs=" + ",".join(jobs)], timeout=timeout)
    except SlurmError as exc:
        if "Invalid job id" in str(exc):
            return {}  # squeue fails when it knows none of the jobs
        return None
    states = {}
    for line in out.splitlines():
        job, _, state = line.strip().partition("|")
        if job and state:
            states[job] = state
    return states


def job_handle(fields: Mapping[str, Any]) -> str | None:
    """What scancel and squeue take for a recorded job: `ID`, or `ARRAYID_TASK` for a task."""
    if fields.get("array_task_id") is not None and fields.get("array_job_id") is not None:
        return f"{fields['array_job_id']}_{fields['array_task_id']}"
    job = fields.get("job_id")
    return None if job is None else str(job)


# --- sbatch options and scripts ---------------------------------------------------------------


def sbatch_options(mapping: Mapping[str, Any] | None) -> list[tuple[str, str | None]]:
    """`__run__.__slurm__` as sbatch options: (name, value), value None for a flag.

    `key: value` gives `--key=value`, `true` a flag `--key`, `false` and null nothing (a child
    config removes an inherited option with null; `requeue: false` is `--no-requeue`, see
    NEGATED_FLAGS). `_` in a key becomes `-`
    (`cpus_per_task` is `--cpus-per-task`); one-letter keys are short options (`p: debug` is
    `-p debug`). Anything else is passed to sbatch as it is.
    """
    options: list[tuple[str, str | None]] = []
    for key, value in (mapping or {}).items():
        where = f"__run__.{SLURM_KEY}.{key}"
        name = str(key)
        if not _OPTION_NAME.match(name):
            raise ConfigError("not an sbatch option name", key=where)
        name = name.replace("_", "-") if len(name) > 1 else name
        refused = _SHORT_NAMES.get(name, name)
        if refused in REFUSED_OPTIONS:
            hint = REFUSED_OPTIONS[refused]
            raise ConfigError(
                f"--{refused} cannot be given to a --slurm submission", key=where, hint=hint
            )
        if value is False and name in NEGATED_FLAGS:
            options.append((NEGATED_FLAGS[name], None))
            continue
        if value is None or value is False:
            continue
        if value is True:
            options.append((name, None))
            continue
        options.append((name, _option_value(value, where)))
    return options


def _option_value(value: Any, where: str) -> str:
    # A single value: the config engine refuses lists and mappings in `__slurm__`.
    text = str(value)
    if any(char in text for char in '"\n\r\0'):
        raise ConfigError("an sbatch option value cannot hold quotes or line breaks", key=where)
    if not text:
        raise ConfigError("empty sbatch option value (use null to leave the option out)", key=where)
    return text


def option_value(options: Sequence[tuple[str, str | None]], *names: str) -> str | None:
    """The value of the last option named one of `names` ('' for a flag), None when absent."""
    found = None
    for name, value in options:
        if name in names:
            found = "" if value is None else value
    return found


def option_line(name: str, value: str | None) -> str:
    """One `#SBATCH` line, whose value sbatch reads back as it is.

    sbatch splits these lines itself (`_get_argument` in Slurm's src/sbatch/opt.c): spaces
    separate, `'` and `"` quote, `#` starts a comment, `\\` escapes the next character, inside
    quotes too. A value holding any of these is double-quoted, its `\\` and `"` escaped.
    """
    if value is not None and any(char.isspace() or char in "#'\"\\" for char in value):
        value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if len(name) == 1:
        return f"#SBATCH -{name}" + ("" if value is None else f" {value}")
    return f"#SBATCH --{name}" + ("" if value is None else f"={value}")


def array_task_ids(spec: str) -> list[int]:
    """The task ids of an `--array` spec: `0-3`, `1,3,5-7`, `0-15:4`, `0-99%10`."""
    indexes = spec.split("%", 1)[0]
    ids: set[int] = set()
    for part in indexes.split(","):
        match = _ARRAY_RANGE.match(part.strip())
        if match is None:
            raise ConfigError(
                f"'{spec}' is not an array spec (like 0-3, 1,3,5-7, 0-15:4 or 0-99%10)",
                key=f"__run__.{SLURM_KEY}.array",
            )
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        step = int(match.group(3)) if match.group(3) is not None else 1
        if last < first or step < 1:
            raise ConfigError(f"empty array range '{part}'", key=f"__run__.{SLURM_KEY}.array")
        ids.update(range(first, last + 1, step))
    return sorted(ids)


def array_environ(task_id: int, task_ids: Sequence[int]) -> dict[str, str]:
    """The array variables a task will see, to resolve its config at submit time."""
    return {
        ARRAY_TASK_ID_VARIABLE: str(task_id),
        "SLURM_ARRAY_TASK_COUNT": str(len(task_ids)),
        "SLURM_ARRAY_TASK_MIN": str(min(task_ids)),
        "SLURM_ARRAY_TASK_MAX": str(max(task_ids)),
    }


def render_script(
    python: str,
    run_dirs: Mapping[int | None, Path],
    options: Sequence[tuple[str, str | None]],
    command: Sequence[str],
    version: str,
) -> str:
    """The batch script of a `--slurm` submission.

    Args:
        python: the interpreter that runs `expyrun _supervise` in the job.
        run_dirs: the prepared run folder of each array task, or `{None: folder}`.
        options: every sbatch option, in order (`#SBATCH` lines; later ones win).
        command: the expyrun command line, for the reader.
    """
    import shlex

    lines = [
        "#!/bin/bash",
        f"# Written by expyrun {version} at submit time for:",
        # A line break in an argument must not end the comments: sbatch reads #SBATCH lines
        # up to the first command only, and bash would run the rest of the argument.
        "#   " + shlex.join(command).replace("\n", "\n#   "),
        "# The job runs the run folder prepared then (config, code copy, requirements): edits",
        "# made after the submission do not reach it. expyrun is the batch task (exec), so",
        "# Slurm's signals reach it; a requeued job resumes in the same run folder.",
        *(option_line(name, value) for name, value in options),
    ]
    run = [python, "-m", "expyrun", "_supervise"]
    if set(run_dirs) == {None}:
        lines.append(f"exec {shlex.join([*run, str(run_dirs[None]), '--copy-output'])}")
        return "\n".join(lines) + "\n"
    lines.append('case "$SLURM_ARRAY_TASK_ID" in')
    for task, run_dir in sorted(run_dirs.items(), key=lambda item: item[0] or 0):
        lines.append(f"    {task}) run_dir={shlex.quote(str(run_dir))} ;;")
    lines += [
        '    *) echo "expyrun: error: no run folder for array task $SLURM_ARRAY_TASK_ID" >&2',
        "       exit 2 ;;",
        "esac",
        f'exec {shlex.join(run)} "$run_dir" --copy-output',
    ]
    return "\n".join(lines) + "\n"


def find_requeued_run(parent: Path, environ: Mapping[str, str]) -> Path | None:
    """The run folder under `parent` that an earlier start of this requeued job ran.

    A folder matches when its record names this job (for an array, this task) with a lower
    restart count. If the batch script ran expyrun several times with the same name, the
    k-th launch of the new start resumes the k-th folder: the oldest not yet resumed.
    """
    import json

    current = job_fields(environ)
    if current is None or restart_count(environ) == 0:
        return None
    try:
        names = os.listdir(parent)
    except OSError:
        return None
    found: list[tuple[int, Path]] = []
    for name in names:
        match = re.match(r"^exp\.(\d+)$", name)
        if match is None:
            continue
        try:
            with open(parent / name / "run.json", "rb") as f:
                data = json.loads(f.read())
        except (OSError, ValueError):
            continue
        fields = data.get("slurm") if isinstance(data, dict) else None
        if not isinstance(fields, dict) or not same_job(fields, current):
            continue
        if recorded_restart_count(fields) < current["restart_count"]:
            found.append((int(match.group(1)), parent / name))
    return min(found)[1] if found else None
