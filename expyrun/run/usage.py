"""Sample the memory of the worker's whole process tree while it runs (psutil).

psutil is imported in the sampling thread, after the worker has started, so it costs nothing
on the launch path. The peak is a sum over the tree at each sample; the supervisor combines it
with the worker's own ru_maxrss from wait4(2), which catches a spike between two samples.
"""

from __future__ import annotations

import _thread
import threading
import time

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
        self._stop = threading.Event()
        self.peak_rss_bytes = 0

    def start(self) -> None:
        # Not threading.Thread: its start() waits for the thread to run (launch-path time).
        _thread.start_new_thread(self._sample_forever, ())

    def stop(self) -> None:
        """Stop sampling; a sample under way is not waited for (the thread is a daemon)."""
        self._stop.set()

    def _sample_forever(self) -> None:
        if self._stop.wait(FAST_PERIOD_SECONDS):
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
        while not self._stop.is_set():
            self.peak_rss_bytes = max(self.peak_rss_bytes, _tree_rss(root, psutil))
            fast = time.monotonic() - started < FAST_PHASE_SECONDS
            self._stop.wait(FAST_PERIOD_SECONDS if fast else SLOW_PERIOD_SECONDS)


def _tree_rss(root: object, psutil: object) -> int:
    total = 0
    try:
        processes = [root, *root.children(recursive=True)]  # type: ignore[attr-defined]
    except psutil.Error:  # type: ignore[attr-defined]
        return 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:  # type: ignore[attr-defined]
            continue
    return total
