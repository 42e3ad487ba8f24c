"""How the entry ended, for run.json's `error` and `result` and the closing line.

The worker writes an *end report* when the entry returns or raises (see run/worker.py,
`_write_end_report`): a small JSON object, `{"error": "ValueError: loss is nan"}` or
`{"result": {...}}` (`"result_repr": true` when it is the repr of a value that is not a mapping
of JSON values), replaced atomically in the run folder as END_REPORT_FILE. The supervisor reads
it once the worker has exited, folds it into run.json, and removes it. A worker that dies of a
signal, is killed or calls os._exit writes none: for a signal death, the supervisor says what
the signal was (`signal_error`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from expyrun.run.folder import OUTPUTS_LOG
from expyrun.run.stopping import STOP_SIGNALS, signal_name

END_REPORT_FILE = ".end_report.json"


def end_report_path(log_path: Path) -> Path:
    """The end report of the worker writing `log_path`: one per task in a multi-task run."""
    if log_path.name == OUTPUTS_LOG:
        return log_path.parent / END_REPORT_FILE
    return log_path.parent / f".end_report.{log_path.stem}.json"


def remove(path: Path) -> None:
    """Remove a file if it is there (an earlier attempt's end report)."""
    try:
        path.unlink()
    except OSError:
        pass


def read_end_report(path: Path) -> dict[str, Any]:
    """The worker's end report, removed once read; {} when there is none or it is unreadable."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    remove(path)
    return report if isinstance(report, dict) else {}


def signal_error(stop_signal: int | None, killed_after_grace: bool, died_of: int) -> str:
    """The `error` of a worker that died of signal `died_of`.

    A stop signal (`SIGTERM`, `SIGINT`) is named alone: someone asked the run to stop (through
    the supervisor, or a terminal's Ctrl-C straight to the worker, which may die of it before
    the supervisor has seen its own copy); `SIGTERM, then killed by SIGKILL` when the grace
    period ran out (or a second stop signal came); anything else is what killed it (`killed by
    SIGKILL`: the OOM killer, a `kill -9`; `killed by SIGSEGV`).
    """
    if killed_after_grace and stop_signal:
        return f"{signal_name(stop_signal)}, then killed by SIGKILL"
    if died_of in STOP_SIGNALS:
        return signal_name(died_of)
    return f"killed by {signal_name(died_of)}"
