"""`expyrun status`: a run's record, readable or as JSON; exit 0 if it succeeded or runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from expyrun import console
from expyrun.errors import ExitCode
from expyrun.run.record import ENDED, RunRecord, Status
from expyrun.runs.reading import effective_status, exit_code_of, open_run
from expyrun.runs.text import duration, short_time, size


def show_status(run: str, as_json: bool) -> int:
    """Print the record of the run folder `run`, its status the effective one.

    Exits 0 while the run has not ended and when it succeeded or was stopped (exit 0 after a
    stop request), else with the run's own code (1 when it was lost or cancelled).
    """
    run_dir, found = open_run(run)
    current = effective_status(found)
    if as_json:
        console.out(json.dumps({**found.to_dict(), "status": current}, indent=2))
    else:
        console.out(_describe(run_dir, found, current))
    if current in (Status.SUCCEEDED, Status.STOPPED) or current not in ENDED:
        return ExitCode.OK
    return exit_code_of(found, current)


def _describe(run_dir: Path, found: RunRecord, current: str) -> str:
    lines = [
        f"run        {run_dir}",
        f"status     {current}{_why(found)}",
        f"name       {found.name}",
        f"entry      {found.entry}" + ("  [debug]" if found.debug else ""),
        f"started    {short_time(found.started_at)}",
        f"ended      {short_time(found.ended_at)}",
        f"duration   {duration(found.duration_s, found.started_at, current)}",
        f"exit code  {'-' if found.exit_code is None else found.exit_code}",
        *([f"error      {found.error}"] if found.error else []),
        *([f"result     {_result_text(found)}"] if found.result is not None else []),
        f"peak mem   {size(found.peak_rss_bytes)}",
        f"host       {found.host or '-'} (user {found.user}"
        + (f", supervisor pid {found.pid})" if found.pid else ")"),
        f"command    {' '.join(found.command)}",
    ]
    if found.tags:
        lines.append(f"tags       {', '.join(found.tags)}")
    if found.note:
        lines.append(f"note       {found.note}")
    if found.git:
        dirty = ", dirty" if found.git.get("dirty") else ""
        lines.append(f"git        {found.git.get('commit')} ({found.git.get('branch')}{dirty})")
    if found.slurm:
        lines.append(f"slurm      {_describe_job(found.slurm)}")
    if found.tasks:
        lines.append(f"tasks      {len(found.tasks)} (expyrun logs RUN --task N)")
        lines += [_describe_task(entry) for entry in found.tasks]
    if len(found.attempts) > 1:
        lines.append(f"attempts   {len(found.attempts)}")
        lines += [_describe_attempt(entry) for entry in found.attempts]
    return "\n".join(lines)


# A result longer than this is cut on the status page (run.json keeps all of it).
RESULT_SHOWN_CHARS = 300


def _result_text(found: RunRecord) -> str:
    """The result on one line: compact JSON, or the repr the entry's value was recorded as."""
    if found.result_repr and isinstance(found.result, str):
        text = f"{found.result} (repr: not a mapping of JSON values)"
    else:
        text = json.dumps(found.result, separators=(", ", ": "))
    return text if len(text) <= RESULT_SHOWN_CHARS else text[:RESULT_SHOWN_CHARS] + " ..."


def _why(found: RunRecord) -> str:
    """` (SIGTERM, asked by expyrun stop)`: the signal, and who asked the run to stop."""
    request = found.stop_request or {}
    signal = found.signal or request.get("signal")
    if not signal:
        return ""
    by = request.get("by")
    reason = f": {request['reason']}" if request.get("reason") else ""
    return f" ({signal}, asked by {by}{reason})" if by else f" ({signal})"


def _describe_task(entry: dict[str, Any]) -> str:
    stopped = f" ({entry['signal']})" if entry.get("signal") else ""
    code = entry.get("exit_code")
    return (
        f"  {entry.get('rank')}. {entry.get('status')}{stopped}"
        + ("" if code is None else f", exit {code}")
        + (f" on {entry['host']}" if entry.get("host") else "")
        + f", peak mem {size(entry.get('peak_rss_bytes'))}"
        + f", {entry.get('log')}"
    )


def _describe_attempt(entry: dict[str, Any]) -> str:
    stopped = f" ({entry['signal']})" if entry.get("signal") else ""
    reason = f", Slurm: {entry['slurm_end_reason']}" if entry.get("slurm_end_reason") else ""
    return (
        f"  {entry.get('attempt')}. {entry.get('status')}{stopped}{reason}, "
        f"{short_time(entry.get('started_at'))} -> {short_time(entry.get('ended_at'))}"
        + (f" on {entry['host']}" if entry.get("host") else "")
    )


def _describe_job(fields: dict[str, Any]) -> str:
    text = f"job {fields.get('job_id')}"
    if fields.get("array_task_id") is not None:
        text += f" (array {fields.get('array_job_id')}, task {fields.get('array_task_id')})"
    details = [
        f"{label} {fields[key]}"
        for key, label in (
            ("partition", "partition"),
            ("node_list", "nodes"),
            ("restart_count", "restarts"),
            ("end_reason", "ending:"),
        )
        if fields.get(key) not in (None, "")
    ]
    if details:
        text += ", " + ", ".join(details)
    if fields.get("output"):
        text += f"; output {fields['output']}"
    return text
