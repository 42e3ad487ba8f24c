"""`python -m expyrun`: the same as the `expyrun` command."""

from __future__ import annotations

from expyrun.cli import console_main

if __name__ == "__main__":
    console_main()
