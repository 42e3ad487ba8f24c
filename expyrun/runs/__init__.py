"""Commands over recorded runs: `ls`, `logs`, `status`, `stop`, `rm`, `clean`.

They read run.json files and run folders (a run's stored config only when `ls --keys` or
`--where` asks for a config key), so they are fast and work on any run folder, whatever
expyrun version or config made it. A record left `running` by a
supervisor that is gone is shown as `lost`. A `pending` record (a `--slurm` run whose job has
not started) is the only one Slurm is asked about, all of them in one `squeue`: a job
cancelled before it started shows as `cancelled`, one Slurm ended or forgot without running
it as `lost`.
"""
