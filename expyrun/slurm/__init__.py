"""Everything expyrun knows about Slurm; it never imports `launch/`.

- `job`: inside a job, its environment as a typed `SlurmJob`, requeue identity, KillWait and
  why Slurm ends the job;
- `commands`: sbatch, scontrol, scancel and squeue through `_command`, and job states;
- `script`: `__run__.__slurm__` as sbatch options (expyrun's defaults, refused and negated
  options, arrays) and the batch script of a `--slurm` submission.

expyrun fits Slurm, it never replaces it: inside a job it records where it runs and resumes a
requeued job in its run folder; `expyrun CONFIG --slurm` renders a batch script that runs a
run folder prepared at submit time.
"""
