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
# errors.STOP_SIGNALS (importing errors would import enum and pathlib before they are held).
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def console_main() -> None:
    """The `expyrun` console script and `python -m expyrun` (cli.console_main).

    The stop signals are held back while expyrun imports its modules: a SIGINT would raise in
    whatever module is being imported (a traceback, exit 1, or Python's own RuntimeError from
    a class body). `cli.main` takes them over, then lets them in: one sent meanwhile ends
    expyrun as "interrupted", exit 128+N. The mask is restored before anything is started
    (children inherit it). Blocked here, not as this module is imported: a process that only
    imports it (the tests, a documentation tool, `cli.main` as a library) keeps its mask.
    """
    held = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    from expyrun.cli import console_main as cli_console_main

    cli_console_main(held=held)


if __name__ == "__main__":
    console_main()
