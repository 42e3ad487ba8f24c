"""The --nproc launcher's wait loop acts on a stop signal at once, with or without the byte
its wake-up fd gets (one taken as `take_signals` installs the handlers, before the wake-up fd
is set, gets none)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from support import wait_for

from expyrun.launch import nproc


def test_a_signal_taken_without_its_wake_up_byte_is_forwarded_at_once(tmp_path: Path) -> None:
    """Before, the loop waited for the byte (0.5 s), then blocked in a read of the empty pipe
    until a task ended: a Ctrl-C was forwarded only when the first task ended by itself."""
    ready = tmp_path / "ready"
    code = (
        "import signal, sys, time\n"
        "for signum in (signal.SIGINT, signal.SIGTERM):\n"
        "    signal.signal(signum, lambda *args: sys.exit(0))\n"
        f"open({str(ready)!r}, 'w').close()\n"
        "time.sleep(60)\n"
    )
    task = subprocess.Popen([sys.executable, "-c", code])
    coordinator = nproc._Coordinator(tmp_path, 1, "127.0.0.1", "29500", grace=1.0)
    read_fd, write_fd, previous, old_wakeup = coordinator.take_signals()
    try:
        wait_for(ready.exists, 30, "the task to take its signals")
        coordinator.processes[0] = task
        coordinator.received.append(signal.SIGINT)  # taken, its wake-up byte never written
        started = time.monotonic()
        coordinator._watch(read_fd)
        elapsed = time.monotonic() - started
    finally:
        signal.set_wakeup_fd(old_wakeup)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        task.kill()
        task.wait()
        os.close(read_fd)
        os.close(write_fd)
    assert coordinator.codes == {0: 0}
    assert coordinator.stopped_by == signal.SIGINT
    assert elapsed < 10, f"forwarded after {elapsed:.1f} s"
