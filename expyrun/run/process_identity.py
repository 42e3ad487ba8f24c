"""Which process a record names: a pid with its start time, so a reused pid is not taken for it.

A record left `running` by a supervisor that was killed is *stale*: its `pid` is gone, or now
belongs to a process started at another time than `pid_started_at` (see run/record.py).
"""

from __future__ import annotations

import os
import time

# Start times read from /proc are exact to a clock tick; allow for rounding across readers.
START_TIME_TOLERANCE_SECONDS = 1.0


def process_start_time(pid: int) -> float | None:
    """When process `pid` started, in seconds since the epoch; None if it does not exist.

    Read from /proc where there is one (no psutil import on the launch path), else psutil.
    """
    if os.path.isdir("/proc/self"):
        return _start_time_from_proc(pid)
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:  # psutil raises many kinds; unknown is the answer
        return None


def _start_time_from_proc(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        ticks = int(fields[19])  # field 22 of proc(5) stat: starttime, counted after `)`
        return _boot_time() + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


_BOOT_TIME: float | None = None


def _boot_time() -> float:
    global _BOOT_TIME
    if _BOOT_TIME is None:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if line.startswith(b"btime"):
                    _BOOT_TIME = float(line.split()[1])
                    break
            else:
                _BOOT_TIME = time.time() - time.monotonic()
    return _BOOT_TIME


def process_matches(pid: int | None, host: str | None, started_at: float | None) -> bool | None:
    """Whether process `pid` on `host`, started at `started_at`, still runs (None: other host).

    A zombie (ended, not yet waited for by its parent: a supervisor SIGKILLed a moment ago)
    does not run.
    """
    if pid is None or host != os.uname().nodename:
        return None
    started = process_start_time(pid)
    if started is None or _is_zombie(pid):
        return False
    if started_at is None:
        return True
    return abs(started - started_at) <= START_TIME_TOLERANCE_SECONDS


def _is_zombie(pid: int) -> bool:
    """Whether /proc says process `pid` is a zombie (proc(5) stat field 3: `Z`)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def wait_until_taken(pid: int, signum: int, timeout: float = 5.0) -> None:
    """Wait until a signal sent to `pid` is no longer pending (the process took it).

    Two signals of one number sent before the first is taken merge into one: what sends a
    second stop signal (to kill at once) waits here in between. Returns at `timeout`, or
    when /proc cannot tell (no such process, no /proc).
    """
    deadline = time.monotonic() + timeout
    bit = 1 << (signum - 1)
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/status") as f:
                pending = {
                    key: int(value, 16)
                    for key, _, value in (line.partition(":\t") for line in f)
                    if key in ("SigPnd", "ShdPnd")
                }
        except (OSError, ValueError):
            return
        if not any(mask & bit for mask in pending.values()):
            return
        time.sleep(0.01)


def takes_signal(pid: int, signum: int) -> bool | None:
    """Whether process `pid` catches or blocks `signum` (/proc/PID/status SigCgt, SigBlk of
    its main thread): False while it would take the signal's default action; None when /proc
    cannot tell (no such process, no /proc)."""
    bit = 1 << (signum - 1)
    try:
        with open(f"/proc/{pid}/status") as f:
            masks = [
                int(value, 16)
                for key, _, value in (line.partition(":\t") for line in f)
                if key in ("SigCgt", "SigBlk")
            ]
    except (OSError, ValueError):
        return None
    return any(mask & bit for mask in masks) if masks else None
