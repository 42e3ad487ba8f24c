"""`python -m expyrun` and the `expyrun` command (pyproject's console script names this module).

The cyclic garbage collector is off while expyrun starts: importing its modules and YAML makes
tens of thousands of objects, and the collections they trigger cost ~3 ms of a ~50 ms launch
(benchmarks/launch_overhead.py). `expyrun.started` turns it back on, once, where the start-up
ends: when the worker has its payload, or at once for a command that is not a launch. It
freezes what start-up made first (gc.freeze: those objects live as long as the process), so
the collection that would have been pending is not paid then either. The pattern is
Instagram's, and the reason `gc.freeze` exists (its documentation, CPython issue 31558).
"""

from __future__ import annotations

import gc
import signal

gc.disable()
# The stop signals (errors.STOP_SIGNALS) are held back while expyrun imports its modules: a
# SIGINT would raise in whatever module is being imported (a traceback, exit 1, or Python's
# own RuntimeError from a class body). `cli.main` takes them over, then lets them in: one sent
# meanwhile ends expyrun as "interrupted", exit 128+N. The mask is restored before anything
# is started (children inherit it).
_MASK = signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGINT, signal.SIGTERM, signal.SIGHUP))

from expyrun.cli import console_main as _console_main  # noqa: E402 - after gc.disable, on purpose


def console_main() -> None:
    """The `expyrun` console script and `python -m expyrun` (cli.console_main)."""
    _console_main(held=_MASK)


if __name__ == "__main__":
    console_main()
