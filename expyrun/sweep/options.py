"""What the command line asked of a sweep: `SweepOptions` (the launch's own: `LaunchOptions`)."""

from typing import NamedTuple


class SweepOptions(NamedTuple):
    """The sweep flags of a launch line (docs/sweeps.md); defaults: a sequential sweep."""

    dimensions: tuple[tuple[str, str], ...] = ()  # each --sweep LABEL VALUES, as typed
    parallel: int | None = None  # members at once (None: 1)
    gpus: str | None = None  # "0,1" or "auto"
    gpus_per_run: int = 1
    fail_fast: bool = False
    max_failures: int | None = None
    sample: int | None = None
    seed: int | None = None
    json: bool = False  # --print-config: JSON instead of a table
    verbose: bool = False  # stream a member's output when one runs at a time

    @property
    def is_requested(self) -> bool:
        """Whether any sweep flag was given (a sweep flag without a sweep is an error)."""
        return self != SweepOptions()

    @property
    def slots(self) -> int:
        """How many members may run at once."""
        return self.parallel or 1
