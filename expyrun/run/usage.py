"""Sample the memory of the worker's whole process tree while it runs (psutil).

psutil is imported in the sampling thread, after the worker has started, so it costs nothing
on the launch path. The peak is a sum over the tree at each sample; the supervisor combines it
with the worker's own ru_maxrss from wait4(2), which catches a spike between two samples.
"""

from __future__ import annotations

import _thread
import time
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil

# Sampling period: fine at the start, where short runs live, coarser for long runs. The first
# sample waits one period: a run shorter than that never pays psutil's import, and its peak
# is the worker's own ru_maxrss.
FAST_PERIOD_SECONDS = 0.05
FAST_PHASE_SECONDS = 2.0
SLOW_PERIOD_SECONDS = 0.5


class UsageSampler:
    """A background thread that tracks the peak resident memory of a process tree."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        # Held until stop(): waiting to acquire it is the sampling period (threading.Event
        # would do, but importing threading costs a millisecond of launch time).
        self._stop_lock = _thread.allocate_lock()
        self._stop_lock.acquire()
        self._stopped = False
        self.peak_rss_bytes = 0

    def start(self) -> None:
        # Not threading.Thread: its start() waits for the thread to run (launch-path time).
        _thread.start_new_thread(self._sample_forever, ())

    def stop(self) -> None:
        """Stop sampling; a sample under way is not waited for (the thread is a daemon)."""
        if not self._stopped:
            self._stopped = True
            self._stop_lock.release()

    def _wait(self, seconds: float) -> bool:
        """Sleep `seconds`, or less if stopped meanwhile; True once stopped."""
        if self._stop_lock.acquire(timeout=seconds):
            self._stop_lock.release()
            return True
        return self._stopped

    def _sample_forever(self) -> None:
        if self._wait(FAST_PERIOD_SECONDS):
            return
        try:
            import psutil
        except ImportError:  # pragma: no cover - psutil is a dependency
            return
        try:
            root = psutil.Process(self._pid)
        except psutil.Error:
            return
        started = time.monotonic()
        while not self._stopped:
            self.peak_rss_bytes = max(self.peak_rss_bytes, _tree_rss(root, psutil))
            fast = time.monotonic() - started < FAST_PHASE_SECONDS
            self._wait(FAST_PERIOD_SECONDS if fast else SLOW_PERIOD_SECONDS)


def _tree_rss(root: psutil.Process, psutil_module: ModuleType) -> int:
    """The resident memory of `root` and its descendants, in bytes (0 when `root` is gone).

    psutil comes as an argument: it is imported in the sampling thread, off the launch path.
    """
    total = 0
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil_module.Error:
        return 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil_module.Error:
            continue
    return total
