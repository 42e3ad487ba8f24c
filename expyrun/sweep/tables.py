"""A sweep's members as text: the preview, the final table, `ls --sweep` (tables or JSON)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from expyrun.runs.text import duration
from expyrun.sweep.plan import (
    NOT_STARTED,
    SKIP,
    Plan,
    read_run_json,
    run_status,
    slurm_statuses,
)
from expyrun.sweep.schedule import Outcome

RESULT_WIDTH = 40


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart."""
    cells = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def preview(plan: Plan, keys: Sequence[str], as_json: bool, sweep_id: str | None) -> str:
    """`--print-config` on a sweep: each member, its values, run name, what would happen."""
    if as_json:
        members = [
            {
                "index": step.member.number,
                "values": step.member.values,
                "overrides": list(step.member.overrides),
                "name": step.member.resolved.run.name,
                "action": step.action,
                "last_status": step.last_status,
                "last_run": step.last_run,
                "digest": step.member.digest,
            }
            for step in plan.steps
        ]
        document = {
            "sweep": sweep_id,
            "output_dir": str(plan.output_dir),
            "keys": list(keys),
            "plan": plan.summary(),
            "members": members,
        }
        return json.dumps(document, default=str)  # compact: 10,000 members print fast
    rows = []
    for step in plan.steps:
        texts = dict(step.member.texts)
        action = "run" if step.action == "new" else step.action
        if step.action == SKIP:
            action = f"skip ({step.last_status})"
        elif step.last_status:
            action = f"rerun ({step.last_status})"
        rows.append(
            (
                str(step.member.number),
                *(texts[key] for key in keys),
                step.member.resolved.run.name,
                action,
            )
        )
    return table(("INDEX", *keys, "NAME", "ACTION"), rows)


def final(plan: Plan, keys: Sequence[str], outcomes: Sequence[Outcome]) -> str:
    """The table printed when a sweep ends: every member, its status, duration, result."""
    by_index = {outcome.member.number: outcome for outcome in outcomes}
    rows = []
    for step in plan.steps:
        texts = dict(step.member.texts)
        outcome = by_index.get(step.member.number)
        if outcome is not None:
            run_dir, status, data = outcome.run_dir, outcome.status, outcome.data
        elif step.last_run is not None and step.action == SKIP:
            run_dir, status = step.last_run, step.last_status or ""
            data = read_run_json(run_dir) or {}
        else:
            run_dir, status, data = "", NOT_STARTED, {}
        rows.append(
            (
                str(step.member.number),
                *(texts[key] for key in keys),
                status,
                duration(data.get("duration_s"), data.get("started_at"), status),
                result_text(data),
                _shown_path(run_dir),
            )
        )
    return table(("INDEX", *keys, "STATUS", "DURATION", "RESULT", "RUN"), rows)


def result_text(data: dict[str, Any]) -> str:
    """The entry's returned value, as run.json keeps it, cut to a table cell."""
    if "result" not in data or data["result"] is None:
        return ""
    value = data["result"]
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= RESULT_WIDTH else text[: RESULT_WIDTH - 3] + "..."


def members_of_record(
    members: Sequence[dict[str, Any]], runs: dict[str, list[str]]
) -> list[dict[str, Any]]:
    """`ls --sweep`: each recorded member with its last run folder's status and duration."""
    listed = []
    asked = slurm_statuses([dirs[-1] for dirs in runs.values()])
    for member in members:
        run_dirs = runs.get(str(member.get("digest")), [])
        last = run_dirs[-1] if run_dirs else None
        data = (read_run_json(last) or {}) if last else {}
        status = (asked.get(last) or run_status(last)) if last else NOT_STARTED
        listed.append(
            {
                "index": member.get("index"),
                "values": member.get("values", {}),
                "name": member.get("name"),
                "status": status,
                "duration_s": data.get("duration_s"),
                "started_at": data.get("started_at"),
                "ended_at": data.get("ended_at"),
                "result": data.get("result"),
                "run_dir": last,
                "runs": run_dirs,
            }
        )
    return listed


def members_table(listed: Sequence[dict[str, Any]], keys: Sequence[str]) -> str:
    """`ls --sweep` as a table: the swept keys as columns."""
    rows = []
    for member in listed:
        values = member["values"]
        rows.append(
            (
                str(member["index"]),
                *(str(values.get(key, "")) for key in keys),
                str(member["status"]),
                duration(member["duration_s"], member["started_at"], str(member["status"])),
                result_text(member),
                _shown_path(member["run_dir"] or ""),
            )
        )
    return table(("INDEX", *keys, "STATUS", "DURATION", "RESULT", "RUN"), rows)


def _shown_path(path: str) -> str:
    here = os.getcwd() + os.sep
    return path[len(here) :] if path.startswith(here) else path
