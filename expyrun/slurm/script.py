"""`__run__.__slurm__` as sbatch options, and the batch script of a `--slurm` submission.

The options are the user's, after expyrun's defaults (the run's name, an output file in the
run folder, `--open-mode=append`, `--requeue`) unless the user set them; options that would
break a submission are refused with why. The script runs the run folder prepared at submit
time (`exec python -m expyrun _supervise RUN_DIR`): expyrun is the batch task and gets
Slurm's signals. Golden scripts: `tests/unit/golden/`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from expyrun.config.run_section import RUN_KEY, SLURM_KEY
from expyrun.errors import ConfigError
from expyrun.slurm.job import ARRAY_TASK_ID_VARIABLE

# An sbatch option: (name, value), value None for a flag.
Option = tuple[str, str | None]
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
# Each default applies unless one of the names is among the user's options.
_DEFAULTS: tuple[tuple[tuple[str, ...], str, str | None], ...] = (
    (("job-name", "J"), "job-name", None),  # the run's name
    (("output", "o"), "output", None),  # the run folder, or the launch folder for an array
    (("open-mode",), "open-mode", "append"),  # a requeued job appends to its output file
    (("requeue", "no-requeue"), "requeue", None),  # preempted or failed node: requeue, resume
)
# The options that ask for several tasks: the script then starts the run with srun, one task
# supervisor per task, all in the one run folder (docs/slurm.md, "Multi-task jobs").
TASK_OPTIONS = (("ntasks", "n"), ("ntasks-per-node",), ("nodes", "N"))
# srun stops the other tasks of the step when one exits non-zero (SIGTERM, then SIGKILL after
# KillWait): a distributed job whose rank died would otherwise wait on it until its time limit.
SRUN = ("srun", "--kill-on-bad-exit=1")
_OPTION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_ARRAY_RANGE = re.compile(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$")
_ARRAY_KEY = f"{RUN_KEY}.{SLURM_KEY}.array"


def script_options(user: list[Option], name: str, run_dir: Path | None, cwd: Path) -> list[Option]:
    """expyrun's defaults (unless the user set them), then the user's options in order.

    A job of several tasks is not requeued (`--no-requeue`): the tasks of a requeued start
    would not resume their run folder (TODO: issue 16), so `requeue: true` is refused.
    """
    given = {option for option, _ in user}
    several = several_tasks(user)
    if several and "requeue" in given:
        raise ConfigError(
            "a job of several tasks cannot be requeued: its tasks do not resume the run folder",
            key=f"{RUN_KEY}.{SLURM_KEY}.requeue",
            hint="leave requeue out: such a job gets --no-requeue",
        )
    options: list[Option] = []
    for names, option, value in _DEFAULTS:
        if given.intersection(names):
            continue
        if option == "requeue" and several:
            options.append(("no-requeue", None))
            continue
        if option == "job-name":
            value = name
        elif option == "output":
            value = str(run_dir / "slurm-%j.out") if run_dir else str(cwd / "slurm-%A_%a.out")
        options.append((option, value))
    return options + user


def output_path(pattern: str, cwd: Path, job_id: str, task: int | None, job_name: str) -> str:
    """Where Slurm writes the job's output: the pattern with what is known at submit filled in.

    An array task gets its own job id (`%j`) only when it starts: the job fills it in
    (`job.fill_job_id`).
    """
    path = pattern.replace("%A", job_id).replace("%x", job_name)
    path = path.replace("%j", job_id) if task is None else path.replace("%a", str(task))
    return str(cwd / path)


def sbatch_options(mapping: Mapping[str, Any] | None) -> list[Option]:
    """`__run__.__slurm__` as sbatch options: (name, value), value None for a flag.

    `key: value` gives `--key=value`, `true` a flag `--key`, `false` and null nothing (a child
    config removes an inherited option with null; `requeue: false` is `--no-requeue`, see
    NEGATED_FLAGS). `_` in a key becomes `-`
    (`cpus_per_task` is `--cpus-per-task`); one-letter keys are short options (`p: debug` is
    `-p debug`). Anything else is passed to sbatch as it is.
    """
    options: list[Option] = []
    for key, value in (mapping or {}).items():
        where = f"{RUN_KEY}.{SLURM_KEY}.{key}"
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


def option_value(options: Sequence[Option], *names: str) -> str | None:
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


def several_tasks(options: Sequence[Option]) -> bool:
    """Whether the options ask for more than one task (`ntasks: 4`, `nodes: 2-4`, ...)."""
    for names in TASK_OPTIONS:
        value = option_value(options, *names)
        match = re.match(r"^\s*(\d+)", value or "")
        if match is not None and int(match.group(1)) > 1:
            return True
    return False


def array_task_ids(spec: str) -> list[int]:
    """The task ids of an `--array` spec: `0-3`, `1,3,5-7`, `0-15:4`, `0-99%10`."""
    indexes = spec.split("%", 1)[0]
    ids: set[int] = set()
    for part in indexes.split(","):
        match = _ARRAY_RANGE.match(part.strip())
        if match is None:
            raise ConfigError(
                f"'{spec}' is not an array spec (like 0-3, 1,3,5-7, 0-15:4 or 0-99%10)",
                key=_ARRAY_KEY,
            )
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        step = int(match.group(3)) if match.group(3) is not None else 1
        if last < first or step < 1:
            raise ConfigError(f"empty array range '{part}'", key=_ARRAY_KEY)
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
    options: Sequence[Option],
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
    if several_tasks(options):
        lines += [
            "# Several tasks: srun (the batch task) starts one expyrun per task, all in",
            "# the one run folder, and forwards Slurm's signals to them.",
        ]
        run = [*SRUN, *run]
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
