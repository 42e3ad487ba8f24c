"""Times, durations and sizes as `ls` and `status` show them."""

from __future__ import annotations

import time
from datetime import datetime

from expyrun.run.record import Status


def timestamp(iso: str | None) -> float:
    """Seconds since the epoch of an ISO 8601 time (0 when missing): the sort key of `ls`."""
    if not iso:
        return 0.0
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return 0.0


def short_time(iso: str | None) -> str:
    """The time as the launching host saw it: `2026-11-25 07:34:35`."""
    return iso[:19].replace("T", " ") if iso else "-"


def duration(seconds: float | None, started_at: str | None, status: str) -> str:
    """`12.3s`, `4m05s`, `2h07m`; a running run's duration so far; `-` when unknown."""
    if seconds is None and started_at and status == Status.RUNNING:
        started = timestamp(started_at)
        seconds = time.time() - started if started else None
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def size(count: int | None) -> str:
    """A byte count in binary units: `512B`, `1.5K`, `3.2G`; `-` when unknown."""
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "K", "M", "G"):
        if value < 1024:
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}T"
