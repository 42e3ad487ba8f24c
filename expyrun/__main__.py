"""`python -m expyrun`: the same as the `expyrun` command."""

from __future__ import annotations

import sys

from expyrun.cli import main

if __name__ == "__main__":
    sys.exit(main())
