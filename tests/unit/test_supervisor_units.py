"""Supervisor pieces that a real process cannot put in a given state on demand."""

from __future__ import annotations

import signal
import threading

from expyrun.run import stopping, supervisor


class _SlowTerminal:
    """A Tee whose terminal copy finishes at the third look."""

    def __init__(self) -> None:
        self.looks = 0
        self.abandoned = False

    def terminal_done(self, timeout: float) -> bool:
        self.looks += 1
        return self.looks >= 3

    def abandon_terminal(self) -> None:
        self.abandoned = True


def _state() -> stopping.Stopping:
    return stopping.Stopping(10.0, lambda text: None, -1, None)  # type: ignore[arg-type]


def test_waiting_for_the_terminal_copy_does_not_block_on_an_empty_event_pipe() -> None:
    state, tee = _state(), _SlowTerminal()
    finished = threading.Event()
    thread = threading.Thread(
        target=lambda: (supervisor._finish_terminal(state, tee), finished.set()),  # type: ignore[arg-type]
        daemon=True,
    )
    thread.start()
    assert finished.wait(10), "_finish_terminal blocked with no event to read"
    assert tee.looks == 3
    assert not tee.abandoned


def test_a_stop_signal_abandons_the_terminal_copy() -> None:
    state, tee = _state(), _SlowTerminal()
    tee.terminal_done = lambda timeout: False  # type: ignore[method-assign]
    state.events.post("signal", (signal.SIGTERM, False))
    supervisor._finish_terminal(state, tee)  # type: ignore[arg-type]
    assert tee.abandoned
