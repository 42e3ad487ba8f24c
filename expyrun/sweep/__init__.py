"""Sweeps: many runs from one command, on this machine, resumable (docs/sweeps.md).

    expand (expand.py)  ->  plan: new, resumed, changed (plan.py)  ->  schedule (schedule.py)

`commands.py` holds the commands (`run_sweep`, `resume`, `supervise_sweep`); `background.py`
a detached sweep, `stop` and `ls --sweep`. Importing this package imports nothing: the launch
line reads `options.SweepOptions` on every launch, sweep or not.
"""
